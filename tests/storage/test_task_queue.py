"""The task queues' semantics on both catalogs: leases, retries, dead letter, history, routing.

A fake clock stands in for time, so leases expire and backoffs pass without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from engine.errors import (
    BadPayloadError,
    LeaseLostError,
    NotFoundError,
    QueueError,
    SelfVerificationError,
    UnknownQueueError,
)
from engine.queues import Backoff, NewTask, Queue, TaskStatus
from storage.catalog import Catalog
from storage.queue_schema import MaskletContributorRow, TaskRow
from storage.schema import Base, MaskletRow, VerificationRow, VideoRow
from storage.task_queue import TaskQueue

P1 = Queue.ANNOTATE_PHASE_1


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(catalog: Catalog, clock: FakeClock) -> Iterator[TaskQueue]:
    backoff = Backoff(base_s=10, cap_s=100, jitter=0)
    with TaskQueue(catalog, clock=clock, rng=random.Random(0), backoff=backoff) as task_queue:
        yield task_queue


def add_masklet(catalog: Catalog, annotator: str | None = None, object_id: int = 0) -> int:
    """A draft masklet of a one-frame video, enough for the queues to route."""
    with catalog.write() as session:
        if session.get(VideoRow, "v1") is None:
            session.add(
                VideoRow(
                    id="v1", source_uri="v1.mp4", content_hash="h1", width=4, height=4, source_fps=6.0,
                    source_frame_count=1, duration_s=1.0, sample_fps=6.0, frame_count=1,
                )
            )
            session.flush()
        row = MaskletRow(
            video_id="v1", object_id=object_id, source="manual", status="draft", annotator=annotator,
            frame_count=1, height=4, width=4, size_bucket="small",
        )
        session.add(row)
        session.flush()
        return row.id


def masklet_status(catalog: Catalog, masklet_id: int) -> str:
    with catalog.read() as session:
        return session.scalars(select(MaskletRow.status).where(MaskletRow.id == masklet_id)).one()


# --- schema -------------------------------------------------------------------------------------


def test_the_queue_tables_match_their_migration(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert {"tasks", "task_history", "masklet_contributors"} <= set(Base.metadata.tables)


def test_downgrade_removes_the_queues_and_upgrade_restores_them(catalog: Catalog, queue: TaskQueue) -> None:
    queue.enqueue(P1, {"n": 1})
    catalog.downgrade("0001")
    with catalog.read() as session:
        assert "tasks" not in set(session.connection().dialect.get_table_names(session.connection()))
    catalog.upgrade()
    assert queue.enqueue(P1, {"n": 1}).id == 1


# --- enqueue and claim ----------------------------------------------------------------------------


def test_enqueue_is_idempotent_by_key_within_a_queue(catalog: Catalog, queue: TaskQueue) -> None:
    first = queue.enqueue(P1, {"video": "v1"}, key="v1")
    again = queue.enqueue(P1, {"video": "other"}, key="v1")
    elsewhere = queue.enqueue(Queue.ANNOTATE_PHASE_2, {"video": "v1"}, key="v1")
    assert again == first and again.payload == {"video": "v1"}
    assert elsewhere.id != first.id
    with catalog.read() as session:
        assert session.scalar(select(func.count()).select_from(TaskRow)) == 2
    assert [t.note for t in queue.history(first.id)] == ["enqueued"]


def test_enqueue_many_is_one_transaction(catalog: Catalog, queue: TaskQueue) -> None:
    with pytest.raises(NotFoundError, match="masklet 1000000"):
        queue.enqueue_many([NewTask(P1, {"n": 1}), NewTask(P1, {"n": 2}, masklet_id=10**6)])
    assert queue.list_tasks() == []
    assert len(queue.enqueue_many([NewTask(P1, {"n": i}) for i in range(3)])) == 3


def test_claims_serve_higher_priority_first_then_oldest(queue: TaskQueue, clock: FakeClock) -> None:
    ids = {}
    for name, priority in [("low-old", 0), ("high", 5), ("low-new", 0), ("mid", 1)]:
        ids[queue.enqueue(P1, {"name": name}, priority=priority).id] = name
        clock.advance(1)
    leases = queue.claim(P1, "w1", 30, n=3)
    assert [lease.task.payload["name"] for lease in leases] == ["high", "mid", "low-old"]
    assert [lease.task.payload["name"] for lease in queue.claim(P1, "w2", 30, n=3)] == ["low-new"]
    assert queue.claim(P1, "w3", 30) == []


def test_a_claim_leases_with_a_token_an_expiry_and_counts_the_attempt(queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(P1, {})
    (lease,) = queue.claim(P1, "w1", 45)
    assert lease.worker == "w1" and len(lease.token) >= 32
    assert lease.expires_at == clock.now + timedelta(seconds=45)
    assert lease.task.status is TaskStatus.LEASED and lease.task.attempts == 1 and lease.task.leased_by == "w1"


def test_tasks_of_other_queues_and_future_tasks_are_not_claimed(queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(Queue.ANNOTATE_PHASE_2, {})
    later = queue.enqueue(P1, {}, delay_s=60)
    assert queue.claim(P1, "w1", 30) == []
    clock.advance(61)
    assert [lease.task_id for lease in queue.claim(P1, "w1", 30)] == [later.id]


# --- leases ---------------------------------------------------------------------------------------


def test_an_expired_lease_is_delivered_again(queue: TaskQueue, clock: FakeClock) -> None:
    task = queue.enqueue(P1, {"x": 1})
    (first,) = queue.claim(P1, "w1", 10)
    clock.advance(5)
    assert queue.claim(P1, "w2", 10) == []  # still leased
    clock.advance(6)
    (second,) = queue.claim(P1, "w2", 10)
    assert second.task_id == task.id and second.task.attempts == 2 and second.token != first.token
    notes = [(t.from_status, t.to_status, t.worker) for t in queue.history(task.id)]
    assert notes[-2:] == [(TaskStatus.LEASED, TaskStatus.READY, "w1"), (TaskStatus.READY, TaskStatus.LEASED, "w2")]


def test_a_stale_complete_is_refused_and_changes_nothing(catalog: Catalog, queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(P1, {})
    (stale,) = queue.claim(P1, "w1", 10)
    clock.advance(11)
    (fresh,) = queue.claim(P1, "w2", 10)
    effects: list[int] = []
    for task in (stale.task, stale.task_id):  # the claimed Task, or just its id
        with pytest.raises(LeaseLostError, match="claimed again by w2"):
            queue.complete(task, stale.token, {"by": "w1"}, effect=lambda s, t: effects.append(t.id))
    with pytest.raises(LeaseLostError):
        queue.fail(stale.task_id, stale.token, "late failure")
    assert effects == []
    done = queue.complete(fresh.task, fresh.token, {"by": "w2"}, effect=lambda s, t: effects.append(t.id))
    assert done.status is TaskStatus.DONE and done.result == {"by": "w2"} and effects == [done.id]
    assert queue.get(done.id) == done  # what complete returned is what the catalog holds


def test_an_expired_lease_cannot_complete_even_before_anyone_reclaims(queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(P1, {})
    (lease,) = queue.claim(P1, "w1", 10)
    clock.advance(10)
    with pytest.raises(LeaseLostError, match="expired"):
        queue.complete(lease.task_id, lease.token)
    assert queue.reap() == 1
    with pytest.raises(LeaseLostError, match="is ready"):
        queue.complete(lease.task_id, lease.token)


def test_a_wrong_token_is_refused(queue: TaskQueue) -> None:
    queue.enqueue(P1, {})
    (lease,) = queue.claim(P1, "w1", 30)
    with pytest.raises(LeaseLostError):
        queue.complete(lease.task_id, "not-the-token")
    with pytest.raises(LeaseLostError):
        queue.heartbeat(lease.task_id, "not-the-token", 30)
    with pytest.raises(LeaseLostError, match="no task"):
        queue.complete(10**6, lease.token)
    assert queue.get(lease.task_id).status is TaskStatus.LEASED
    queue.complete(lease.task_id, lease.token)
    with pytest.raises(LeaseLostError, match="is done"):
        queue.complete(lease.task_id, lease.token)  # twice is a caller's bug, not a success


def test_a_heartbeat_keeps_a_slow_task(queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(P1, {})
    (lease,) = queue.claim(P1, "w1", 10)
    for _ in range(3):
        clock.advance(8)
        assert queue.heartbeat(lease.task_id, lease.token, 10) == clock.now + timedelta(seconds=10)
    assert queue.claim(P1, "w2", 10) == []
    assert queue.complete(lease.task_id, lease.token).status is TaskStatus.DONE
    clock.advance(11)
    with pytest.raises(LeaseLostError):
        queue.heartbeat(lease.task_id, lease.token, 10)


def test_an_effect_that_fails_rolls_the_completion_back(queue: TaskQueue) -> None:
    queue.enqueue(P1, {})
    (lease,) = queue.claim(P1, "w1", 30)

    def broken(session, task) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("effect failed")

    with pytest.raises(RuntimeError):
        queue.complete(lease.task_id, lease.token, effect=broken)
    assert queue.get(lease.task_id).status is TaskStatus.LEASED
    assert queue.complete(lease.task_id, lease.token).status is TaskStatus.DONE


# --- failures, backoff, dead letter ------------------------------------------------------------------


def test_a_failed_task_waits_out_its_backoff(queue: TaskQueue, clock: FakeClock) -> None:
    queue.enqueue(P1, {}, max_attempts=5)
    for attempt, wait in [(1, 10), (2, 20), (3, 40)]:
        (lease,) = queue.claim(P1, "w1", 30)
        failed = queue.fail(lease.task_id, lease.token, f"model server down ({attempt})")
        assert failed.status is TaskStatus.READY and failed.attempts == attempt
        assert failed.available_at == clock.now + timedelta(seconds=wait)
        clock.advance(wait - 1)
        assert queue.claim(P1, "w1", 30) == []
        clock.advance(1)


def test_out_of_attempts_a_task_goes_to_the_dead_letter_with_its_last_error(queue: TaskQueue, clock: FakeClock) -> None:
    task = queue.enqueue(P1, {}, max_attempts=2)
    (lease,) = queue.claim(P1, "w1", 30)
    queue.fail(lease.task_id, lease.token, "first error")
    clock.advance(100)
    (lease,) = queue.claim(P1, "w1", 30)
    dead = queue.fail(lease.task_id, lease.token, "second error")
    assert dead.status is TaskStatus.DEAD and dead.last_error == "second error"
    clock.advance(1000)
    assert queue.claim(P1, "w1", 30) == []
    assert [t.id for t in queue.list_tasks(status="dead")] == [task.id]
    revived = queue.requeue(task.id)
    assert revived.status is TaskStatus.READY and revived.attempts == 0 and revived.last_error == "second error"
    assert queue.claim(P1, "w1", 30)[0].task_id == task.id
    with pytest.raises(QueueError, match="not in the dead letter"):
        queue.requeue(task.id)
    with pytest.raises(NotFoundError):
        queue.requeue(10**6)


def test_an_error_no_retry_can_fix_goes_straight_to_the_dead_letter(queue: TaskQueue) -> None:
    queue.enqueue(P1, {}, max_attempts=5)
    (lease,) = queue.claim(P1, "w1", 30)
    assert queue.fail(lease.task_id, lease.token, "video file is gone", retry=False).status is TaskStatus.DEAD


def test_a_worker_that_keeps_dying_sends_its_task_to_the_dead_letter(queue: TaskQueue, clock: FakeClock) -> None:
    task = queue.enqueue(P1, {}, max_attempts=2)
    for _ in range(2):
        assert queue.claim(P1, "w1", 10)
        clock.advance(11)
    assert queue.claim(P1, "w1", 10) == []  # the second expiry was its last attempt
    dead = queue.get(task.id)
    assert dead.status is TaskStatus.DEAD and "lease expired: w1" in (dead.last_error or "")
    assert [t.id for t in queue.requeue_dead(P1)] == [task.id]


def test_every_transition_is_in_the_history(queue: TaskQueue, clock: FakeClock) -> None:
    task = queue.enqueue(P1, {}, max_attempts=3)
    (lease,) = queue.claim(P1, "w1", 10)
    queue.fail(lease.task_id, lease.token, "oops")
    clock.advance(10)
    (lease,) = queue.claim(P1, "w2", 10)
    clock.advance(11)
    (lease,) = queue.claim(P1, "w3", 10)
    queue.complete(lease.task_id, lease.token)
    moves = [(t.from_status and t.from_status.value, t.to_status.value, t.worker) for t in queue.history(task.id)]
    assert moves == [
        (None, "ready", None),
        ("ready", "leased", "w1"),
        ("leased", "ready", "w1"),
        ("ready", "leased", "w2"),
        ("leased", "ready", "w2"),
        ("ready", "leased", "w3"),
        ("leased", "done", "w3"),
    ]
    times = [t.at for t in queue.history(task.id)]
    assert times == sorted(times)


def test_stats_give_depth_by_status_and_the_oldest_wait(queue: TaskQueue, clock: FakeClock) -> None:
    for _ in range(3):
        queue.enqueue(P1, {})
    queue.enqueue(Queue.REFINE, {}, delay_s=600)  # not claimable yet: not waiting
    clock.advance(30)
    (lease,) = queue.claim(P1, "w1", 60)
    queue.complete(lease.task_id, lease.token)
    queue.claim(P1, "w1", 60)
    stats = {s.queue: s for s in queue.stats()}
    assert (stats[P1].ready, stats[P1].leased, stats[P1].done, stats[P1].dead) == (1, 1, 1, 0)
    assert stats[P1].oldest_ready_age_s == pytest.approx(30)
    assert stats[Queue.REFINE].ready == 1 and stats[Queue.REFINE].oldest_ready_age_s is None
    assert stats[Queue.VERIFY].pending == 0


# --- bad input --------------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors(queue: TaskQueue) -> None:
    with pytest.raises(UnknownQueueError, match="unknown queue 'annotate'"):
        queue.enqueue("annotate", {})
    with pytest.raises(UnknownQueueError):
        queue.claim("verification", "w1", 30)
    with pytest.raises(QueueError, match="lease_seconds=-5"):
        queue.claim(P1, "w1", -5)
    with pytest.raises(BadPayloadError, match="does not serialise"):
        queue.enqueue(P1, {"mask": object()})
    with pytest.raises(BadPayloadError):
        queue.enqueue(P1, {}).id and queue.complete(1, "t", {"iou": float("inf")})
    with pytest.raises(QueueError, match="worker"):
        queue.claim(P1, "", 30)
    with pytest.raises(QueueError, match="status"):
        queue.list_tasks(status="waiting")


# --- self-verification ---------------------------------------------------------------------------------


def test_a_verifier_is_never_handed_a_masklet_they_made(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    queue.enqueue(P1, {"object": 0}, masklet_id=masklet)
    (lease,) = queue.claim(P1, "alice", 60)
    routed = queue.submit_masklet(lease.task_id, lease.token)
    assert routed.next_task is not None and routed.next_task.queue is Queue.VERIFY
    assert queue.claim(Queue.VERIFY, "alice", 60) == []  # her own masklet: invisible to her
    assert [lease.task_id for lease in queue.claim(Queue.VERIFY, "bob", 60)] == [routed.next_task.id]


def test_the_database_refuses_self_verification_when_python_is_bypassed(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog, annotator="carol")
    with catalog.write() as session:
        session.add(MaskletContributorRow(masklet_id=masklet, worker="alice", contribution="refined"))
    verify = queue.enqueue(Queue.VERIFY, {}, masklet_id=masklet)
    for verifier in ("alice", "carol"):
        with pytest.raises(DBAPIError, match="may not verify a masklet"):
            with catalog.write() as session:
                session.add(VerificationRow(masklet_id=masklet, verifier=verifier, verdict="satisfactory"))
        with pytest.raises(DBAPIError, match="may not verify a masklet"):
            with catalog.write() as session:
                session.execute(
                    text(
                        "UPDATE tasks SET status = 'leased', leased_by = :who, lease_token = 't', "
                        "lease_expires_at = available_at WHERE id = :id"
                    ),
                    {"who": verifier, "id": verify.id},
                )
    with catalog.write() as session:  # anyone else may
        session.add(VerificationRow(masklet_id=masklet, verifier="bob", verdict="satisfactory"))


def test_a_verdict_from_a_contributor_is_refused_even_through_the_queue(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    verify = queue.enqueue(Queue.VERIFY, {}, masklet_id=masklet)
    (lease,) = queue.claim(Queue.VERIFY, "dave", 60)
    # dave becomes a contributor after claiming (say, he was also handed the refine task).
    with catalog.write() as session:
        session.add(MaskletContributorRow(masklet_id=masklet, worker="dave", contribution="refined"))
    with pytest.raises(SelfVerificationError, match="dave"):
        queue.route_verdict(lease.task_id, lease.token, "satisfactory")
    assert queue.get(verify.id).status is TaskStatus.LEASED
    assert masklet_status(catalog, masklet) == "draft"


# --- routing, end to end ---------------------------------------------------------------------------------


def work_one(queue: TaskQueue, name: Queue, worker: str, verdict: str | None = None, reason: str | None = None):  # type: ignore[no-untyped-def]
    """A trivial worker: claim one task of ``name`` and finish it the way that queue's work ends."""
    (lease,) = queue.claim(name, worker, 60)
    if name is Queue.VERIFY:
        return queue.route_verdict(lease.task_id, lease.token, verdict or "satisfactory", reason=reason, frames=[0])
    return queue.submit_masklet(lease.task_id, lease.token)


