"""Workers on the real queues and catalog: every route of a masklet, and every way a task can go wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.annotation import Action, Click
from engine.errors import LeaseLostError
from engine.queues import Backoff, Queue, TaskStatus, Verdict
from engine.settings import load_settings
from engine.simulated_annotator import Skill, VerifierSkill
from engine.simulated_segmenter import SimulatedSegmenterSource
from engine.synthetic import SyntheticSpec, synthesize
from phases.workers import Crew, Worker, drain, enqueue_annotation, verify_or_refine
from storage import annotation_events
from storage.annotation_store import SqlAnnotationStore
from storage.catalog import Catalog
from storage.ingest_sources import ingest_sources
from storage.objects.local import LocalObjectStore
from storage.schema import MaskletRow, VerificationRow
from storage.task_queue import TaskQueue
from tests.phases.conftest import GOOD_TRACKER, POOR_TRACKER, TINY


@dataclass
class Engine:
    catalog: Catalog
    queue: TaskQueue
    store: SqlAnnotationStore
    video_id: str

    def worker(self, name: str, crew: Crew = Crew(), models=None, **kwargs) -> Worker:
        return Worker(name, self.queue, self.store, models or SimulatedSegmenterSource(GOOD_TRACKER), crew, **kwargs)

    def masklets(self, source: str = "manual") -> list:
        """``(id, status, phase, annotator)`` of the masklets of a source, oldest first."""
        columns = (MaskletRow.id, MaskletRow.status, MaskletRow.phase, MaskletRow.annotator)
        with self.catalog.read() as session:
            return list(session.execute(select(*columns).where(MaskletRow.source == source).order_by(MaskletRow.id)))

    def event_count(self) -> int:
        with self.catalog.read() as session:
            return session.scalar(select(func.count()).select_from(annotation_events.events_table)) or 0


def make_engine(catalog: Catalog, root: Path, spec: SyntheticSpec = TINY) -> Engine:
    store = LocalObjectStore(root / "objects")
    paths = synthesize(root / "videos", 1, seed=5, spec=spec)
    (result,) = ingest_sources([str(p) for p in paths], catalog=catalog, store=store, settings=load_settings())
    queue = TaskQueue(catalog, backoff=Backoff(base_s=0.0, jitter=0.0))  # retries are ready at once
    return Engine(catalog, queue, SqlAnnotationStore(catalog, store), result.video_id)


@pytest.fixture
def engine(catalog: Catalog, tmp_path: Path) -> Engine:
    return make_engine(catalog, tmp_path)


@pytest.fixture
def sqlite_engine(sqlite_catalog: Catalog, tmp_path: Path) -> Engine:
    return make_engine(sqlite_catalog, tmp_path)


def test_annotated_masklets_go_through_verification_into_the_dataset(engine: Engine) -> None:
    tasks = enqueue_annotation(engine.queue, engine.store, 3)
    assert len(tasks) == 2 and enqueue_annotation(engine.queue, engine.store, 3) == tasks  # idempotent
    outcomes = drain(lambda: engine.worker("ann").annotate_one(3))
    assert [o.ok for o in outcomes] == [True, True]

    rows = engine.masklets()
    assert [(r.status, r.phase, r.annotator) for r in rows] == [("in_verification", 3, "ann")] * 2
    with engine.catalog.read() as session:
        events = annotation_events.events_of(session, [rows[0].id])
    assert events and {e.task_id for e in events} == {outcomes[0].task_id}
    assert events[-1].action is Action.SUBMIT

    verdicts = drain(lambda: engine.worker("ver").verify_one())
    assert [o.verdict for o in verdicts] == [Verdict.SATISFACTORY] * 2
    assert [r.status for r in engine.masklets()] == ["satisfactory"] * 2
    with engine.catalog.read() as session:
        verdict_events = [e for e in annotation_events.events_of(session, [rows[0].id]) if e.action is Action.VERDICT]
    assert len(verdict_events) == 1 and verdict_events[0].annotator == "ver"


def test_unsatisfactory_masklets_are_refined_with_phase_3_and_verified_again(engine: Engine) -> None:
    enqueue_annotation(engine.queue, engine.store, 2)
    careless = Crew(skill=Skill(overlook_chance=1.0))  # lets every propagated frame through
    drain(lambda: engine.worker("ann", careless, SimulatedSegmenterSource(POOR_TRACKER)).annotate_one(2))
    step = verify_or_refine(engine.worker("ver"), engine.worker("ref"))
    outcomes = drain(step)

    kinds = [(o.queue, o.verdict) for o in outcomes]
    assert (Queue.VERIFY, Verdict.UNSATISFACTORY) in kinds and (Queue.REFINE, None) in kinds
    rows = engine.masklets()
    refined = [r for r in rows if r.annotator == "ref"]
    assert refined and all(r.phase == 3 and r.status == "satisfactory" for r in refined)
    assert {r.status for r in rows if r.annotator == "ann"} >= {"unsatisfactory"}
    with engine.catalog.read() as session:
        submitted = annotation_events.submit_payload(session, refined[0].id)
    assert submitted["round"] == 1 and submitted["refines"] in {r.id for r in rows if r.annotator == "ann"}


def test_a_refined_masklet_is_never_verified_by_its_refiner_nor_its_annotator(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    enqueue_annotation(engine.queue, engine.store, 1, round_=1)
    drain(lambda: engine.worker("ann").annotate_one(1))
    assert engine.worker("ann").verify_one() is None  # their own: never handed to them
    assert engine.worker("someone-else").verify_one() is not None


def test_rejected_masklets_keep_their_reason_out_of_the_dataset(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    enqueue_annotation(engine.queue, engine.store, 1)
    drain(lambda: engine.worker("ann").annotate_one(1))
    strict = Crew(verifier_skill=VerifierSkill(jf_threshold=1.0, reject_below=1.0))
    outcomes = drain(lambda: engine.worker("ver", strict).verify_one())
    assert {o.verdict for o in outcomes} == {Verdict.REJECTED}
    assert {r.status for r in engine.masklets()} == {"rejected"}
    with engine.catalog.read() as session:
        reasons = list(session.scalars(select(VerificationRow.reason)))
    assert reasons and all("does not follow the object" in r for r in reasons)
    assert engine.queue.stats()[-1].ready == 0  # nothing sent to refinement


def test_an_object_still_unsatisfactory_after_its_refinements_is_rejected(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    enqueue_annotation(engine.queue, engine.store, 1)
    drain(lambda: engine.worker("ann").annotate_one(1))
    picky = Crew(verifier_skill=VerifierSkill(jf_threshold=1.0, reject_below=0.0))
    outcomes = drain(verify_or_refine(engine.worker("ver", picky, max_refinements=1), engine.worker("ref")))
    rejected = [o for o in outcomes if o.verdict is Verdict.REJECTED]
    assert len(rejected) == 2 and sum(o.queue is Queue.REFINE for o in outcomes) == 2
    with engine.catalog.read() as session:
        reasons = list(session.scalars(select(VerificationRow.reason).where(VerificationRow.verdict == "rejected")))
    assert all(r.startswith("still unsatisfactory after 1 refinements") for r in reasons)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"video_id": "no-such-video", "object_id": 0}, "no video 'no-such-video'"),
        ({"object_id": 0}, "needs video_id"),
        (None, "ground truth"),  # an object the video has no ground truth for
    ],
)
def test_bad_tasks_go_to_the_dead_letter_and_leave_no_masklet(sqlite_engine: Engine, payload, message: str) -> None:
    engine = sqlite_engine
    payload = payload or {"video_id": engine.video_id, "object_id": 99}
    task = engine.queue.enqueue(Queue.ANNOTATE_PHASE_1, payload)
    (outcome,) = drain(lambda: engine.worker("ann").annotate_one(1))
    assert not outcome.ok and message in outcome.error and not outcome.will_retry
    assert engine.queue.get(task.id).status is TaskStatus.DEAD
    assert engine.masklets() == [] and engine.event_count() == 0


class ClicksOutside(Crew):
    """A crew whose annotator clicks on a frame the video does not have."""

    def annotator(self, inputs, name, task_id):
        inner = super().annotator(inputs, name, task_id)

        class Confused:
            name = inner.name
            first_appearance, strokes, starts_over, accepts = (
                inner.first_appearance, inner.strokes, inner.starts_over, inner.accepts,
            )

            def next_click(self, frame, mask, clicks):
                click = inner.next_click(frame, mask, clicks)
                return None if click is None else Click(99, click.x, click.y, click.positive)

        return Confused()


def test_an_action_on_a_frame_outside_the_video_fails_the_task_for_good(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    (task, _) = enqueue_annotation(engine.queue, engine.store, 3)
    outcome = engine.worker("ann", ClicksOutside()).annotate_one(3)
    assert outcome is not None and "a click on frame 99" in outcome.error and not outcome.will_retry
    assert engine.queue.get(task.id).status is TaskStatus.DEAD
    assert engine.masklets() == [] and engine.event_count() == 0


class BreaksOnce:
    """A model source whose first task's tracker fails half-way through propagation."""

    def __init__(self) -> None:
        self.inner = SimulatedSegmenterSource(GOOD_TRACKER)
        self.failures_left = 1

    def segmenters(self, truth=None):
        segmenters, source = self.inner.segmenters(truth), self

        class Broken:
            model_version_id = None
            description = "breaks once"

            def image(self, frames):
                return segmenters.image(frames)

            def tracker(self, frames, object_id, *, mask_only):
                inner = segmenters.tracker(frames, object_id, mask_only=mask_only)

                class Tracker:
                    mask_only = inner.mask_only
                    click, add_mask = inner.click, inner.add_mask

                    def propagate(self, from_frame):
                        for index, (frame, mask) in enumerate(inner.propagate(from_frame)):
                            if index == 2 and source.failures_left:
                                source.failures_left -= 1
                                raise RuntimeError("the GPU fell off the bus")
                            yield frame, mask

                return Tracker()

        return Broken()


