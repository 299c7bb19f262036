"""What annotation work needs from the catalog and the queues: the ports the workers use.

:mod:`storage.annotation_store` implements :class:`AnnotationStore` on the catalog and the
object store; :class:`storage.task_queue.TaskQueue` is a :class:`WorkQueue` as it is.

A masklet and the task that produced it are finished together: the store hands the worker
its writes as a :data:`TransactionEffect` and the queue runs them inside the transaction that
finishes the task, so the masklet, its annotation events and the submission (or a verdict and
the verifier's events) are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from engine.annotation import AnnotatedMasklet, AnnotationEvent
from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.queues import Lease, NewTask, Queue, Routed, Task, Verdict


# Writes that the queue runs inside the transaction finishing a task: called with the storage's
# transaction handle (opaque here: storage's session) and the finished task. A submission's
# effect returns the id of the masklet it wrote.
TransactionEffect = Callable[[Any, Task], Any]


@dataclass(frozen=True)
class AnnotationInputs:
    """One object of one video, ready to annotate: its frames and, where known, its ground truth."""

    video_id: str
    object_id: int
    frames: FrameSource
    truth: Masklet | None


@dataclass(frozen=True)
class StoredMasklet:
    """A masklet in the catalog, with what verification and refinement need to know of it."""

    masklet_id: int
    masklet: Masklet
    status: str
    phase: int | None
    annotator: str | None
    refinement_round: int  # 0: annotated or generated; n: the n-th refinement of an object's masklet

    @property
    def source(self) -> MaskletSource:
        return self.masklet.source


class SubmittedCandidate(NamedTuple):
    """An auto masklet sent to verification: its catalog id and its verify task's (a pair, as callers unpack it)."""

    masklet_id: int
    verify_task_id: int


class AnnotationStore(Protocol):
    """The catalog as annotation work sees it."""

    def videos_with_ground_truth(self) -> list[str]:
        ...

    def objects_with_ground_truth(self, video_id: str) -> list[int]:
        ...

    def frames(self, video_id: str) -> FrameSource:
        """The video's sampled frames; NotFoundError when the video is not in the catalog."""
        ...

    def inputs(self, video_id: str, object_id: int) -> AnnotationInputs:
        """The object's frames and ground truth; NotFoundError when the video is not in the catalog."""
        ...

    def inputs_for(self, masklet: Masklet) -> AnnotationInputs:
        """A stored masklet's frames and the ground truth of the object it follows (its own id's, else the best match)."""
        ...

    def masklet(self, masklet_id: int) -> StoredMasklet:
        """NotFoundError when there is no such masklet."""
        ...

    def masklet_effect(self, result: AnnotatedMasklet) -> TransactionEffect:
        """The writes that store ``result`` with its events, to run in its task's submission.

        For :meth:`WorkQueue.submit_masklet`; the effect returns the new masklet's id.
        """
        ...

    def events_effect(self, events: Sequence[AnnotationEvent], masklet_id: int | None) -> TransactionEffect:
        """The writes that record ``events`` (of ``masklet_id``), to run in a task's completion (a verdict's)."""
        ...

    def save_draft(self, result: AnnotatedMasklet) -> int:
        """Store a masklet as a ``draft`` (never in the dataset) with its events, outside any task."""
        ...

    def record_events(self, events: Sequence[AnnotationEvent], masklet_id: int | None) -> None:
        ...

    def add_auto_candidates(self, masklets: Sequence[Masklet], model_version_id: int | None) -> list[SubmittedCandidate]:
        """Store auto masklets (each under a new object id) in verification with their verify tasks.

        One transaction: all of them are submitted, or none.
        """
        ...


class WorkQueue(Protocol):
    """The task queues as workers use them (:class:`storage.task_queue.TaskQueue`)."""

    def enqueue_many(self, specs: Sequence[NewTask], *, by: str | None = None) -> list[Task]: ...

    def claim(self, queue: Queue | str, worker: str, lease_seconds: float, n: int = 1) -> list[Lease]: ...

    def heartbeat(self, task_id: int, token: str, lease_seconds: float) -> datetime: ...

    def fail(self, task_id: int, token: str, error: str, *, retry: bool = True) -> Task: ...

    def submit_masklet(
        self, task_id: int, token: str, masklet_id: int | None = None, *, effect: TransactionEffect | None = None
    ) -> Routed: ...

    def route_verdict(
        self,
        task_id: int,
        token: str,
        verdict: Verdict | str,
        *,
        reason: str | None = None,
        frames: Sequence[int] | None = None,
        effect: TransactionEffect | None = None,
    ) -> Routed: ...
