"""One person's work on one task, in the server's memory: masks, frame statuses, the model, undo.

A web annotator works as the phase procedures' simulated annotators do, with the same models
(:class:`engine.segmenters.Segmenters`, from the registry) and the same kinds of annotation
event; the difference is who decides. There the procedure asks an
:class:`~engine.annotation.Annotator` what to do next; here each request says it.

The tools of each phase, and no others:

- Phase 1: clicks with the image model on any frame, brush and eraser, clear, accept;
- Phase 2: the same, plus *propagate from this frame* with the mask-only video model
  (SAM 2 Mask): the frame's mask is handed to the model and tracked forward;
- Phase 3 and refinement: clicks with the full video model on any frame (its memory kept),
  brush and eraser (a brushed frame is given to the model as a mask before the next
  propagation), clear, accept, propagate and re-propagate.

Frames the annotator edited or accepted stand: propagation never overwrites them.

**Timing.** Every action is an annotation event with real timestamps: it starts when the
previous action ended (the person was looking, thinking, moving the pointer) and ends when
its model call returned, with the measured model time in its payload. A gap longer than
``idle_cap_s`` (the page left open over lunch) counts as ``idle_cap_s``, and the skipped
seconds are noted as ``idle_s``.

**Undo** restores the masks and statuses from before the last action. The model's own state
cannot be rolled back, so it is rebuilt from the prompts that remain (clicks and masks per
frame), at the next model call.

Nothing here touches the catalog: an action is applied in memory and handed back as a
:class:`Change`; the caller records its event (authorising in that transaction) and then
commits the change, or reverts it if the recording was refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np

from engine.annotation import Action, AnnotationEvent, Click, Stroke
from engine.annotation_store import AnnotationStore
from engine.errors import (
    AlreadyVerifiedError,
    AnnotationError,
    BadPayloadError,
    BadPromptError,
    DataEngineError,
    SegmenterFailedError,
    WorkInProgressError,
)
from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.masks import area, decode, encode
from engine.queues import IN_VERIFICATION, REFINE_PHASE, Queue, Verdict
from engine.segmenters import ClickSegmenter, Refine, SegmenterSource, Segmenters, Tracker
from engine.time_model import Clock, stroke_length
from webapp.wire import mask_runs, paint_stroke
from webapp.work import HeldTask

UNDO_DEPTH = 100
BUSY_WAIT_S = 5.0  # how long an action waits for the one before it (a double click) before giving up


class FrameStatus(StrEnum):
    """Where a frame of the masklet stands, as the frame strip shows it."""

    TODO = "todo"  # nothing yet: no mask drawn, none propagated
    PROPAGATED = "propagated"  # the model's mask (or the masklet under refinement), not reviewed
    ACCEPTED = "accepted"  # the annotator took the frame as it is (an empty frame: the object is absent)
    EDITED = "edited"  # the annotator's own mask (clicks, brush, eraser)


class Tool(StrEnum):
    CLICK = "click"
    BRUSH = "brush"
    ERASER = "eraser"
    CLEAR = "clear"
    ACCEPT = "accept"
    PROPAGATE = "propagate"


_FRAME_TOOLS = (Tool.CLICK, Tool.BRUSH, Tool.ERASER, Tool.CLEAR, Tool.ACCEPT)
PHASE_TOOLS: dict[int, tuple[Tool, ...]] = {
    1: _FRAME_TOOLS,
    2: (*_FRAME_TOOLS, Tool.PROPAGATE),
    3: (*_FRAME_TOOLS, Tool.PROPAGATE),
}
STANDING = (FrameStatus.EDITED, FrameStatus.ACCEPTED)


class UntouchedFramesError(AnnotationError):
    """A submission would leave frames nobody annotated, propagated or accepted."""

    def __init__(self, message: str, frames: Sequence[int]) -> None:
        super().__init__(message)
        self.frames = tuple(frames)


@dataclass(frozen=True)
class Hint:
    """Where the object to annotate is: a point on one frame (which object, not its mask)."""

    frame: int
    x: float
    y: float


@dataclass(frozen=True)
class TaskView:
    """What the page needs to know about the task it works on."""

    task_id: int
    queue: Queue
    phase: int | None
    video_id: str
    object_id: int
    frame_count: int
    height: int
    width: int
    tools: tuple[Tool, ...]
    model: str | None
    lease_expires_at: datetime
    hint: Hint | None = None
    masklet_id: int | None = None  # verify: the masklet judged; refine: the masklet refined
    refinement_round: int = 0  # refine: the round this refinement will be
    reason: str | None = None  # refine: what the verifier found wrong
    flagged_frames: tuple[int, ...] = ()  # refine: the frames the verifier named


class Timeline:
    """Real timestamps for a person's actions: each starts when the one before it ended."""

    def __init__(self, clock: Clock, idle_cap_s: float) -> None:
        self.clock = clock
        self.idle_cap_s = idle_cap_s
        self.last_end = clock.now()
        self.active_s = 0.0

    def span(self, began: datetime, ended: datetime) -> tuple[datetime, float, float]:
        """``(started_at, duration_s, idle_s)`` of an action whose request began at ``began``."""
        start, idle = self.last_end, 0.0
        waited = (began - start).total_seconds()
        if waited > self.idle_cap_s:
            idle = waited - self.idle_cap_s
            start = began - timedelta(seconds=self.idle_cap_s)
        start = min(start, ended)
        return start, max(0.0, (ended - start).total_seconds()), idle

    def advance(self, ended: datetime, duration_s: float) -> None:
        self.last_end = ended
        self.active_s += duration_s


