"""The catalog questions flows ask between steps, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.errors import NotFoundError
from engine.masklets import MaskletSource
from engine.queues import Queue, TaskStatus, Verdict
from engine.simulated_segmenter import SimulatedSegmenterSource, simulated_auto_masklet
from phases.auto_masklets import submit_candidates
from phases.workers import Worker, drain, enqueue_annotation
from storage import masklets as masklet_queries
from storage.catalog import Catalog
from storage.schema import MaskletRow
from storage.flow_queries import (
    claimable_count,
    dataset_size,
    task_states,
    verified_masklet,
    videos_without_auto_masklets,
)
from tests.phases.test_workers import make_engine


def test_claimable_work_excludes_held_back_and_leased_tasks(catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(catalog, tmp_path)
    tasks = enqueue_annotation(engine.queue, engine.store, 1)
    assert claimable_count(catalog, Queue.ANNOTATE_PHASE_1) == 2 and claimable_count(catalog, Queue.VERIFY) == 0

    (lease,) = engine.queue.claim(Queue.ANNOTATE_PHASE_1, "w", 60)
    assert claimable_count(catalog, Queue.ANNOTATE_PHASE_1) == 1
    engine.queue.fail(lease.task_id, lease.token, "flaky")  # back after a backoff: not claimable yet
    held = engine.queue.get(lease.task_id)
    assert held.status is TaskStatus.READY
    assert claimable_count(catalog, Queue.ANNOTATE_PHASE_1, now=held.available_at - timedelta(microseconds=1)) == 1
    assert claimable_count(catalog, Queue.ANNOTATE_PHASE_1, now=held.available_at) == 2

    states = task_states(catalog, [t.id for t in reversed(tasks)])
    assert [s.task_id for s in states] == sorted(t.id for t in tasks)
    assert {s.status for s in states} == {TaskStatus.READY} and not any(s.finished for s in states)
    with pytest.raises(NotFoundError, match="no task 999"):
        task_states(catalog, [tasks[0].id, 999])
    assert task_states(catalog, []) == []


def test_finished_tasks_carry_their_masklet(catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(catalog, tmp_path)
    tasks = enqueue_annotation(engine.queue, engine.store, 3)
    outcomes = drain(lambda: Worker("ann", engine.queue, engine.store, SimulatedSegmenterSource()).annotate_one(3))
    states = task_states(catalog, [t.id for t in tasks])
    assert all(s.finished and s.status is TaskStatus.DONE for s in states)
    assert sorted(s.result["masklet_id"] for s in states) == sorted(o.masklet_id for o in outcomes)

    assert dataset_size(catalog) == 0  # submitted, not yet verified: not in the dataset
    drain(lambda: Worker("ver", engine.queue, engine.store, SimulatedSegmenterSource()).verify_one())
    with catalog.read() as session:
        satisfactory = session.scalar(
            select(func.count())
            .select_from(MaskletRow)
            .where(MaskletRow.status == "satisfactory", MaskletRow.source != "ground_truth")
        )
    assert dataset_size(catalog) == satisfactory >= 1

    facts = verified_masklet(catalog, outcomes[0].masklet_id, Verdict.SATISFACTORY, "ver")
    assert (facts.source, facts.phase, facts.frame_count, facts.verifier) == ("manual", 3, 8, "ver")
    assert facts.video_id == engine.video_id and facts.refinement_round == 0
    with pytest.raises(NotFoundError):
        verified_masklet(catalog, 10_000, Verdict.REJECTED, "ver")


def test_new_videos_are_those_without_auto_masklets(catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(catalog, tmp_path)
    assert videos_without_auto_masklets(catalog) == [engine.video_id]
    assert videos_without_auto_masklets(catalog, [engine.video_id]) == [engine.video_id]
    with pytest.raises(NotFoundError, match="'nope'"):
        videos_without_auto_masklets(catalog, [engine.video_id, "nope"])

    with catalog.read() as session:
        truth = masklet_queries.ground_truth(session, engine.video_id)[0]
    candidate = simulated_auto_masklet(truth)
    assert candidate.source is MaskletSource.AUTO
    submit_candidates(engine.store, [candidate], None)
    assert videos_without_auto_masklets(catalog) == []
