"""How long an annotator's actions take, and the clock that measures the model's share.

A simulated annotator does not take time; it is *charged* time, action by action, so that the
phases can be compared in seconds per frame as the SAM 2 paper's Table 1 compares them. The
human part of each action comes from :class:`TimeModel`; the model part (frame embedding,
mask decoding, propagation) is never assumed: it is the wall clock of the actual model calls,
read from a :class:`Clock`, so a faster model or machine shows up as faster annotation.

Sources of the human figures:

- **Locating the object: 1 s; one click: 1.5 s; examining 300 frames: 30 s** (0.1 s a frame).
  SAM 2 paper (Ravi et al., 2024), appendix E.1.2, the cost model of its interactive video
  evaluation.
- **Brush and eraser** are not in the paper's cost model. A stroke costs a fixed
  ``stroke_base_s`` (finding the error, zooming to it, choosing the tool, checking the result)
  plus ``stroke_s_per_diagonal`` times the stroke's length: half the perimeter of the painted
  region (tracing a thin sliver is its length; painting a blob is about tracing its outline),
  in units of the frame's diagonal, so the cost does not depend on the video's resolution
  (annotators zoom to fit). The tracing rate is an assumption, not a measurement: 20 s per
  diagonal, careful boundary work at about 75 px/s on a 1,500 px screen diagonal.
  ``stroke_base_s`` is calibrated by ``bench/calibrate_time_model.py``: simulated Phase 1
  (every frame from scratch, clicks then brush) with a strong image model (degraded ground
  truth tuned to need the paper's 4.80 clicks per clicked frame) on seeded synthetic videos
  must land on the paper's 37.8 s per frame.

  Calibration result (``python bench/calibrate_time_model.py``: 8 seeded synthetic videos of
  320x240, seed 0, 24 sampled frames, 4 objects each; annotator IoU target 0.9, polish 0.95):
  the strong image model with 5 error blobs a frame needs 4.78 clicks per clicked frame (paper
  4.80); without the per-stroke cost Phase 1 takes 9.48 s per frame with 1.77 strokes per frame
  (0.0581 diagonals of stroke) and 8 objects outlined by hand (below), so ``stroke_base_s =
  (37.8 - 9.48) / 1.77 = 16.0``; the check run with 16.0 gives 37.79 s per frame. Most of
  Phase 1's time is thus the per-stroke work of polishing boundaries, as the paper's annotators
  did with the brush on every frame.
- **Outlining an object by hand: 79.2 s.** A brush stroke on a frame whose mask is empty (the
  model found nothing, or a mostly wrong mask was cleared) draws the whole object from nothing,
  which is manual polygon annotation, not a touch-up: COCO's instance masks took 22 worker-hours
  per 1,000 (Lin et al., 2014), 79.2 s each. Without it a model useless everywhere made Phase 1
  the cheapest of all (28 s per frame with random weights against 37 to 50 s with trained ones,
  ``bench/phase1_actions.py``), because one stroke (then 16.5 s plus its length) painted what a
  middling model's spill and miss took two or three strokes to fix. The strong model of the
  calibration above outlines 8 objects by hand in its 768 frames (masks left empty after the
  clicks, or too wrong to be worth fixing); they are charged as outlines there too. Priced so,
  an outline is worth it only for a mask that would take several strokes to fix, and the
  simulated annotator clears a mostly wrong mask only then (``SimulatedAnnotator.starts_over``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

import cv2
import numpy as np

from engine.errors import ConfigError

LOCATE_S = 1.0  # SAM 2 paper, appendix E.1.2
CLICK_S = 1.5  # SAM 2 paper, appendix E.1.2
EXAMINE_S_PER_FRAME = 30.0 / 300  # SAM 2 paper, appendix E.1.2: 300 frames in 30 s
STROKE_BASE_S = 16.0  # calibrated by bench/calibrate_time_model.py (see the module doc)
STROKE_S_PER_DIAGONAL = 20.0  # an assumption: careful tracing at about 75 px/s on a 1,500 px screen
OUTLINE_S = 22 * 3600 / 1000  # COCO (Lin et al., 2014): 22 worker-hours per 1,000 instance masks


@dataclass(frozen=True)
class TimeModel:
    """Seconds a person spends on each kind of action (the human part only; model time is measured)."""

    locate_s: float = LOCATE_S
    click_s: float = CLICK_S
    examine_s_per_frame: float = EXAMINE_S_PER_FRAME
    stroke_base_s: float = STROKE_BASE_S
    stroke_s_per_diagonal: float = STROKE_S_PER_DIAGONAL
    outline_s: float = OUTLINE_S

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"time model: {name}={value!r} must be a finite number of seconds >= 0")

    def click(self, *, locate: bool) -> float:
        """One click; the first click of an annotation from scratch also pays for finding the object."""
        return self.click_s + (self.locate_s if locate else 0.0)

    def stroke(self, region: np.ndarray, *, outline: bool = False) -> float:
        """One brush or eraser stroke painting ``region`` (a boolean mask of the frame).

        ``outline``: the stroke draws the object on an empty mask, by hand from nothing.
        """
        if outline:
            return self.outline_s
        return self.stroke_base_s + self.stroke_s_per_diagonal * stroke_length(region)

    def examine(self, frames: int) -> float:
        """Looking over ``frames`` frames to judge them."""
        return self.examine_s_per_frame * frames


def stroke_length(region: np.ndarray) -> float:
    """Length of the stroke that paints ``region``: half its perimeter, in frame diagonals."""
    region = np.ascontiguousarray(region, dtype=np.uint8)
    if not region.any():
        return 0.0
    contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, closed=True) for c in contours)
    height, width = region.shape
    return perimeter / 2.0 / math.hypot(height, width)


class Clock(Protocol):
    """Where time comes from: the wall clock for timestamps, a monotonic counter for durations."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def seconds(self) -> float:
        """A monotonic counter in seconds, to measure model calls."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def seconds(self) -> float:
        return time.perf_counter()


class ManualClock:
    """A deterministic clock for tests: every reading of :meth:`seconds` advances it by ``tick``.

    A model call measured with it therefore "takes" exactly ``tick`` seconds.
    """

    def __init__(self, start: datetime | None = None, tick: float = 0.0) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._elapsed = 0.0
        self.tick = tick

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def seconds(self) -> float:
        self._elapsed += self.tick
        return self._elapsed


class Stopwatch:
    """Measures the wall clock of a block (a model call): ``with Stopwatch(clock) as sw: ...; sw.seconds``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._started = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = self._clock.seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = max(0.0, self._clock.seconds() - self._started)