@dataclass
class _Saved:
    """The state an action changed, to revert it (a refused recording) or undo it."""

    frames: dict[int, tuple[np.ndarray, FrameStatus, bool]]
    clicks: dict[int, tuple[Click, ...]]
    prompts: dict[int, tuple[str, Any]]
    pending: set[int]
    timeline: tuple[datetime, float]


@dataclass
class Change:
    """One action applied in memory, waiting for its event to be recorded."""

    event: AnnotationEvent
    frames: tuple[int, ...]
    saved: _Saved | None  # None: nothing to undo (examining frames)
    before: tuple[datetime, float]  # the timeline before the action, to revert it
    model_touched: bool = False
    event_id: int | None = None


class _Lock:
    """The workspace's one-action-at-a-time lock; may be released by another thread (a propagation's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, wait_s: float = BUSY_WAIT_S) -> None:
        if not self._lock.acquire(timeout=wait_s):
            raise WorkInProgressError("another action on this task is still running (a propagation?): wait or cancel it")

    def release(self) -> None:
        self._lock.release()

    @contextmanager
    def held(self, wait_s: float = BUSY_WAIT_S) -> Iterator[None]:
        self.acquire(wait_s)
        try:
            yield
        finally:
            self.release()


class AnnotationWorkspace:
    """An annotate or refine task being worked in the browser."""

    def __init__(
        self,
        view: TaskView,
        user: str,
        frames: FrameSource,
        segmenters: Segmenters,
        timeline: Timeline,
        *,
        initial: Masklet | None = None,  # refinement: the masklet to correct
        lease_token_hash: str = "",
    ) -> None:
        self.view = view
        self.user = user
        self.frames = frames
        self.segmenters = segmenters
        self.timeline = timeline
        self.lease_token_hash = lease_token_hash
        self.lock = _Lock()
        self.cancel = threading.Event()
        height, width = view.height, view.width
        self.masks: list[np.ndarray] = [np.zeros((height, width), dtype=bool) for _ in range(view.frame_count)]
        self.status: list[FrameStatus] = [FrameStatus.TODO] * view.frame_count
        self.edited: set[int] = set()
        self.clicks: dict[int, tuple[Click, ...]] = {}
        self.prompts: dict[int, tuple[str, Any]] = {}  # what the video model was told, per frame
        self.pending: set[int] = set()  # brushed frames the video model has not been given yet
        # Frames whose mask on screen is the video model's own latest output there: a click on
        # one refines the model's logits; elsewhere it refines the mask on screen (_refines).
        self.model_holds: set[int] = set()
        self.event_ids: list[int] = []
        self.undo_stack: list[Change] = []
        self._image: ClickSegmenter | None = None
        self._tracker: Tracker | None = None
        if initial is not None:
            self.masks = [decode(rle).copy() for rle in initial.masks]
            self.status = [FrameStatus.PROPAGATED] * view.frame_count
            seed = initial.first_appeared_frame
            if seed is not None:  # the model learns the masklet from its first frame, as phase3.refine does
                self.prompts[seed] = ("mask", self.masks[seed].copy())

    @property
    def phase(self) -> int:
        return self.view.phase or REFINE_PHASE

    # --- reading -------------------------------------------------------------------------------

    def frame_state(self, frame: int) -> dict[str, Any]:
        return {"frame": frame, "status": self.status[frame].value, "mask": mask_runs(self.masks[frame])}

    def state(self) -> list[dict[str, Any]]:
        return [self.frame_state(i) for i in range(self.view.frame_count)]

    # --- actions ---------------------------------------------------------------------------------

    def click(self, frame: int, x: float, y: float, positive: bool) -> Change:
        """A positive or negative click on ``frame``, with the phase's click model."""
        self._allow(Tool.CLICK)
        self._check_frame(frame)
        if not (0 <= x <= self.view.width and 0 <= y <= self.view.height):
            raise BadPromptError(f"click ({x}, {y}) is outside the {self.view.width}x{self.view.height} frame")
        began = self.timeline.clock.now()
        click = Click(frame, float(x), float(y), bool(positive))
        clicks = (*self.clicks.get(frame, ()), click)
        locate = len(clicks) == 1 and not self.masks[frame].any()
        saved = self._save([frame])
        with self._model_call(frame) as watch:
            if self.phase == 3:
                mask = np.asarray(self._tracker_ready().click(frame, clicks, refine=self._refines(frame)), dtype=bool)
            else:
                mask = np.asarray(self._image_ready().click(frame, clicks), dtype=bool)
        self.clicks[frame] = clicks
        if self.phase == 3:
            self.prompts[frame] = ("clicks", clicks)
            self.pending.discard(frame)
            self.model_holds.add(frame)
        self._set(frame, mask)
        payload = {"x": round(click.x, 2), "y": round(click.y, 2), "positive": click.positive, "locate": locate}
        return self._change(Action.CLICK, frame, payload, began, watch.seconds, saved, [frame], model_touched=True)

    def stroke(self, frame: int, points: Sequence[Sequence[float]], radius: float, *, eraser: bool) -> Change:
        """A brush (adds) or eraser (removes) stroke along ``points`` on ``frame``."""
        self._allow(Tool.ERASER if eraser else Tool.BRUSH)
        self._check_frame(frame)
        began = self.timeline.clock.now()
        region = paint_stroke(points, radius, (self.view.height, self.view.width))
        stroke = Stroke.painting(frame, region, eraser=eraser)
        saved = self._save([frame])
        self._set(frame, stroke.apply(self.masks[frame]))
        if self.phase in (2, 3):
            self.pending.add(frame)  # the video model learns this mask before it propagates again
        payload = {
            "area": area(stroke.region),
            "length": round(stroke_length(region), 5),
            "rle": stroke.region.counts.decode("ascii"),
            "radius": float(radius),
        }
        return self._change(Action.ERASER if eraser else Action.BRUSH, frame, payload, began, 0.0, saved, [frame])

    def clear(self, frame: int) -> Change:
        """Throw a frame's mask away, to annotate it again from scratch."""
        self._allow(Tool.CLEAR)
        self._check_frame(frame)
        began = self.timeline.clock.now()
        saved = self._save([frame])
        self.masks[frame] = np.zeros_like(self.masks[frame])
        self.status[frame] = FrameStatus.TODO
        self.edited.discard(frame)
        self.clicks.pop(frame, None)
        self.pending.discard(frame)
        self.model_holds.discard(frame)
        touched = self.prompts.pop(frame, None) is not None
        if touched:
            self._forget_model()  # the model still holds the frame's old prompt: rebuild without it
        return self._change(Action.CLEAR_FRAME, frame, {}, began, 0.0, saved, [frame], model_touched=touched)

    def accept(self, frame: int) -> Change:
        """Take a frame as it is: a propagated mask that passes, or an empty frame (the object is absent)."""
        self._allow(Tool.ACCEPT)
        self._check_frame(frame)
        began = self.timeline.clock.now()
        saved = self._save([frame])
        was = self.status[frame]
        empty = not self.masks[frame].any()
        if was is FrameStatus.TODO:
            self.edited.add(frame)  # annotated from scratch, as "not here"
        if was is not FrameStatus.EDITED:
            self.status[frame] = FrameStatus.ACCEPTED
        payload = {"empty": empty, "propagated": was is FrameStatus.PROPAGATED, "locate": was is FrameStatus.TODO}
        return self._change(Action.ACCEPT_FRAME, frame, payload, began, 0.0, saved, [frame])

    def examine(self, first: int, last: int) -> Change:
        """Frames ``first..last`` looked at (scrubbing, playing): time spent, nothing changed."""
        self._check_frame(first)
        self._check_frame(last)
        if last < first:
            raise BadPromptError(f"examined frames {first}..{last}: the last frame comes before the first")
        began = self.timeline.clock.now()
        payload = {"last_frame": last, "frames": last - first + 1}
        return self._change(Action.EXAMINE, first, payload, began, 0.0, None, [])

    def check_propagation(self, frame: int) -> None:
        """Refuse a propagation this task cannot run, before anything starts streaming."""
        self._allow(Tool.PROPAGATE)
        self._check_frame(frame)
        if self.phase == 2 and self.status[frame] not in STANDING:
            raise BadPromptError(
                f"frame {frame} has no mask of yours: in Phase 2, annotate a frame (clicks, brush) and propagate from it"
            )

    def propagate(self, frame: int, emit: Callable[[dict[str, Any]], None]) -> Change:
        """Track the object forward from ``frame``, emitting each frame as it is computed.

        Runs until the last frame or until :attr:`cancel` is set. Frames the annotator edited
        or accepted keep their masks.
        """
        self.check_propagation(frame)
        began = self.timeline.clock.now()
        saved = self._save(range(frame, self.view.frame_count))
        self.cancel.clear()
        count, last, changed = 0, frame, []
        try:
            with self._model_call(frame) as watch:
                tracker = self._tracker_ready()
                for prompted in sorted(self._mask_prompts(frame)):
                    tracker.add_mask(prompted, self.masks[prompted])
                    self.prompts[prompted] = ("mask", self.masks[prompted].copy())
                self.pending.clear()
                for index, mask in tracker.propagate(frame):
                    if self.cancel.is_set():
                        break
                    if self.status[index] not in STANDING:
                        self.masks[index] = np.asarray(mask, dtype=bool)
                        self.status[index] = FrameStatus.PROPAGATED
                        changed.append(index)
                        self.model_holds.add(index)
                    elif index not in self.prompts:
                        self.model_holds.discard(index)  # kept on screen; the model's output moved on
                    else:
                        self.model_holds.add(index)  # a prompted frame's output is its prompt's
                    count, last = count + 1, index
                    emit(self.frame_state(index))
        except BaseException:
            self._restore(saved)
            self._forget_model()
            raise
        payload = {"frames": count, "last_frame": last, "cancelled": self.cancel.is_set()}
        return self._change(Action.PROPAGATE, frame, payload, began, watch.seconds, saved, changed, model_touched=True)

    # --- recording ---------------------------------------------------------------------------------

    def committed(self, change: Change, event_id: int) -> None:
        """The change's event is in the catalog: keep the change, and make it undoable."""
        change.event_id = event_id
        self.event_ids.append(event_id)
        if change.saved is not None:
            self.undo_stack.append(change)
            del self.undo_stack[:-UNDO_DEPTH]

    def revert(self, change: Change) -> None:
        """The event was refused (lease lost, session ended): the change never happened."""
        if change.saved is not None:
            self._restore(change.saved)
        self.timeline.last_end, self.timeline.active_s = change.before
        if change.model_touched:
            self._forget_model()

    def undoable(self) -> Change:
        """The action :meth:`undo` would take back."""
        if not self.undo_stack:
            raise AnnotationError("nothing to undo")
        return self.undo_stack[-1]

    def undo(self) -> Change:
        """Take back the last undoable action; returns it (its frames are restored)."""
        if not self.undo_stack:
            raise AnnotationError("nothing to undo")
        change = self.undo_stack.pop()
        assert change.saved is not None
        timeline = (self.timeline.last_end, self.timeline.active_s)
        self._restore(change.saved)
        self.timeline.last_end, self.timeline.active_s = timeline  # the time spent stays spent
        if change.model_touched:
            self._forget_model()
        return change

    def masklet(self, *, allow_untouched: bool) -> Masklet:
        """The masklet as it stands, for submission; refuses an empty one or (unless allowed) untouched frames."""
        untouched = [i for i, s in enumerate(self.status) if s is FrameStatus.TODO]
        if untouched and not allow_untouched:
            raise UntouchedFramesError(
                f"{len(untouched)} frame(s) were never annotated, propagated or accepted "
                f"({_ranges(untouched)}); submit anyway to leave them empty",
                untouched,
            )
        if not any(m.any() for m in self.masks):
            raise AnnotationError("the masklet is empty on every frame: annotate the object before submitting")
        masks = tuple(encode(m) for m in self.masks)
        return Masklet(self.view.video_id, self.view.object_id, MaskletSource.MANUAL, masks, len(self.edited))

    def submit_event(self) -> AnnotationEvent:
        began = ended = self.timeline.clock.now()
        start, duration, idle = self.timeline.span(began, ended)
        payload: dict[str, Any] = {"edited_frames": len(self.edited), "via": "web"}
        if self.view.queue is Queue.REFINE:
            payload |= {"refines": self.view.masklet_id, "round": self.view.refinement_round}
        if idle:
            payload["idle_s"] = round(idle, 3)
        return _event(self.view, self.user, self.phase, None, Action.SUBMIT, payload, start, duration)

    # --- internals ---------------------------------------------------------------------------------

    def _allow(self, tool: Tool) -> None:
        if tool not in self.view.tools:
            raise BadPromptError(
                f"{tool.value} is not a tool of {self.view.queue.value}: its tools are "
                f"{', '.join(t.value for t in self.view.tools)}"
            )

    def _check_frame(self, frame: int) -> None:
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < self.view.frame_count:
            raise AnnotationError(
                f"video {self.view.video_id}: frame {frame!r} is outside the video (frames 0..{self.view.frame_count - 1})"
            )

    def _set(self, frame: int, mask: np.ndarray) -> None:
        self.masks[frame] = mask
        self.status[frame] = FrameStatus.EDITED
        self.edited.add(frame)

    def _mask_prompts(self, frame: int) -> set[int]:
        """Frames the video model must be given as masks before propagating from ``frame``."""
        if self.phase == 2:
            return {frame}  # SAM 2 Mask: propagate from this frame with this mask
        return set(self.pending)  # brushed frames: the annotator's masks condition the model

    def _refines(self, frame: int) -> Refine:
        """Which mask a click on ``frame`` corrects: always the one on screen.

        Cleared, or never given a mask: none, the clicks segment the frame anew. The model's
        own latest output there: its logits, as SAM 2 refines. Anything else on screen (a
        brushed mask, the masklet under refinement, a mask kept while propagation moved the
        model on, anything after the model was rebuilt): that mask.
        """
        if self.status[frame] is FrameStatus.TODO:
            return False
        if frame in self.model_holds and frame not in self.pending:
            return True
        return self.masks[frame].copy()

    def _image_ready(self) -> ClickSegmenter:
        if self._image is None:
            self._image = self.segmenters.image(self.frames)
        return self._image

    def _tracker_ready(self) -> Tracker:
        """The video model, rebuilt from the prompts that stand if an undo or a failure reset it."""
        if self._tracker is None:
            tracker = self.segmenters.tracker(self.frames, self.view.object_id, mask_only=self.phase == 2)
            for frame in sorted(self.prompts):
                kind, value = self.prompts[frame]
                if kind == "clicks":
                    for count in range(1, len(value) + 1):  # click by click, as they were given
                        tracker.click(frame, value[:count])
                else:
                    tracker.add_mask(frame, value)
            self._tracker = tracker
        return self._tracker

    def _forget_model(self) -> None:
        self._tracker = None
        self._image = None
        self.model_holds.clear()

    @contextmanager
    def _model_call(self, frame: int) -> Iterator[_Watch]:
        watch = _Watch()
        try:
            yield watch
        except DataEngineError:
            raise
        except Exception as exc:
            self._forget_model()
            raise SegmenterFailedError(
                f"the model ({self.segmenters.description}) failed on video {self.view.video_id}, frame {frame}: "
                f"{type(exc).__name__}: {exc}; the action was not applied"
            ) from exc
        finally:
            watch.stop()

    def _save(self, frames: Sequence[int] | range) -> _Saved:
        return _Saved(
            frames={i: (self.masks[i], self.status[i], i in self.edited) for i in frames},
            clicks=dict(self.clicks),
            prompts=dict(self.prompts),
            pending=set(self.pending),
            timeline=(self.timeline.last_end, self.timeline.active_s),
        )

    def _restore(self, saved: _Saved) -> None:
        for i, (mask, status, edited) in saved.frames.items():
            self.masks[i], self.status[i] = mask, status
            if edited:
                self.edited.add(i)
            else:
                self.edited.discard(i)
        self.clicks, self.prompts, self.pending = dict(saved.clicks), dict(saved.prompts), set(saved.pending)
        self.timeline.last_end, self.timeline.active_s = saved.timeline

    def _change(
        self,
        action: Action,
        frame: int | None,
        payload: dict[str, Any],
        began: datetime,
        model_s: float,
        saved: _Saved | None,
        frames: Sequence[int],
        *,
        model_touched: bool = False,
    ) -> Change:
        ended = self.timeline.clock.now()
        start, duration, idle = self.timeline.span(began, ended)
        if model_s:
            payload["model_s"] = round(model_s, 6)
        if idle:
            payload["idle_s"] = round(idle, 3)
        before = (self.timeline.last_end, self.timeline.active_s)
        self.timeline.advance(ended, duration)
        event = _event(self.view, self.user, self.phase, frame, action, payload, start, duration)
        return Change(event, tuple(frames), saved, before, model_touched)


