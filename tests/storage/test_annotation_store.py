"""Drafts, events and metrics queries of annotation work on the catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from engine.annotation import Action
from engine.errors import NotFoundError
from engine.queues import NewTask, Queue, TaskStatus
from engine.simulated_annotator import SimulatedAnnotator
from engine.simulated_segmenter import SimulatedSegmenters
from engine.time_model import ManualClock
from phases import phase1
from phases.procedure import PhaseJob
from storage import annotation_events
from storage.annotation_events import CatalogEventSink
from storage.annotation_metrics import phase_metrics
from storage.catalog import Catalog
from storage.schema import MaskletRow
from tests.phases.conftest import GOOD_TRACKER
from tests.phases.test_workers import make_engine


@pytest.fixture
def engine(catalog: Catalog, tmp_path: Path):
    return make_engine(catalog, tmp_path)


def annotated(engine):
    inputs = engine.store.inputs(engine.video_id, 0)
    annotator = SimulatedAnnotator(inputs.truth, name="ann")
    segmenters = SimulatedSegmenters(inputs.truth, GOOD_TRACKER)
    return phase1.annotate(PhaseJob(engine.video_id, 0, inputs.frames, annotator, segmenters, clock=ManualClock()))


def test_a_draft_and_its_events_are_stored_together(engine) -> None:
    result = annotated(engine)
    draft = engine.store.save_draft(result)
    stored = engine.store.masklet(draft)
    assert stored.status == "draft" and stored.phase == 1 and stored.refinement_round == 0
    with engine.catalog.read() as session:
        events = annotation_events.events_of(session, [draft])
    assert [e.action for e in events] == [e.action for e in result.events]
    assert events[0].started_at == result.events[0].started_at
    assert phase_metrics(engine.catalog) == []  # drafts never count

    with engine.catalog.write() as session:
        session.execute(update(MaskletRow).where(MaskletRow.id == draft).values(status="in_verification"))
    (row,) = phase_metrics(engine.catalog)
    assert row.phase == 1 and row.masklets == 1 and row.jf is not None and row.jf > 0.9


def claim_annotate_task(engine):
    (task,) = engine.queue.enqueue_many([NewTask(Queue.ANNOTATE_PHASE_1, {"video_id": engine.video_id, "object_id": 0})])
    (lease,) = engine.queue.claim(Queue.ANNOTATE_PHASE_1, "ann", 60)
    assert lease.task_id == task.id
    return lease


def dies_after(write):
    """An effect that does all of ``write`` and then dies, as a worker killed mid-transaction would."""

    def effect(session, task):
        write(session, task)
        session.flush()
        raise RuntimeError("killed")

    return effect


def test_the_masklet_its_events_and_the_submission_commit_together(engine) -> None:
    result = annotated(engine)
    lease = claim_annotate_task(engine)
    routed = engine.queue.submit_masklet(lease.task_id, lease.token, effect=engine.store.masklet_effect(result))
    masklet_id = routed.next_task.masklet_id
    assert engine.store.masklet(masklet_id).status == "in_verification"
    assert engine.queue.get(lease.task_id).result["masklet_id"] == masklet_id
    with engine.catalog.read() as session:
        events = annotation_events.events_of(session, [masklet_id])
    assert [e.action for e in events] == [e.action for e in result.events]


def test_a_submission_that_dies_in_its_writes_leaves_nothing_and_the_task_leased(engine) -> None:
    result = annotated(engine)
    lease = claim_annotate_task(engine)
    with pytest.raises(RuntimeError, match="killed"):
        engine.queue.submit_masklet(lease.task_id, lease.token, effect=dies_after(engine.store.masklet_effect(result)))
    with engine.catalog.read() as session:
        assert session.scalar(select(func.count()).select_from(MaskletRow).where(MaskletRow.source == "manual")) == 0
    assert engine.event_count() == 0
    task = engine.queue.get(lease.task_id)
    assert task.status is TaskStatus.LEASED and task.leased_by == "ann"  # still the worker's: the retry below uses its token
    assert engine.queue.list_tasks(Queue.VERIFY) == []

    routed = engine.queue.submit_masklet(lease.task_id, lease.token, effect=engine.store.masklet_effect(result))
    assert engine.store.masklet(routed.next_task.masklet_id).status == "in_verification"


def test_a_verdict_and_the_verifier_s_events_commit_together(engine) -> None:
    result = annotated(engine)
    lease = claim_annotate_task(engine)
    routed = engine.queue.submit_masklet(lease.task_id, lease.token, effect=engine.store.masklet_effect(result))
    masklet_id = routed.next_task.masklet_id
    (verify,) = engine.queue.claim(Queue.VERIFY, "ver", 60)
    verdict = [dataclasses.replace(result.events[-1], action=Action.VERDICT, annotator="ver", task_id=verify.task_id)]
    before = engine.event_count()
    with pytest.raises(RuntimeError, match="killed"):
        engine.queue.route_verdict(
            verify.task_id, verify.token, "satisfactory", effect=dies_after(engine.store.events_effect(verdict, masklet_id))
        )
    assert engine.event_count() == before and engine.store.masklet(masklet_id).status == "in_verification"
    assert engine.queue.get(verify.task_id).status is TaskStatus.LEASED

    effect = engine.store.events_effect(verdict, masklet_id)
    engine.queue.route_verdict(verify.task_id, verify.token, "satisfactory", effect=effect)
    assert engine.event_count() == before + 1 and engine.store.masklet(masklet_id).status == "satisfactory"


def test_the_event_sink_records_events_of_any_source(engine) -> None:
    result = annotated(engine)
    CatalogEventSink(engine.catalog).record(result.events[:3])
    with engine.catalog.read() as session:
        actions = list(session.scalars(select(annotation_events.events_table.c.action)))
    assert actions == [e.action.value for e in result.events[:3]]
    assert Action(actions[0]) is result.events[0].action


def test_inputs_of_a_missing_video_are_a_clear_error(engine) -> None:
    with pytest.raises(NotFoundError, match="no video 'nope'"):
        engine.store.inputs("nope", 0)
    assert engine.store.inputs(engine.video_id, 42).truth is None
