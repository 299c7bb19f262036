"""Simulated segmentation models: ground truth, degraded the way a real model errs.

For procedure tests (fast, and their outcome known) and for calibrating the time model
against "a strong image model", the phases can run on these instead of SAM 2. They are
honest stand-ins, not models: they read the object's ground truth and spoil it.

What a simulated model gets wrong:

- **coarseness**: masks come from a low-resolution grid (``mask_side`` cells on each side, as
  SAM 2's 256 px input gives 64x64 mask logits), upsampled smoothly, so thin parts and sharp
  corners are rounded off; no click fixes that, only the brush;
- **error blobs**: discs centred on the object's boundary, cut out of it (missed) or spilling
  over (spurious), as many as a Poisson draw of mean ``image_errors`` on a frame segmented
  from clicks; a click inside a blob corrects it with chance ``click_fix``;
- **tracking** (the video model): a propagated frame gets a Poisson number of blobs of mean
  ``drift_per_frame`` times its distance from the last prompted frame; where the object has
  gone, the previous mask stays with chance ``ghost_chance``; where it comes back, it stays
  lost with chance ``lost_chance``. A click on a propagated frame corrects it in place
  (SAM 2 keeps the frame's memory); a mask prompt is taken as given.

Every draw comes from a generator seeded by ``(seed, frame, round)``, so runs repeat.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.annotation import Click
from engine.errors import BadPromptError, ConfigError, MissingGroundTruthError
from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode, validate_mask
from engine.segmenters import Refine
from engine.simulated_annotator import GroundTruth


@dataclass(frozen=True)
class ModelQuality:
    """How good a simulated model is (see the module doc for what each figure does)."""

    mask_side: int = 64
    image_errors: float = 3.0
    blob_radius: float = 0.3  # as a fraction of the object's equivalent radius
    click_fix: float = 0.85
    drift_per_frame: float = 0.15
    ghost_chance: float = 0.3
    lost_chance: float = 0.3

    def __post_init__(self) -> None:
        if self.mask_side < 4 or self.image_errors < 0 or self.blob_radius <= 0 or self.drift_per_frame < 0:
            raise ConfigError(f"simulated model quality {self} is out of range")
        for chance in (self.click_fix, self.ghost_chance, self.lost_chance):
            if not 0 <= chance <= 1:
                raise ConfigError(f"simulated model quality {self}: chances must be in [0, 1]")


STRONG_IMAGE_MODEL = ModelQuality(mask_side=64, image_errors=5.0, blob_radius=0.3, click_fix=0.85)
"""The "strong image model" of the time model's calibration (SAM-like: 4.8 clicks per clicked frame)."""


@dataclass(eq=False)
class _Blob:
    region: np.ndarray
    missed: bool


@dataclass
class _FrameOutput:
    """What a simulated model currently shows on one frame: a base mask and its error blobs."""

    base: np.ndarray
    blobs: list[_Blob] = field(default_factory=list)

    def mask(self) -> np.ndarray:
        mask = self.base.copy()
        for blob in self.blobs:
            if blob.missed:
                mask &= ~blob.region
            else:
                mask |= blob.region
        return mask


class _Degrader:
    """The shared machinery: coarse truth, blob draws, click fixes."""

    def __init__(self, truth: GroundTruth, quality: ModelQuality, seed: int) -> None:
        self.truth = truth
        self.quality = quality
        self.seed = seed
        self._coarse: dict[int, np.ndarray] = {}

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def coarse(self, frame: int) -> np.ndarray:
        """The truth as a low-resolution mask grid would render it."""
        if frame not in self._coarse:
            self._coarse[frame] = coarsen(self.truth[frame], self.quality.mask_side)
        return self._coarse[frame]

    def blobs(self, frame: int, mean: float, rng: np.random.Generator) -> list[_Blob]:
        truth = self.truth[frame]
        boundary = np.argwhere(truth & ~cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool))
        count = int(rng.poisson(mean)) if mean > 0 else 0
        if count == 0 or len(boundary) == 0:
            return []
        radius = max(2.0, self.quality.blob_radius * math.sqrt(np.count_nonzero(truth) / math.pi))
        blobs = []
        for _ in range(count):
            y, x = boundary[int(rng.integers(len(boundary)))]
            disc = np.zeros_like(truth, dtype=np.uint8)
            cv2.circle(disc, (int(x), int(y)), int(round(radius)), 1, thickness=-1)
            missed = bool(rng.random() < 0.5)
            region = disc.astype(bool) & (truth if missed else ~truth)
            if region.any():
                blobs.append(_Blob(region, missed))
        return blobs

    def apply_click(self, output: _FrameOutput, click: Click, rng: np.random.Generator) -> None:
        """A click inside an error blob corrects it with chance ``click_fix``."""
        x, y = _pixel(click, output.base.shape)
        output.blobs = [b for b in output.blobs if not (b.region[y, x] and rng.random() < self.quality.click_fix)]