class VerifyWorkspace:
    """A verify task being worked in the browser: the masklet to judge, and the verifier's time."""

    def __init__(self, view: TaskView, user: str, masklet: Masklet, timeline: Timeline, *, lease_token_hash: str = "") -> None:
        self.view = view
        self.user = user
        self.masklet = masklet
        self.timeline = timeline
        self.lease_token_hash = lease_token_hash
        self.lock = _Lock()
        self.cancel = threading.Event()
        self.event_ids: list[int] = []

    def state(self) -> list[dict[str, Any]]:
        return [{"frame": i, "status": "masklet", "mask": mask_runs(decode(rle))} for i, rle in enumerate(self.masklet.masks)]

    def examine(self, first: int, last: int) -> Change:
        """Frames looked at while judging; recorded for the record, not as the masklet's annotation time."""
        for frame in (first, last):
            if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < self.view.frame_count:
                raise AnnotationError(f"frame {frame!r} is outside the masklet (frames 0..{self.view.frame_count - 1})")
        if last < first:
            raise BadPromptError(f"examined frames {first}..{last}: the last frame comes before the first")
        began = ended = self.timeline.clock.now()
        start, duration, idle = self.timeline.span(began, ended)
        before = (self.timeline.last_end, self.timeline.active_s)
        self.timeline.advance(ended, duration)
        payload: dict[str, Any] = {"last_frame": last, "frames": last - first + 1, "verifying": True}
        if idle:
            payload["idle_s"] = round(idle, 3)
        event = _event(self.view, self.user, self.view.phase, first, Action.EXAMINE, payload, start, duration)
        return Change(event, (), None, before)

    def committed(self, change: Change, event_id: int) -> None:
        change.event_id = event_id
        self.event_ids.append(event_id)

    def revert(self, change: Change) -> None:
        self.timeline.last_end, self.timeline.active_s = change.before

    def verdict_event(self, verdict: Verdict, reason: str | None, frames: Sequence[int]) -> AnnotationEvent:
        """The verdict, lasting the whole time spent judging (every look at the masklet included)."""
        began = ended = self.timeline.clock.now()
        _, gap, idle = self.timeline.span(began, ended)
        duration = self.timeline.active_s + gap
        start = ended - timedelta(seconds=duration)
        payload: dict[str, Any] = {"verdict": verdict.value, "reason": reason, "jf": None, "frames": list(frames), "via": "web"}
        if idle:
            payload["idle_s"] = round(idle, 3)
        return _event(self.view, self.user, self.view.phase, None, Action.VERDICT, payload, start, duration)


