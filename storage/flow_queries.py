"""Catalog questions the flows ask between steps: how much work is claimable, where a batch stands.

Each answers in one small query, so a flow can poll them every few seconds without loading
tasks or masks: how many tasks of a queue a worker could claim now, the state of a batch of
tasks (people working them in the web app), the videos that have no auto masklets yet, and
the facts of a verified masklet (and the dataset's size) that its
``dataengine.masklet.verified`` event carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from engine.errors import NotFoundError
from engine.events import VerifiedMasklet
from engine.masklets import MaskletSource
from engine.queues import Queue, TaskStatus, Verdict
from storage import annotation_events
from storage.catalog import Catalog
from storage.queue_schema import TaskRow
from storage.schema import MaskletRow, VideoRow, utcnow


@dataclass(frozen=True)
class TaskState:
    """Where one task stands, and what it produced or why it failed."""

    task_id: int
    queue: Queue
    status: TaskStatus
    result: Mapping[str, Any] | None
    last_error: str | None

    @property
    def finished(self) -> bool:
        return self.status in (TaskStatus.DONE, TaskStatus.DEAD)


def claimable_count(catalog: Catalog, queue: Queue, now: datetime | None = None) -> int:
    """Tasks of ``queue`` ready now (held-back retries excluded): how many a crew could claim."""
    with catalog.read() as session:
        count = session.scalar(
            select(func.count())
            .select_from(TaskRow)
            .where(
                TaskRow.queue == queue.value,
                TaskRow.status == TaskStatus.READY.value,
                TaskRow.available_at <= (now or utcnow()),
            )
        )
    return int(count or 0)


def task_states(catalog: Catalog, task_ids: Sequence[int]) -> list[TaskState]:
    """The states of these tasks, in id order; NotFoundError naming any id the catalog lacks."""
    wanted = sorted(set(task_ids))
    if not wanted:
        return []
    states: list[TaskState] = []
    with catalog.read() as session:
        for start in range(0, len(wanted), 500):  # stay under every backend's bound-parameter limit
            chunk = wanted[start : start + 500]
            rows = session.execute(
                select(TaskRow.id, TaskRow.queue, TaskRow.status, TaskRow.result, TaskRow.last_error)
                .where(TaskRow.id.in_(chunk))
                .order_by(TaskRow.id)
            ).all()
            states += [TaskState(r.id, Queue(r.queue), TaskStatus(r.status), r.result, r.last_error) for r in rows]
    missing = set(wanted) - {s.task_id for s in states}
    if missing:
        raise NotFoundError(f"no task {', '.join(str(i) for i in sorted(missing))} in the catalog")
    return states


def videos_without_auto_masklets(catalog: Catalog, video_ids: Sequence[str] | None = None) -> list[str]:
    """Videos (all, or of ``video_ids``) on which no auto masklet was ever stored: the new ones.

    Ids of ``video_ids`` the catalog does not hold are a NotFoundError, not silently skipped.
    """
    with catalog.read() as session:
        has_auto = select(MaskletRow.video_id).where(MaskletRow.source == MaskletSource.AUTO.value).distinct()
        query = select(VideoRow.id).where(VideoRow.id.not_in(has_auto)).order_by(VideoRow.id)
        if video_ids is not None:
            known = set(session.scalars(select(VideoRow.id).where(VideoRow.id.in_(list(video_ids)))))
            unknown = [v for v in video_ids if v not in known]
            if unknown:
                raise NotFoundError(
                    f"no video {', '.join(map(repr, unknown))} in the catalog (see `dataengine videos list`)"
                )
            query = query.where(VideoRow.id.in_(list(video_ids)))
        return list(session.scalars(query))


def dataset_size(catalog: Catalog) -> int:
    """Satisfactory masklets (manual and auto): the dataset as it stands."""
    with catalog.read() as session:
        count = session.scalar(
            select(func.count())
            .select_from(MaskletRow)
            .where(
                MaskletRow.status == Verdict.SATISFACTORY.value,
                MaskletRow.source.in_([MaskletSource.MANUAL.value, MaskletSource.AUTO.value]),
            )
        )
    return int(count or 0)


def verified_masklet(catalog: Catalog, masklet_id: int, verdict: Verdict, verifier: str) -> VerifiedMasklet:
    """What a ``dataengine.masklet.verified`` event says of ``masklet_id`` (no masks are read)."""
    with catalog.read() as session:
        row = session.execute(
            select(
                MaskletRow.video_id,
                MaskletRow.object_id,
                MaskletRow.source,
                MaskletRow.phase,
                MaskletRow.frame_count,
                MaskletRow.edited_frame_count,
            ).where(MaskletRow.id == masklet_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no masklet {masklet_id} in the catalog")
        submitted = annotation_events.submit_payload(session, masklet_id)
    return VerifiedMasklet(
        masklet_id=masklet_id,
        video_id=row.video_id,
        object_id=row.object_id,
        source=row.source,
        phase=row.phase,
        frame_count=row.frame_count,
        edited_frame_count=row.edited_frame_count,
        verdict=verdict,
        verifier=verifier,
        refinement_round=int(submitted.get("round") or 0),
    )
