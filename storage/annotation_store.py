"""The catalog and object store as annotation work sees them (:class:`engine.annotation_store.AnnotationStore`).

A phase's masklet and its events are written by :meth:`SqlAnnotationStore.masklet_effect`
inside the queue's transaction that submits the task (:meth:`storage.task_queue.TaskQueue.submit_masklet`),
which makes the masklet ``in_verification`` and enqueues its verify task: the masklet, its
events and the submission commit together or not at all, so a worker killed at any moment
leaves either a submitted masklet or nothing, and the task leased, to be delivered again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.annotation import AnnotatedMasklet, AnnotationEvent
from engine.annotation_store import AnnotationInputs, StoredMasklet, SubmittedCandidate, TransactionEffect
from engine.errors import BadMaskError, NotFoundError
from engine.frame_source import StoredFrames
from engine.masklets import Masklet, MaskletSource
from engine.metrics import best_match
from engine.ports import ObjectStore
from engine.queues import IN_VERIFICATION, NewTask, Queue, Task
from storage import annotation_events, tasks
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog
from storage.schema import MaskletRow, utcnow

DRAFT = "draft"


class SqlAnnotationStore:
    """Annotation inputs, drafts, submitted masklets and auto candidates on a catalog."""

    def __init__(self, catalog: Catalog, store: ObjectStore) -> None:
        self.catalog = catalog
        self.store = store

    def videos_with_ground_truth(self) -> list[str]:
        with self.catalog.read() as session:
            query = (
                select(MaskletRow.video_id)
                .where(MaskletRow.source == MaskletSource.GROUND_TRUTH.value)
                .distinct()
                .order_by(MaskletRow.video_id)
            )
            return list(session.scalars(query))

    def objects_with_ground_truth(self, video_id: str) -> list[int]:
        with self.catalog.read() as session:
            video_queries.get_video(session, video_id)
            rows = masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.GROUND_TRUTH])
            return [r.object_id for r in rows]

    def frames(self, video_id: str) -> StoredFrames:
        with self.catalog.read() as session:
            video = video_queries.get_video(session, video_id)
        return StoredFrames(self.store, video_id, video.frame_count, (video.height, video.width))

    def inputs(self, video_id: str, object_id: int) -> AnnotationInputs:
        frames = self.frames(video_id)
        with self.catalog.read() as session:
            truth_id = session.scalar(
                select(MaskletRow.id).where(
                    MaskletRow.video_id == video_id,
                    MaskletRow.object_id == object_id,
                    MaskletRow.source == MaskletSource.GROUND_TRUTH.value,
                )
            )
            truth = None if truth_id is None else masklet_queries.get_masklet(session, truth_id)
        return AnnotationInputs(video_id, object_id, frames, truth)

    def inputs_for(self, masklet: Masklet) -> AnnotationInputs:
        """A stored masklet's frames and the ground truth of the object it follows.

        That is the ground truth of its object id where there is one; an automatic masklet
        (or a refinement of one) has an id of its own, so its truth is the ground-truth masklet
        it overlaps most, if any.
        """
        inputs = self.inputs(masklet.video_id, masklet.object_id)
        if inputs.truth is not None:
            return inputs
        with self.catalog.read() as session:
            truths = masklet_queries.ground_truth(session, masklet.video_id)
        return dataclasses.replace(inputs, truth=best_match(masklet, truths))

    def masklet(self, masklet_id: int) -> StoredMasklet:
        with self.catalog.read() as session:
            row = session.get(MaskletRow, masklet_id)
            if row is None:
                raise NotFoundError(f"no masklet {masklet_id} in the catalog")
            masklet = masklet_queries.get_masklet(session, masklet_id)
            submitted = annotation_events.submit_payload(session, masklet_id)
            return StoredMasklet(
                masklet_id=masklet_id,
                masklet=masklet,
                status=row.status,
                phase=row.phase,
                annotator=row.annotator,
                refinement_round=int(submitted.get("round") or 0),
            )

    def masklet_effect(self, result: AnnotatedMasklet) -> TransactionEffect:
        """Writes ``result`` as a draft with its events in the submission's transaction; returns its id.

        The submission then makes it ``in_verification`` in the same transaction: nobody ever
        sees the draft.
        """

        def write(session: Session, task: Task) -> int:
            return _add_draft(session, result)

        return write

    def events_effect(self, events: Sequence[AnnotationEvent], masklet_id: int | None) -> TransactionEffect:
        recorded = tuple(events)

        def write(session: Session, task: Task) -> None:
            annotation_events.add_events(session, recorded, masklet_id)

        return write

    def save_draft(self, result: AnnotatedMasklet) -> int:
        with self.catalog.write() as session:
            return _add_draft(session, result)

    def record_events(self, events: Sequence[AnnotationEvent], masklet_id: int | None) -> None:
        with self.catalog.write() as session:
            annotation_events.add_events(session, events, masklet_id)

    def add_auto_candidates(self, masklets: Sequence[Masklet], model_version_id: int | None) -> list[SubmittedCandidate]:
        """Store auto masklets under new object ids, in verification, each with its verify task: all or none."""
        for masklet in masklets:
            if masklet.source is not MaskletSource.AUTO:
                raise BadMaskError(
                    f"masklet {masklet.video_id}/{masklet.object_id} is {masklet.source.value}; only auto masklets are candidates"
                )
        submitted: list[SubmittedCandidate] = []
        with self.catalog.write() as session:
            for masklet in masklets:
                # A generator numbers its masklets 0, 1, ...: in the catalog each gets an object id of
                # its own, after every object the video already has (ground truth included).
                taken = session.scalar(select(func.max(MaskletRow.object_id)).where(MaskletRow.video_id == masklet.video_id))
                masklet = dataclasses.replace(masklet, object_id=0 if taken is None else taken + 1)
                masklet_id = masklet_queries.add_masklet(
                    session, masklet, status=IN_VERIFICATION, model_version_id=model_version_id
                )
                spec = NewTask(
                    Queue.VERIFY,
                    {"masklet_id": masklet_id},
                    key=f"auto-masklet-{masklet_id}",
                    masklet_id=masklet_id,
                    video_id=masklet.video_id,
                )
                task = tasks.add_task(session.connection(), spec, now=utcnow(), by="auto-masklets")
                submitted.append(SubmittedCandidate(masklet_id, task.id))
        return submitted


def _add_draft(session: Session, result: AnnotatedMasklet) -> int:
    """A phase's masklet as a draft, with its events, in the caller's transaction."""
    masklet_id = masklet_queries.add_masklet(
        session,
        result.masklet,
        status=DRAFT,
        phase=result.phase,
        annotator=result.annotator,
        model_version_id=result.model_version_id,
        edited_frames=result.edited_frames,
    )
    annotation_events.add_events(session, result.events, masklet_id)
    return masklet_id