Workspace = AnnotationWorkspace | VerifyWorkspace


class Workspaces:
    """The open workspaces of this server process, one per task and lease.

    A task claimed again (by anyone) after its lease ended gets a fresh workspace: the old
    one's work was never submitted. Least recently used workspaces beyond ``max_open`` are
    dropped (their leases have long expired, or their people left).
    """

    def __init__(self, opener: Callable[[str, HeldTask], Workspace], max_open: int = 64) -> None:
        self._opener = opener
        self._max_open = max_open
        self._open: dict[int, tuple[Workspace, float]] = {}
        self._lock = threading.Lock()
        self._opening: dict[int, threading.Lock] = {}

    def get(self, user: str, held: HeldTask, token_hash: str) -> Workspace:
        task_id = held.task.id
        with self._lock:
            found = self._open.get(task_id)
            if found is not None and found[0].user == user and found[0].lease_token_hash == token_hash:
                self._open[task_id] = (found[0], time.monotonic())
                return found[0]
            opening = self._opening.setdefault(task_id, threading.Lock())
        with opening:  # one opening per task at a time; the others wait and find it open
            with self._lock:
                found = self._open.get(task_id)
                if found is not None and found[0].user == user and found[0].lease_token_hash == token_hash:
                    return found[0]
            workspace = self._opener(user, held)
            workspace.lease_token_hash = token_hash
            with self._lock:
                self._open[task_id] = (workspace, time.monotonic())
                while len(self._open) > self._max_open:
                    oldest = min(self._open, key=lambda k: self._open[k][1])
                    self._open.pop(oldest)[0].cancel.set()
            return workspace

    def drop(self, task_id: int) -> None:
        with self._lock:
            found = self._open.pop(task_id, None)
            self._opening.pop(task_id, None)
        if found is not None:
            found[0].cancel.set()

    def __len__(self) -> int:
        return len(self._open)