def test_a_model_failing_mid_masklet_is_retried_and_leaves_nothing_half_done(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    (task, _) = enqueue_annotation(engine.queue, engine.store, 2)
    worker = engine.worker("ann", models=BreaksOnce())
    failed = worker.annotate_one(2)
    assert failed is not None and not failed.ok and failed.will_retry
    assert "the GPU fell off the bus" in failed.error and "nothing of this masklet was kept" in failed.error
    assert engine.masklets() == [] and engine.event_count() == 0
    assert engine.queue.get(task.id).status is TaskStatus.READY

    retried = drain(lambda: worker.annotate_one(2))
    assert all(o.ok for o in retried) and len(engine.masklets()) == 2
    assert engine.queue.get(task.id).attempts == 2


class LosesLeases:
    """A queue whose submissions come too late: the lease was lost meanwhile."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    def __getattr__(self, name):
        return getattr(self.queue, name)

    def submit_masklet(self, task_id, token, masklet_id=None, *, effect=None):
        raise LeaseLostError(f"task {task_id} was claimed again by someone else")


def test_a_submission_that_fails_leaves_no_draft_behind(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    enqueue_annotation(engine.queue, engine.store, 1)
    worker = Worker("ann", LosesLeases(engine.queue), engine.store, SimulatedSegmenterSource(GOOD_TRACKER))
    outcome = worker.annotate_one(1)
    assert outcome is not None and "lease lost" in outcome.error
    assert engine.masklets() == [] and engine.event_count() == 0


class CrashesMidWrite:
    """A store whose writes die half-way: the masklet and its events are written, then the process "crashes"."""

    def __init__(self, store: SqlAnnotationStore, crashes: int = 1) -> None:
        self.store = store
        self.crashes = crashes

    def __getattr__(self, name):
        return getattr(self.store, name)

    def masklet_effect(self, result):
        write, outer = self.store.masklet_effect(result), self

        def crashing(session, task):
            masklet_id = write(session, task)
            session.flush()  # the rows are in the transaction: only its rollback can take them back
            if outer.crashes:
                outer.crashes -= 1
                raise RuntimeError(f"worker died after writing masklet {masklet_id}")
            return masklet_id

        return crashing

    def events_effect(self, events, masklet_id):
        write, outer = self.store.events_effect(events, masklet_id), self

        def crashing(session, task):
            write(session, task)
            session.flush()
            if outer.crashes:
                outer.crashes -= 1
                raise RuntimeError("worker died after writing the verdict's events")

        return crashing


def test_a_crash_mid_submission_leaves_no_partial_masklet_and_the_task_is_retried(engine: Engine) -> None:
    (task, _) = enqueue_annotation(engine.queue, engine.store, 1)
    worker = Worker("ann", engine.queue, CrashesMidWrite(engine.store), SimulatedSegmenterSource(GOOD_TRACKER))
    failed = worker.annotate_one(1)
    assert failed is not None and not failed.ok and failed.will_retry and "worker died" in failed.error
    assert failed.masklet_id is None
    assert engine.masklets() == [] and engine.event_count() == 0  # no draft, no events, no verify task
    assert engine.queue.get(task.id).status is TaskStatus.READY
    assert [s.pending for s in engine.queue.stats() if s.queue is Queue.VERIFY] in ([], [0])

    done = drain(lambda: worker.annotate_one(1))
    assert all(o.ok for o in done) and engine.queue.get(task.id).attempts == 2
    rows = engine.masklets()
    assert [r.status for r in rows] == ["in_verification"] * 2
    assert {o.masklet_id for o in done} == {r.id for r in rows}
    with engine.catalog.read() as session:
        events = annotation_events.events_of(session, [rows[0].id])
    assert events[-1].action is Action.SUBMIT and len({e.task_id for e in events}) == 1  # one attempt's events only


def test_a_crash_while_recording_a_verdict_records_nothing_and_the_verdict_is_given_again(engine: Engine) -> None:
    enqueue_annotation(engine.queue, engine.store, 1)
    (annotated, _) = drain(lambda: engine.worker("ann").annotate_one(1))
    crashing = Worker("ver", engine.queue, CrashesMidWrite(engine.store), SimulatedSegmenterSource(GOOD_TRACKER))
    failed = crashing.verify_one()
    assert failed is not None and not failed.ok and failed.will_retry
    with engine.catalog.read() as session:
        assert session.scalar(select(func.count()).select_from(VerificationRow)) == 0
        verdict_events = [e for e in annotation_events.events_of(session, [failed.masklet_id or annotated.masklet_id])
                          if e.action is Action.VERDICT]
    assert verdict_events == []
    assert {r.status for r in engine.masklets()} == {"in_verification"}

    verified = drain(crashing.verify_one)
    assert [o.verdict for o in verified] == [Verdict.SATISFACTORY] * 2
    with engine.catalog.read() as session:
        verdict_events = [e for e in annotation_events.events_of(session, [r.id for r in engine.masklets()])
                          if e.action is Action.VERDICT]
    assert len(verdict_events) == 2  # one per verdict: the crashed attempt left none


def test_a_verdict_on_a_masklet_already_verified_is_refused(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    enqueue_annotation(engine.queue, engine.store, 1)
    (annotated, _) = drain(lambda: engine.worker("ann").annotate_one(1))
    drain(lambda: engine.worker("ver").verify_one())
    stale = engine.queue.enqueue(Queue.VERIFY, {"masklet_id": annotated.masklet_id}, masklet_id=annotated.masklet_id)
    (outcome,) = drain(lambda: engine.worker("ver-2").verify_one())
    assert outcome.task_id == stale.id and not outcome.will_retry
    assert "is satisfactory, not in_verification: it was verified already" in outcome.error
    assert engine.queue.get(stale.id).status is TaskStatus.DEAD
    with engine.catalog.read() as session:
        count = session.scalar(select(func.count()).where(VerificationRow.masklet_id == annotated.masklet_id))
    assert count == 1
