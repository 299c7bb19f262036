"""The steps the phases are made of: annotate a frame, refine a frame, propagate, review.

Each phase module composes these into the procedure the SAM 2 paper describes; a step
records its actions in the workspace's :class:`~engine.annotation.ActionLog` and keeps the
masks, so a procedure reads as a handful of calls. Nothing here stores anything: a phase
returns an :class:`~engine.annotation.AnnotatedMasklet`, and whoever called it decides what
to keep, so a procedure that fails half-way leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.annotation import ActionLog, AnnotatedMasklet, Annotator, Click, EventContext
from engine.errors import AnnotationError, DataEngineError, SegmenterFailedError
from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.segmenters import ClickSegmenter, Segmenters, Tracker
from engine.time_model import Clock, Stopwatch, SystemClock, TimeModel


@dataclass(frozen=True)
class PhaseJob:
    """One object of one video to annotate, with the person, the model and the clocks."""

    video_id: str
    object_id: int
    frames: FrameSource
    annotator: Annotator
    segmenters: Segmenters
    time_model: TimeModel = field(default_factory=TimeModel)
    clock: Clock = field(default_factory=SystemClock)
    task_id: int | None = None
    # Frames an annotator will correct after propagating, at most (None: until every frame passes).
    correction_budget: int | None = None


class Workspace:
    """The masks of one object being annotated, which frames were edited, and the action log."""

    def __init__(self, job: PhaseJob, phase: int) -> None:
        self.job = job
        self.phase = phase
        height, width = job.frames.size
        self.frame_count = job.frames.frame_count
        self.masks = [np.zeros((height, width), dtype=bool) for _ in range(self.frame_count)]
        self.edited: set[int] = set()
        context = EventContext(job.video_id, job.annotator.name, phase, job.task_id)
        self.log = ActionLog(context, frame_count=self.frame_count, time_model=job.time_model, clock=job.clock)

    @property
    def annotator(self) -> Annotator:
        return self.job.annotator

    def set(self, frame: int, mask: np.ndarray) -> None:
        """The annotator's own mask for ``frame``: it stands whatever propagation brings later."""
        self.masks[frame] = mask
        self.edited.add(frame)

    @contextmanager
    def model_call(self, frame: int | None) -> Iterator[Stopwatch]:
        """Time a model call; a failure that is not ours becomes a SegmenterFailedError naming the place."""
        try:
            with Stopwatch(self.job.clock) as stopwatch:
                yield stopwatch
        except DataEngineError:
            raise
        except Exception as exc:
            where = f"video {self.job.video_id}, object {self.job.object_id}" + ("" if frame is None else f", frame {frame}")
            raise SegmenterFailedError(
                f"the model ({self.job.segmenters.description}) failed at {where}: {type(exc).__name__}: {exc}; "
                "nothing of this masklet was kept"
            ) from exc

    def finish(self, **submit_details: Any) -> AnnotatedMasklet:
        """Submit: the masklet as it stands, with every event of its making."""
        masks = tuple(encode(m) for m in self.masks)
        masklet = Masklet(self.job.video_id, self.job.object_id, MaskletSource.MANUAL, masks, len(self.edited))
        self.log.submit({"edited_frames": len(self.edited), **submit_details})
        return AnnotatedMasklet(
            masklet=masklet,
            phase=self.phase,
            annotator=self.annotator.name,
            model_version_id=self.job.segmenters.model_version_id,
            edited_frames=tuple(sorted(self.edited)),
            events=self.log.events,
        )


def first_appearance(ws: Workspace) -> int:
    """Where the object first shows; an AnnotationError if it never does (not a task)."""
    first = ws.annotator.first_appearance()
    if first is None:
        raise AnnotationError(
            f"object {ws.job.object_id} of video {ws.job.video_id} is never visible: there is nothing to annotate"
        )
    return first


def find_object(ws: Workspace) -> int:
    """Scan the video for the object's first appearance; the frames before it are empty."""
    first = first_appearance(ws)
    for frame in range(first):
        ws.log.examine(frame)
    return first