def open_workspace(
    user: str,
    held: HeldTask,
    *,
    store: AnnotationStore,
    models: SegmenterSource,
    clock: Clock,
    idle_cap_s: float,
) -> Workspace:
    """A workspace for ``held``: its video, its model, its starting masks, its hint."""
    task = held.task
    timeline = Timeline(clock, idle_cap_s)
    if task.queue is Queue.VERIFY:
        stored = store.masklet(_masklet_id(task.masklet_id, task.payload))
        if stored.status != IN_VERIFICATION:
            raise AlreadyVerifiedError(f"masklet {stored.masklet_id} is {stored.status}: it is not waiting for a verdict")
        masklet = stored.masklet
        view = _view(held, stored.phase, masklet.video_id, masklet.object_id, masklet.frame_count, masklet.height,
                     masklet.width, (), None, masklet_id=stored.masklet_id)
        return VerifyWorkspace(view, user, masklet, timeline)
    if task.queue is Queue.REFINE:
        stored = store.masklet(_masklet_id(task.masklet_id, task.payload))
        if stored.status != Verdict.UNSATISFACTORY.value:
            raise AlreadyVerifiedError(f"masklet {stored.masklet_id} is {stored.status}, not unsatisfactory: nothing to refine")
        inputs = store.inputs_for(stored.masklet)
        segmenters = models.segmenters(inputs.truth)
        height, width = inputs.frames.size
        frames_flagged = tuple(int(f) for f in task.payload.get("frames") or () if isinstance(f, int))
        view = _view(held, REFINE_PHASE, inputs.video_id, stored.masklet.object_id, inputs.frames.frame_count, height,
                     width, PHASE_TOOLS[REFINE_PHASE], segmenters.description, masklet_id=stored.masklet_id,
                     refinement_round=stored.refinement_round + 1, reason=task.payload.get("reason"),
                     flagged_frames=frames_flagged)
        return AnnotationWorkspace(view, user, inputs.frames, segmenters, timeline, initial=stored.masklet)
    phase = {Queue.ANNOTATE_PHASE_1: 1, Queue.ANNOTATE_PHASE_2: 2, Queue.ANNOTATE_PHASE_3: 3}[task.queue]
    video_id, object_id = task.payload.get("video_id"), task.payload.get("object_id")
    if not isinstance(video_id, str) or isinstance(object_id, bool) or not isinstance(object_id, int):
        raise BadPayloadError(f"task {task.id} names no video_id and object_id to annotate: {dict(task.payload)}")
    inputs = store.inputs(video_id, object_id)
    segmenters = models.segmenters(inputs.truth)
    height, width = inputs.frames.size
    hint = _payload_hint(task.payload.get("hint")) or (None if inputs.truth is None else hint_of(inputs.truth))
    view = _view(held, phase, video_id, object_id, inputs.frames.frame_count, height, width, PHASE_TOOLS[phase],
                 segmenters.description, hint=hint)
    return AnnotationWorkspace(view, user, inputs.frames, segmenters, timeline)