def test_masklets_travel_annotate_verify_refine_verify_to_the_dataset(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    queue.enqueue(Queue.ANNOTATE_PHASE_3, {"object": 0}, masklet_id=masklet, video_id="v1", key="v1/0")

    work_one(queue, Queue.ANNOTATE_PHASE_3, "annotator")
    assert masklet_status(catalog, masklet) == "in_verification"

    routed = work_one(queue, Queue.VERIFY, "verifier", "unsatisfactory", "leaks into the background")
    assert masklet_status(catalog, masklet) == "unsatisfactory"
    refine = routed.next_task
    assert refine is not None and refine.queue is Queue.REFINE
    assert refine.payload == {"phase": 3, "reason": "leaks into the background", "frames": [0], "masklet_id": masklet}

    work_one(queue, Queue.REFINE, "refiner")
    assert masklet_status(catalog, masklet) == "in_verification"
    # Both the annotator and the refiner are now barred; the first verifier is not.
    assert queue.claim(Queue.VERIFY, "annotator", 60) == []
    assert queue.claim(Queue.VERIFY, "refiner", 60) == []
    routed = work_one(queue, Queue.VERIFY, "verifier", "satisfactory")
    assert routed.route.in_dataset and routed.next_task is None
    assert masklet_status(catalog, masklet) == "satisfactory"

    with catalog.read() as session:
        verdicts = session.execute(
            select(VerificationRow.verifier, VerificationRow.verdict).order_by(VerificationRow.id)
        ).all()
        contributors = set(session.execute(select(MaskletContributorRow.worker, MaskletContributorRow.contribution)))
    assert [tuple(v) for v in verdicts] == [("verifier", "unsatisfactory"), ("verifier", "satisfactory")]
    assert contributors == {("annotator", "annotated"), ("refiner", "refined")}
    assert all(s.pending == 0 for s in queue.stats())


def test_a_rejected_masklet_keeps_its_reason_and_goes_nowhere(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    queue.enqueue(Queue.ANNOTATE_PHASE_1, {}, masklet_id=masklet)
    work_one(queue, Queue.ANNOTATE_PHASE_1, "annotator")
    (verify,) = queue.claim(Queue.VERIFY, "verifier", 60)
    with pytest.raises(QueueError, match="needs a reason"):
        queue.route_verdict(verify.task_id, verify.token, "rejected")
    assert queue.get(verify.task_id).status is TaskStatus.LEASED  # nothing recorded: still the verifier's
    routed = queue.route_verdict(verify.task_id, verify.token, "rejected", reason="two objects in one masklet")
    assert routed.next_task is None and masklet_status(catalog, masklet) == "rejected"
    with catalog.read() as session:
        assert session.scalars(select(VerificationRow.reason)).one() == "two objects in one masklet"
    assert queue.get(verify.task_id).result == {
        "verdict": "rejected", "reason": "two objects in one masklet",
        "verification_id": routed.verification_id, "next_task_id": None,
    }


def test_a_refinement_saved_as_a_new_masklet_keeps_its_contributors_barred(catalog: Catalog, queue: TaskQueue) -> None:
    old, new = add_masklet(catalog, object_id=0), add_masklet(catalog, object_id=0)
    queue.enqueue(Queue.ANNOTATE_PHASE_2, {}, masklet_id=old)
    work_one(queue, Queue.ANNOTATE_PHASE_2, "annotator")
    work_one(queue, Queue.VERIFY, "verifier", "unsatisfactory", "misses the tail")
    (lease,) = queue.claim(Queue.REFINE, "refiner", 60)
    routed = queue.submit_masklet(lease.task_id, lease.token, masklet_id=new)
    assert routed.next_task is not None and routed.next_task.masklet_id == new
    assert queue.claim(Queue.VERIFY, "annotator", 60) == []
    assert queue.claim(Queue.VERIFY, "refiner", 60) == []


def test_routing_is_refused_to_the_wrong_kind_of_task(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    queue.enqueue(P1, {}, masklet_id=masklet)
    (lease,) = queue.claim(P1, "w1", 60)
    with pytest.raises(QueueError, match="only verify tasks take a verdict"):
        queue.route_verdict(lease.task_id, lease.token, "satisfactory")
    queue.enqueue(P1, {})
    (bare,) = queue.claim(P1, "w1", 60)
    with pytest.raises(QueueError, match="names no masklet"):
        queue.submit_masklet(bare.task_id, bare.token)
    queue.submit_masklet(lease.task_id, lease.token)
    (verify,) = queue.claim(Queue.VERIFY, "w2", 60)
    with pytest.raises(QueueError, match="does not produce a masklet"):
        queue.submit_masklet(verify.task_id, verify.token)


# --- writes that commit with the submission or the verdict -------------------------------------------


def new_masklet_effect(catalog: Catalog, *, dies: bool = False):  # type: ignore[no-untyped-def]
    """An effect that writes a masklet row in the submission's transaction and returns its id (or dies after)."""
    add_masklet(catalog)  # the video row, committed beforehand; this masklet stays a draft nobody submits
    written: list[int] = []

    def effect(session, task):  # type: ignore[no-untyped-def]
        row = MaskletRow(
            video_id="v1", object_id=task.id, source="manual", status="draft", frame_count=1, height=4, width=4,
            size_bucket="small",
        )
        session.add(row)
        session.flush()
        written.append(row.id)
        if dies:
            raise RuntimeError("the worker died mid-submission")
        return row.id

    return effect, written


def masklet_count(catalog: Catalog) -> int:
    with catalog.read() as session:
        return session.scalar(select(func.count()).select_from(MaskletRow)) or 0


def test_a_submission_s_effect_writes_the_masklet_it_submits(catalog: Catalog, queue: TaskQueue) -> None:
    effect, written = new_masklet_effect(catalog)
    queue.enqueue(P1, {"object": 0})
    (lease,) = queue.claim(P1, "alice", 60)
    routed = queue.submit_masklet(lease.task_id, lease.token, effect=effect)
    (masklet,) = written
    assert routed.next_task is not None and routed.next_task.masklet_id == masklet
    assert masklet_status(catalog, masklet) == "in_verification"
    assert queue.claim(Queue.VERIFY, "alice", 60) == []  # the effect's masklet is hers: she may not verify it


def test_a_submission_whose_effect_dies_leaves_nothing_and_keeps_the_lease(catalog: Catalog, queue: TaskQueue) -> None:
    dying, written = new_masklet_effect(catalog, dies=True)
    before = masklet_count(catalog)
    queue.enqueue(P1, {"object": 0})
    (lease,) = queue.claim(P1, "alice", 60)
    with pytest.raises(RuntimeError, match="died mid-submission"):
        queue.submit_masklet(lease.task_id, lease.token, effect=dying)
    assert len(written) == 1 and masklet_count(catalog) == before  # written, then rolled back with the rest
    task = queue.get(lease.task_id)
    assert task.status is TaskStatus.LEASED and task.result is None
    assert queue.list_tasks(Queue.VERIFY) == []
    assert queue.fail(lease.task_id, lease.token, "died").status is TaskStatus.READY  # retryable, as any failure


def test_an_effect_never_runs_for_a_lost_lease_and_must_name_a_masklet(
    catalog: Catalog, queue: TaskQueue, clock: FakeClock
) -> None:
    effect, written = new_masklet_effect(catalog)
    queue.enqueue(P1, {"object": 0})
    (lease,) = queue.claim(P1, "alice", 10)
    clock.advance(11)
    with pytest.raises(LeaseLostError):
        queue.submit_masklet(lease.task_id, lease.token, effect=effect)
    assert written == []

    (again,) = queue.claim(P1, "bob", 60)
    with pytest.raises(QueueError, match="must return the id of the masklet"):
        queue.submit_masklet(again.task_id, again.token, effect=lambda session, task: "masklet 7")
    assert queue.get(again.task_id).status is TaskStatus.LEASED


def test_a_verdict_whose_effect_dies_records_no_verdict(catalog: Catalog, queue: TaskQueue) -> None:
    masklet = add_masklet(catalog)
    queue.enqueue(P1, {}, masklet_id=masklet)
    work_one(queue, P1, "annotator")
    (verify,) = queue.claim(Queue.VERIFY, "verifier", 60)
    ran: list[int] = []

    def dies(session, task):  # type: ignore[no-untyped-def]
        ran.append(task.id)
        session.add(MaskletRow(video_id="v1", object_id=9, source="manual", status="draft", frame_count=1,
                               height=4, width=4, size_bucket="small"))
        raise RuntimeError("the verifier's process died")

    with pytest.raises(RuntimeError):
        queue.route_verdict(verify.task_id, verify.token, "unsatisfactory", reason="misses the tail", effect=dies)
    assert ran == [verify.task_id]
    assert masklet_status(catalog, masklet) == "in_verification" and queue.list_tasks(Queue.REFINE) == []
    with catalog.read() as session:
        assert session.scalar(select(func.count()).select_from(VerificationRow)) == 0
    assert queue.get(verify.task_id).status is TaskStatus.LEASED
    routed = queue.route_verdict(verify.task_id, verify.token, "unsatisfactory", reason="misses the tail",
                                 effect=lambda session, task: ran.append(task.id))
    assert ran == [verify.task_id] * 2 and routed.next_task is not None and routed.next_task.queue is Queue.REFINE
