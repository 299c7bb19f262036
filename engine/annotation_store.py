"""What annotation work needs from the catalog and the queues: the ports the workers use.

:mod:`storage.annotation_store` implements :class:`AnnotationStore` on the catalog and the
object store; :class:`storage.task_queue.TaskQueue` is a :class:`WorkQueue` as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.annotation import AnnotatedMasklet, AnnotationEvent
from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.queues import Lease, NewTask, Queue, Routed, Task, Verdict


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

    def save_draft(self, result: AnnotatedMasklet) -> int:
        """Store a masklet as a ``draft`` (never in the dataset) with its events, in one transaction."""
        ...

    def discard_draft(self, masklet_id: int) -> None:
        """Remove a draft and its events (its submission failed)."""
        ...

    def record_events(self, events: Sequence[AnnotationEvent], masklet_id: int | None) -> None:
        ...

    def add_auto_candidate(self, masklet: Masklet, model_version_id: int | None) -> tuple[int, int]:
        """Store an auto masklet (under a new object id) in verification and enqueue its verify task, together.

        Returns the masklet's and the task's ids.
        """
        ...


class WorkQueue(Protocol):
    """The task queues as workers use them (:class:`storage.task_queue.TaskQueue`)."""

    def enqueue_many(self, specs: Sequence[NewTask], *, by: str | None = None) -> list[Task]: ...

    def claim(self, queue: Queue | str, worker: str, lease_seconds: float, n: int = 1) -> list[Lease]: ...

    def heartbeat(self, task_id: int, token: str, lease_seconds: float) -> datetime: ...

    def fail(self, task_id: int, token: str, error: str, *, retry: bool = True) -> Task: ...

    def submit_masklet(self, task_id: int, token: str, masklet_id: int | None = None) -> Routed: ...

    def route_verdict(
        self,
        task_id: int,
        token: str,
        verdict: Verdict | str,
        *,
        reason: str | None = None,
        frames: Sequence[int] | None = None,
    ) -> Routed: ...