def hint_of(truth: Masklet) -> Hint | None:
    """Which object: the point deepest inside it on the frame where it first appears."""
    frame = truth.first_appeared_frame
    if frame is None:
        return None
    mask = decode(truth.masks[frame]).astype(np.uint8)
    distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return Hint(frame, float(x), float(y))


# --- helpers -----------------------------------------------------------------------------------------


@dataclass
class _Watch:
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started


def _view(held: HeldTask, phase: int | None, video_id: str, object_id: int, frame_count: int, height: int, width: int,
          tools: tuple[Tool, ...], model: str | None, **extra: Any) -> TaskView:
    return TaskView(held.task.id, held.task.queue, phase, video_id, object_id, frame_count, height, width, tools, model,
                    held.expires_at, **extra)


def _event(view: TaskView, user: str, phase: int | None, frame: int | None, action: Action, payload: dict[str, Any],
           start: datetime, duration: float) -> AnnotationEvent:
    return AnnotationEvent(
        task_id=view.task_id,
        masklet_id=None,
        video_id=view.video_id,
        annotator=user,
        phase=phase,
        frame_index=frame,
        action=action,
        payload=MappingProxyType(payload),
        started_at=start,
        duration_s=duration,
    )


def _masklet_id(column: int | None, payload: Any) -> int:
    masklet_id = column if column is not None else payload.get("masklet_id")
    if not isinstance(masklet_id, int) or isinstance(masklet_id, bool):
        raise BadPayloadError("this task names no masklet_id to work on")
    return masklet_id


def _payload_hint(value: Any) -> Hint | None:
    if not isinstance(value, dict):
        return None
    try:
        return Hint(int(value["frame"]), float(value["x"]), float(value["y"]))
    except (KeyError, TypeError, ValueError):
        return None


def _ranges(frames: Sequence[int]) -> str:
    parts, start = [], None
    for i, frame in enumerate(frames):
        if start is None:
            start = frame
        if i + 1 == len(frames) or frames[i + 1] != frame + 1:
            parts.append(str(start) if start == frame else f"{start}-{frame}")
            start = None
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")
