"""What annotators do, and the record of it: actions, annotation events, annotators, verifiers.

An annotator works one object of one video at a time with a model in the loop. Their actions
are the ones the SAM 2 annotation tool offers: a click on a frame (positive: "this is the
object", negative: "this is not"), a brush or eraser stroke, propagating through the video,
examining frames, accepting a frame, clearing a frame to start it again, submitting the
masklet, and (for a verifier) a verdict. Every action becomes an :class:`AnnotationEvent`
with its start time and duration, the material of the per-phase metrics; the catalog stores
them in ``annotation_events`` through an :class:`AnnotationEventSink`.

:class:`ActionLog` records the events of one masklet on a timeline: each action starts when
the previous one ended and lasts its human time (:class:`engine.time_model.TimeModel`) plus
the measured time of the model calls it waited for. Real people's events (from the web app)
carry their own timestamps instead; the metrics read both alike.

:class:`Annotator` and :class:`Verifier` are the decisions a person makes; the phases
(:mod:`phases`) ask them and drive the model. :mod:`engine.simulated_annotator` implements both
with ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from engine.errors import AnnotationError
from engine.masklets import Masklet
from engine.masks import Rle, area, decode, encode
from engine.queues import Verdict
from engine.time_model import Clock, TimeModel, stroke_length


class Action(StrEnum):
    """The kinds of annotation events (``annotation_events.action``)."""

    CLICK = "click"
    BRUSH = "brush"
    ERASER = "eraser"
    PROPAGATE = "propagate"
    EXAMINE = "examine"  # looking over a run of frames to judge them
    ACCEPT_FRAME = "accept_frame"  # a frame annotated without any edit (the object is not there)
    CLEAR_FRAME = "clear_frame"  # a failing frame thrown away, to be annotated again from scratch
    SUBMIT = "submit"
    VERDICT = "verdict"


STROKES = (Action.BRUSH, Action.ERASER)
ANNOTATION_ACTIONS = tuple(a for a in Action if a is not Action.VERDICT)  # what counts as annotation time


@dataclass(frozen=True)
class Click:
    """A click on a frame at ``(x, y)`` frame pixels; positive: the object, negative: not the object."""

    frame: int
    x: float
    y: float
    positive: bool


@dataclass(frozen=True)
class Stroke:
    """A brush stroke (adds ``region`` to the mask) or an eraser stroke (removes it) on one frame."""

    frame: int
    eraser: bool
    region: Rle

    @classmethod
    def painting(cls, frame: int, region: np.ndarray, *, eraser: bool) -> Stroke:
        return cls(frame, eraser, encode(region))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        region = decode(self.region)
        return mask & ~region if self.eraser else mask | region


@dataclass(frozen=True)
class AnnotationEvent:
    """One action with its timing; ``payload`` holds its details as stored (JSON values)."""

    task_id: int | None
    masklet_id: int | None  # None until the masklet is stored
    video_id: str
    annotator: str
    phase: int | None
    frame_index: int | None
    action: Action
    payload: Mapping[str, Any]
    started_at: datetime
    duration_s: float

    @property
    def model_s(self) -> float:
        """The measured model time inside the duration (0 for actions without model calls)."""
        return float(self.payload.get("model_s", 0.0))


@dataclass(frozen=True)
class AnnotatedMasklet:
    """What a phase hands in: the masklet, who made it with which model, what they edited, how long it took."""

    masklet: Masklet
    phase: int
    annotator: str
    model_version_id: int | None
    edited_frames: tuple[int, ...]
    events: tuple[AnnotationEvent, ...]

    @property
    def seconds(self) -> float:
        return sum(e.duration_s for e in self.events)


class AnnotationEventSink(Protocol):
    """Where annotation events go (the catalog's ``annotation_events``)."""

    def record(self, events: Sequence[AnnotationEvent], masklet_id: int | None = None) -> None:
        """Store ``events`` together, attached to ``masklet_id`` when given."""
        ...


@dataclass(frozen=True)
class EventContext:
    """What every event of one piece of work shares: who works which video for which task."""

    video_id: str
    annotator: str
    phase: int | None
    task_id: int | None = None


@dataclass
class _ExamineRun:
    first: int
    last: int
    offset_s: float  # where on the timeline the run started


class ActionLog:
    """The events of one masklet's annotation, on a timeline that starts at ``clock.now()``.

    Each method records one action and returns its duration. Examining consecutive frames is
    recorded as one event per run of frames, not one per frame.
    """

    def __init__(self, context: EventContext, *, frame_count: int, time_model: TimeModel, clock: Clock) -> None:
        self.context = context
        self.frame_count = frame_count
        self.time_model = time_model
        self.clock = clock
        self._start = clock.now()
        self._elapsed = 0.0
        self._events: list[AnnotationEvent] = []
        self._examining: _ExamineRun | None = None
        self._pending_model_s = 0.0

    @property
    def elapsed_s(self) -> float:
        return self._elapsed

    @property
    def events(self) -> tuple[AnnotationEvent, ...]:
        self._end_examining()
        return tuple(self._events)

    def click(self, click: Click, *, locate: bool, model_s: float) -> float:
        payload = {"x": round(click.x, 2), "y": round(click.y, 2), "positive": click.positive, "locate": locate}
        return self._add(Action.CLICK, click.frame, payload, self.time_model.click(locate=locate), model_s)

    def stroke(self, stroke: Stroke, *, outline: bool = False, model_s: float = 0.0) -> float:
        """A brush or eraser stroke; ``outline``: a brush stroke drawing the object on an empty mask."""
        if outline and stroke.eraser:
            raise AnnotationError(f"frame {stroke.frame}: an eraser stroke cannot outline an object")
        region = decode(stroke.region)
        payload: dict[str, Any] = {
            "area": area(stroke.region),
            "length": round(stroke_length(region), 5),
            "rle": stroke.region.counts.decode("ascii"),
        }
        if outline:
            payload["outline"] = True
        action = Action.ERASER if stroke.eraser else Action.BRUSH
        return self._add(action, stroke.frame, payload, self.time_model.stroke(region, outline=outline), model_s)

    def propagate(self, from_frame: int, frames: int, *, model_s: float) -> float:
        return self._add(Action.PROPAGATE, from_frame, {"frames": frames}, 0.0, model_s)

    def accept(self, frame: int, *, empty: bool, locate: bool) -> float:
        """A frame taken as it is; ``locate``: the annotator searched it for the object first."""
        human_s = self.time_model.locate_s if locate else 0.0
        return self._add(Action.ACCEPT_FRAME, frame, {"empty": empty}, human_s, 0.0)

    def clear(self, frame: int) -> float:
        """Throw a frame's mask away (one press of a button)."""
        return self._add(Action.CLEAR_FRAME, frame, {}, self.time_model.click_s, 0.0)

    def submit(self, details: Mapping[str, Any] | None = None) -> float:
        return self._add(Action.SUBMIT, None, dict(details or {}), 0.0, 0.0)

    def verdict(self, verdict: Verdict, *, reason: str | None, jf: float | None, frames: int) -> float:
        payload = {"verdict": verdict.value, "reason": reason, "jf": None if jf is None else round(jf, 5)}
        human_s = self.time_model.examine(frames) + self.time_model.click_s
        return self._add(Action.VERDICT, None, payload, human_s, 0.0)

    def model_time(self, seconds: float) -> None:
        """Model time spent outside any action (loading a masklet into the tool): the next action waits for it."""
        self._pending_model_s += seconds

    def examine(self, frame: int) -> float:
        """Look at one frame to judge it; consecutive frames join one event."""
        self._check_frame(frame)
        run = self._examining
        if run is None or frame != run.last + 1:
            self._end_examining()
            self._examining = _ExamineRun(frame, frame, self._elapsed)
        else:
            run.last = frame
        seconds = self.time_model.examine(1)
        self._elapsed += seconds
        return seconds

    def _add(self, action: Action, frame: int | None, payload: dict[str, Any], human_s: float, model_s: float) -> float:
        if frame is not None:
            self._check_frame(frame)
        self._end_examining()
        model_s, self._pending_model_s = model_s + self._pending_model_s, 0.0
        duration = human_s + model_s
        if model_s:
            payload["model_s"] = round(model_s, 6)
        self._events.append(self._event(action, frame, payload, self._elapsed, duration))
        self._elapsed += duration
        return duration

    def _end_examining(self) -> None:
        run, self._examining = self._examining, None
        if run is None:
            return
        frames = run.last - run.first + 1
        payload = {"last_frame": run.last, "frames": frames}
        self._events.append(self._event(Action.EXAMINE, run.first, payload, run.offset_s, self.time_model.examine(frames)))

    def _event(self, action: Action, frame: int | None, payload: dict[str, Any], offset_s: float, duration: float) -> AnnotationEvent:
        c = self.context
        return AnnotationEvent(
            task_id=c.task_id,
            masklet_id=None,
            video_id=c.video_id,
            annotator=c.annotator,
            phase=c.phase,
            frame_index=frame,
            action=action,
            payload=MappingProxyType(payload),
            started_at=self._start + timedelta(seconds=offset_s),
            duration_s=duration,
        )

    def _check_frame(self, frame: int) -> None:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < self.frame_count:
            raise AnnotationError(
                f"video {self.context.video_id}: frame {frame!r} is outside the video "
                f"(frames 0..{self.frame_count - 1}); an action must name one of its frames"
            )


class Annotator(Protocol):
    """The decisions of a person annotating one object (the phases drive the model).

    Masks are ``(height, width)`` boolean arrays of one frame.
    """

    @property
    def name(self) -> str: ...

    def first_appearance(self) -> int | None:
        """The first frame where the object shows, found by scanning the video; None: never."""
        ...

    def next_click(self, frame: int, mask: np.ndarray, clicks: Sequence[Click]) -> Click | None:
        """The next click to correct ``mask`` (after ``clicks`` on this frame), or None: done clicking."""
        ...

    def starts_over(self, frame: int, mask: np.ndarray, *, polish: bool = True) -> bool:
        """Whether to clear ``mask`` and paint the object anew rather than correct it stroke by stroke.

        ``polish``: the frame is to be finished to the polish target (see :meth:`strokes`).
        """
        ...

    def strokes(self, frame: int, mask: np.ndarray, *, polish: bool = True) -> Sequence[Stroke]:
        """Brush and eraser strokes that finish ``mask`` where clicks could not, in order.

        ``polish``: the frame is annotated from scratch and is finished to the annotator's
        best standard; otherwise (a tracked frame being refined) until it passes.
        """
        ...

    def accepts(self, frame: int, mask: np.ndarray) -> bool:
        """Whether ``mask`` passes on examination (a propagated frame, a masklet under review)."""
        ...


@dataclass(frozen=True)
class Judgement:
    """A verifier's verdict on a masklet, with the reason and the frames that failed."""

    verdict: Verdict
    reason: str | None = None
    frames: tuple[int, ...] = field(default=())
    jf: float | None = None  # J&F against ground truth, when the verifier had it


class Verifier(Protocol):
    """The decisions of a person verifying masklets (never their own)."""

    @property
    def name(self) -> str: ...

    def judge(self, masklet: Masklet) -> Judgement:
        ...