def _pixel(click: Click, shape: tuple[int, ...]) -> tuple[int, int]:
    """The pixel a click lands on (clicks may sit on the frame's far edge, ``x == width``)."""
    height, width = shape[:2]
    return min(max(int(click.x), 0), width - 1), min(max(int(click.y), 0), height - 1)


def coarsen(mask: np.ndarray, side: int) -> np.ndarray:
    """``mask`` rendered through a ``side`` x ``side`` grid and smoothly upsampled (rounded corners)."""
    height, width = mask.shape
    if side >= max(height, width):
        return mask.copy()
    small = cv2.resize(mask.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5


class SimulatedClickSegmenter:
    """A :class:`engine.segmenters.ClickSegmenter` that degrades the truth of one object."""

    def __init__(self, degrader: _Degrader) -> None:
        self._d = degrader
        self._outputs: dict[int, _FrameOutput] = {}
        self._attempts: dict[int, int] = {}

    def click(self, frame: int, clicks: Sequence[Click]) -> np.ndarray:
        if not clicks:
            raise BadPromptError("no clicks: a mask needs at least one click")
        if len(clicks) == 1 or frame not in self._outputs:
            self._attempts[frame] = self._attempts.get(frame, 0) + 1
            self._outputs[frame] = self._first_click(frame, clicks[0])
        else:
            self._d.apply_click(self._outputs[frame], clicks[-1], self._rng(frame, len(clicks)))
        return self._outputs[frame].mask()

    def _first_click(self, frame: int, click: Click) -> _FrameOutput:
        truth = self._d.truth[frame]
        x, y = _pixel(click, truth.shape)
        if not (click.positive and truth[y, x]):
            return _FrameOutput(np.zeros_like(truth))  # a click off the object finds nothing
        rng = self._rng(frame, 0)
        return _FrameOutput(self._d.coarse(frame), self._d.blobs(frame, self._d.quality.image_errors, rng))

    def _rng(self, frame: int, click: int) -> np.random.Generator:
        return self._d.rng(1, frame, self._attempts.get(frame, 0), click)


class SimulatedTracker:
    """A :class:`engine.segmenters.Tracker` that degrades the truth of one object, more with distance."""

    def __init__(self, degrader: _Degrader, frame_count: int, *, mask_only: bool) -> None:
        self._d = degrader
        self._frame_count = frame_count
        self._mask_only = mask_only
        self._image = SimulatedClickSegmenter(degrader)
        self._outputs: dict[int, _FrameOutput] = {}
        self._prompted: dict[int, np.ndarray] = {}  # conditioning frames: their masks stand
        self._round = 0

    @property
    def mask_only(self) -> bool:
        return self._mask_only

    def click(self, frame: int, clicks: Sequence[Click], *, refine: Refine = True) -> np.ndarray:
        if self._mask_only:
            raise BadPromptError("this tracker is mask-only (SAM 2 Mask, Phase 2): it refuses clicks")
        if refine is False:
            self._outputs.pop(frame, None)  # the clicks segment the frame anew
        elif not isinstance(refine, bool):
            height, width = self._d.truth[frame].shape
            validate_mask(refine, height, width)
            self._outputs[frame] = _FrameOutput(np.asarray(refine, dtype=bool).copy())  # they correct this mask
        output = self._outputs.get(frame)
        if output is None:  # never tracked here: the clicks segment the frame from scratch
            mask = self._image.click(frame, clicks)
        else:
            self._reacquire(frame, output, clicks[-1])
            self._d.apply_click(output, clicks[-1], self._d.rng(2, frame, self._round, len(clicks)))
            mask = output.mask()
        self._prompted[frame] = mask
        return mask

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        self._prompted[frame] = np.asarray(mask, dtype=bool).copy()
        self._outputs[frame] = _FrameOutput(self._prompted[frame])

    def propagate(self, from_frame: int) -> Iterator[tuple[int, np.ndarray]]:
        if not self._prompted:
            raise BadPromptError("nothing to propagate: prompt a frame first")
        self._round += 1
        previous: np.ndarray | None = None
        for frame in range(from_frame, self._frame_count):
            if frame in self._prompted:
                self._outputs[frame] = _FrameOutput(self._prompted[frame])
            else:
                self._outputs[frame] = self._track(frame, previous)
            previous = self._outputs[frame].mask()
            yield frame, previous

    def _track(self, frame: int, previous: np.ndarray | None) -> _FrameOutput:
        q, rng = self._d.quality, self._d.rng(3, frame, self._round)
        truth = self._d.truth[frame]
        was_visible = previous is not None and previous.any()
        if not truth.any():
            ghost = was_visible and rng.random() < q.ghost_chance
            return _FrameOutput(previous.copy() if ghost else np.zeros_like(truth))  # type: ignore[union-attr]
        if not was_visible and rng.random() < q.lost_chance:
            return _FrameOutput(np.zeros_like(truth))
        distance = frame - max((f for f in self._prompted if f < frame), default=frame - 1)
        return _FrameOutput(self._d.coarse(frame), self._d.blobs(frame, q.drift_per_frame * distance, rng))

    def _reacquire(self, frame: int, output: _FrameOutput, click: Click) -> None:
        """A click on a lost or ghost frame: memory re-finds the object, or clears the ghost."""
        truth = self._d.truth[frame]
        x, y = _pixel(click, truth.shape)
        if click.positive and not output.base.any() and truth[y, x]:
            output.base = self._d.coarse(frame)
        elif not click.positive and not truth.any():
            output.base = np.zeros_like(truth)
            output.blobs.clear()


@dataclass(frozen=True)
class SimulatedSegmenters:
    """:class:`engine.segmenters.Segmenters` made of simulated models of one quality."""

    truth: Masklet
    quality: ModelQuality = ModelQuality()
    seed: int = 0
    model_version_id: int | None = None
    description: str = "simulated (degraded ground truth)"

    def image(self, frames: FrameSource) -> SimulatedClickSegmenter:
        return SimulatedClickSegmenter(self._degrader())

    def tracker(self, frames: FrameSource, object_id: int, *, mask_only: bool) -> SimulatedTracker:
        return SimulatedTracker(self._degrader(), self.truth.frame_count, mask_only=mask_only)

    def _degrader(self) -> _Degrader:
        return _Degrader(GroundTruth(self.truth), self.quality, self.seed)


@dataclass(frozen=True)
class SimulatedSegmenterSource:
    """A :class:`engine.segmenters.SegmenterSource` of simulated models (needs each task's truth)."""

    quality: ModelQuality = ModelQuality()
    seed: int = 0

    @property
    def fallback_used(self) -> bool:
        return False  # simulated models never fall back to the embedded model

    def segmenters(self, truth: Masklet | None = None) -> SimulatedSegmenters:
        if truth is None:
            raise MissingGroundTruthError("a simulated model degrades the object's ground truth, and there is none")
        return SimulatedSegmenters(truth, self.quality, self.seed)


def simulated_auto_masklet(truth: Masklet, quality: ModelQuality = ModelQuality(), seed: int = 0) -> Masklet:
    """An automatic masklet for ``truth``'s object, as a prompted-and-propagated model might make it.

    The object's first visible frame is segmented as from one click (coarse, with error
    blobs) and tracked forward with the simulated video model; for tests and the benchmark,
    until the model work's candidate generator exists.
    """
    degrader = _Degrader(GroundTruth(truth), quality, seed)
    height, width = truth.height, truth.width
    masks = [np.zeros((height, width), dtype=bool) for _ in range(truth.frame_count)]
    first = truth.first_appeared_frame
    if first is not None:
        start = _FrameOutput(degrader.coarse(first), degrader.blobs(first, quality.image_errors, degrader.rng(4, first)))
        tracker = SimulatedTracker(degrader, truth.frame_count, mask_only=True)
        tracker.add_mask(first, start.mask())
        for frame, mask in tracker.propagate(first):
            masks[frame] = mask
    return Masklet(truth.video_id, truth.object_id, MaskletSource.AUTO, tuple(encode(m) for m in masks))