def annotate_from_scratch(ws: Workspace, frame: int, segmenter: ClickSegmenter | Tracker) -> bool:
    """One frame from nothing: clicks on the object until satisfied, then brush and eraser.

    Returns whether the brush or eraser changed the model's mask (then the model does not
    know the final mask yet). A frame without the object takes no click: it is searched and
    accepted empty.
    """
    mask, clicks = _click_until_satisfied(ws, frame, segmenter, np.zeros_like(ws.masks[frame]), locate=True)
    mask, brushed = finish_with_brush(ws, frame, mask, polish=True)
    if not clicks and not brushed:
        ws.log.accept(frame, empty=not mask.any(), locate=True)
    ws.set(frame, mask)
    return brushed


def refine_frame(ws: Workspace, frame: int, tracker: Tracker) -> bool:
    """Correct a tracked frame with clicks in the video model (its memory kept), then the brush.

    The annotator starts from the frame's current mask; only if it is empty do they have to
    find the object first. Returns whether the brush changed the model's mask.
    """
    start = ws.masks[frame]
    mask, _ = _click_until_satisfied(ws, frame, tracker, start, locate=not start.any())
    mask, brushed = finish_with_brush(ws, frame, mask, polish=False)
    ws.set(frame, mask)
    return brushed


def finish_with_brush(ws: Workspace, frame: int, mask: np.ndarray, *, polish: bool) -> tuple[np.ndarray, bool]:
    """Brush and eraser strokes for what clicks could not fix (a hopeless mask cleared first).

    ``polish``: a frame annotated from scratch, finished to the annotator's best standard.
    """
    cleared = ws.annotator.starts_over(frame, mask, polish=polish)
    if cleared:
        ws.log.clear(frame)
        mask = np.zeros_like(mask)
    strokes = ws.annotator.strokes(frame, mask, polish=polish)
    for stroke in strokes:
        # On an empty mask the brush draws the object from nothing: charged as an outline by hand.
        ws.log.stroke(stroke, outline=not stroke.eraser and not mask.any())
        mask = stroke.apply(mask)
    return mask, cleared or bool(strokes)


def propagate(ws: Workspace, tracker: Tracker, frame: int, prompt: np.ndarray | None = None) -> None:
    """Propagate forward from ``frame`` (first giving it ``prompt`` as a mask); edited frames stand."""
    with ws.model_call(frame) as stopwatch:
        if prompt is not None:
            tracker.add_mask(frame, prompt)
        outputs = list(tracker.propagate(frame))
    ws.log.propagate(frame, len(outputs), model_s=stopwatch.seconds)
    for index, mask in outputs:
        if index not in ws.edited:
            ws.masks[index] = mask


def review(ws: Workspace, start: int, correct: Callable[[int], None]) -> int:
    """Examine frames from ``start`` on; correct each one that fails (which re-propagates after it).

    Past the correction budget, failing frames are let through as they are. Returns how many
    frames were corrected.
    """
    budget = ws.job.correction_budget
    corrected = 0
    for frame in range(start, ws.frame_count):
        ws.log.examine(frame)
        if ws.annotator.accepts(frame, ws.masks[frame]) or (budget is not None and corrected >= budget):
            continue
        correct(frame)
        corrected += 1
    return corrected


def _click_until_satisfied(
    ws: Workspace, frame: int, segmenter: ClickSegmenter | Tracker, mask: np.ndarray, *, locate: bool
) -> tuple[np.ndarray, list[Click]]:
    clicks: list[Click] = []
    while (click := ws.annotator.next_click(frame, mask, clicks)) is not None:
        if click.frame != frame:
            raise AnnotationError(
                f"video {ws.job.video_id}: a click on frame {click.frame} while annotating frame {frame}; "
                "a click belongs to the frame being annotated"
            )
        clicks.append(click)
        with ws.model_call(frame) as stopwatch:
            mask = np.asarray(segmenter.click(frame, clicks), dtype=bool)
        ws.log.click(click, locate=locate and len(clicks) == 1, model_s=stopwatch.seconds)
    return mask, clicks
