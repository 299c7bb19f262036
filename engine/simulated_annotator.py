"""Simulated annotators and verifiers: oracles holding the ground truth, for benchmarks, tests and the demo.

The annotator follows the protocol the SAM 2 paper uses to simulate people (after SAM's and
RITM's): the first click at the centre of the object, the point farthest from its boundary;
every further click at the centre of the largest error region, positive where the mask misses
the object and negative where it spills over. It clicks until the frame reaches its IoU
target (0.9, SA-V quality) or its click budget; a frame it edits it then finishes with the
brush and eraser, largest error first, painting each error region exactly (pixel-precise
tools): what clicks cannot fix. A frame annotated from scratch it polishes to its polish
target (0.95), as Phase 1 annotators did; a tracked frame it refines only up to the IoU
target, as the paper's Phase 3 annotators refined SAM 2's masks. A mask that is mostly wrong
(IoU below 0.5) it clears and outlines anew when that costs less than correcting it piece by
piece (an outline by hand is 79.2 s, engine/time_model.py). On examination a frame passes at
the IoU target.

Skill parameters make it imperfect: click jitter (pixels of Gaussian noise on each click),
a chance of overlooking a failing frame when examining, and the target itself. Everything
random comes from its seed, so a run is repeatable.

The verifier judges a masklet by J&F against the ground truth (:mod:`engine.jf`), with a
threshold, a floor below which the masklet is rejected rather than refined, and an error
rate (the chance of the wrong one of satisfactory / unsatisfactory).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from engine.annotation import Click, Judgement, Stroke
from engine.errors import ConfigError, MissingGroundTruthError
from engine.masklets import Masklet
from engine.masks import decode
from engine.metrics import masklet_jf
from engine.queues import Verdict
from engine.time_model import TimeModel

DEFAULT_IOU_TARGET = 0.9  # SA-V quality, per frame
DEFAULT_POLISH_TARGET = 0.95
DEFAULT_CLICK_BUDGET = 8


@dataclass(frozen=True)
class Skill:
    """How an annotator works: when a frame is good enough, how many clicks, how careful."""

    iou_target: float = DEFAULT_IOU_TARGET
    polish_target: float = DEFAULT_POLISH_TARGET  # a frame annotated from scratch is brushed up to this IoU
    click_budget: int = DEFAULT_CLICK_BUDGET  # clicks per frame before turning to the brush
    restart_below: float = 0.5  # a mask worse than this is cleared and outlined anew, when that is cheaper than fixing it
    click_jitter_px: float = 0.0  # standard deviation of the error of a click's position
    overlook_chance: float = 0.0  # chance of accepting a failing frame when examining it

    def __post_init__(self) -> None:
        if not 0 < self.iou_target <= self.polish_target <= 1:
            raise ConfigError(
                f"iou_target={self.iou_target}, polish_target={self.polish_target}: need 0 < iou_target <= polish_target <= 1"
            )
        if self.click_budget < 0:
            raise ConfigError(f"click_budget={self.click_budget} must be >= 0")
        if self.click_jitter_px < 0 or not 0 <= self.overlook_chance <= 1 or not 0 <= self.restart_below <= 1:
            raise ConfigError("click_jitter_px must be >= 0, overlook_chance and restart_below in [0, 1]")


@dataclass(frozen=True)
class ErrorRegion:
    """One connected region where a mask disagrees with the truth."""

    region: np.ndarray  # (height, width) bool
    missed: bool  # True: part of the object the mask misses; False: spurious pixels

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.region))


class GroundTruth:
    """A masklet's truth decoded frame by frame on first use."""

    def __init__(self, truth: Masklet) -> None:
        self.masklet = truth
        self._frames: dict[int, np.ndarray] = {}

    @property
    def frame_count(self) -> int:
        return self.masklet.frame_count

    def __getitem__(self, frame: int) -> np.ndarray:
        if frame not in self._frames:
            self._frames[frame] = np.ascontiguousarray(decode(self.masklet.masks[frame]))
        return self._frames[frame]

    @cached_property
    def first_visible(self) -> int | None:
        return self.masklet.first_appeared_frame


class SimulatedAnnotator:
    """An :class:`engine.annotation.Annotator` that knows the truth of the object it annotates."""

    def __init__(
        self, truth: Masklet | None, *, name: str, skill: Skill = Skill(), seed: int = 0, time_model: TimeModel = TimeModel()
    ) -> None:
        if truth is None:
            raise MissingGroundTruthError(f"simulated annotator {name} needs the object's ground truth, and there is none")
        self.truth = GroundTruth(truth)
        self._name = name
        self.skill = skill
        self.time_model = time_model  # what the annotator expects its strokes and outlines to cost
        self._rng = random.Random(seed)
        # The strokes starts_over found would fix a mask, for the strokes() call that follows it.
        self._planned: tuple[int, bool, np.ndarray, list[Stroke]] | None = None

    @property
    def name(self) -> str:
        return self._name

    def first_appearance(self) -> int | None:
        return self.truth.first_visible

    def next_click(self, frame: int, mask: np.ndarray, clicks: Sequence[Click]) -> Click | None:
        truth = self.truth[frame]
        if frame_iou(mask, truth) >= self.skill.iou_target or len(clicks) >= self.skill.click_budget:
            return None
        return corrective_click(frame, mask, truth, jitter_px=self.skill.click_jitter_px, rng=self._rng)

    def starts_over(self, frame: int, mask: np.ndarray, *, polish: bool = True) -> bool:
        """Clear a mostly wrong mask when outlining the object anew costs less than fixing it.

        A mask below ``restart_below`` IoU is a candidate; the annotator weighs the strokes
        that would fix it (up to the target ``polish`` sets) against a clear and an outline by
        hand, both priced by the annotator's time model, and takes the cheaper. A spill and a
        miss are fixed in two strokes; a speckle of a hundred regions is cleared.
        """
        truth = self.truth[frame]
        if not mask.any() or frame_iou(mask, truth) >= self.skill.restart_below:
            return False
        anew = self.time_model.click_s + self.time_model.outline_s  # the clear button, then the outline
        fixing = 0.0
        planned = []
        for stroke in self._fixing_strokes(frame, mask, polish=polish):
            planned.append(stroke)
            fixing += self.time_model.stroke(decode(stroke.region))
            if fixing > anew:
                return True
        self._planned = (frame, polish, mask.copy(), planned)  # kept: the mask is fixed with exactly these
        return False

    def strokes(self, frame: int, mask: np.ndarray, *, polish: bool = True) -> list[Stroke]:
        planned, self._planned = self._planned, None
        if planned is not None and planned[:2] == (frame, polish) and np.array_equal(planned[2], mask):
            return list(planned[3])  # what starts_over just weighed: painting them again would be wasted work
        return list(self._fixing_strokes(frame, mask, polish=polish))

    def _fixing_strokes(self, frame: int, mask: np.ndarray, *, polish: bool) -> Iterator[Stroke]:
        """Strokes painting the largest error first until the frame reaches its target."""
        truth = self.truth[frame]
        target = self.skill.polish_target if polish else self.skill.iou_target
        while frame_iou(mask, truth) < target:
            largest = largest_error(mask, truth)
            if largest is None:
                break
            stroke = Stroke.painting(frame, largest.region, eraser=not largest.missed)
            mask = stroke.apply(mask)
            yield stroke

    def accepts(self, frame: int, mask: np.ndarray) -> bool:
        if frame_iou(mask, self.truth[frame]) >= self.skill.iou_target:
            return True
        return self._rng.random() < self.skill.overlook_chance


# --- the click policy ---------------------------------------------------------------------------


def frame_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two masks of one frame; 1.0 when both are empty (not visible, rightly)."""
    union = np.count_nonzero(mask | truth)
    return 1.0 if union == 0 else np.count_nonzero(mask & truth) / union


def centre(region: np.ndarray) -> tuple[int, int]:
    """The pixel ``(x, y)`` of ``region`` farthest from its boundary (the frame's edge counts as one).

    Where many pixels are equally far (the spine of a rectangle), the one nearest their middle
    is taken, as a person would click; the choice is deterministic.
    """
    padded = np.pad(region.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    farthest = np.argwhere(distance >= distance.max() - 1e-6)
    middle = farthest.mean(axis=0)
    y, x = farthest[int(np.argmin(((farthest - middle) ** 2).sum(axis=1)))]
    return int(x), int(y)


def error_regions(mask: np.ndarray, truth: np.ndarray) -> list[ErrorRegion]:
    """Connected regions of missed and of spurious pixels, largest first."""
    regions: list[ErrorRegion] = []
    for wrong, missed in ((truth & ~mask, True), (mask & ~truth, False)):
        count, labels = cv2.connectedComponents(wrong.astype(np.uint8), connectivity=8)
        regions.extend(ErrorRegion(labels == label, missed) for label in range(1, count))
    regions.sort(key=lambda r: r.area, reverse=True)  # stable: missed before spurious on ties
    return regions


def largest_error(mask: np.ndarray, truth: np.ndarray) -> ErrorRegion | None:
    regions = error_regions(mask, truth)
    return regions[0] if regions else None


def corrective_click(
    frame: int, mask: np.ndarray, truth: np.ndarray, *, jitter_px: float = 0.0, rng: random.Random | None = None
) -> Click | None:
    """The paper's next click: the centre of the largest error region, positive on a missed one.

    On an empty mask the largest error is the whole object, so the first click lands on the
    object's centre. ``jitter_px`` moves the click by Gaussian noise, as long as it stays
    inside the region (a person aims inside what they mean). None when there is no error.
    """
    largest = largest_error(mask, truth)
    if largest is None:
        return None
    x, y = centre(largest.region)
    if jitter_px > 0 and rng is not None:
        jx, jy = round(x + rng.gauss(0, jitter_px)), round(y + rng.gauss(0, jitter_px))
        height, width = largest.region.shape
        if 0 <= jx < width and 0 <= jy < height and largest.region[jy, jx]:
            x, y = jx, jy
    return Click(frame, float(x), float(y), positive=largest.missed)


# --- the verifier ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierSkill:
    """How a simulated verifier judges: J&F thresholds and how often they get it wrong."""

    jf_threshold: float = 0.85  # at or above: satisfactory
    reject_below: float = 0.3  # below: rejected (the masklet does not follow the object)
    error_rate: float = 0.0  # chance of calling satisfactory unsatisfactory, or the reverse
    frame_iou_target: float = DEFAULT_IOU_TARGET  # frames below it are listed as the failing ones

    def __post_init__(self) -> None:
        if not 0 <= self.reject_below <= self.jf_threshold <= 1 or not 0 <= self.error_rate <= 1:
            raise ConfigError("verifier skill needs 0 <= reject_below <= jf_threshold <= 1 and error_rate in [0, 1]")


class SimulatedVerifier:
    """An :class:`engine.annotation.Verifier` judging against the ground truth of the masklet's object."""

    def __init__(self, truth: Masklet | None, *, name: str, skill: VerifierSkill = VerifierSkill(), seed: int = 0) -> None:
        if truth is None:
            raise MissingGroundTruthError(f"simulated verifier {name} needs the object's ground truth, and there is none")
        self.truth = GroundTruth(truth)
        self._name = name
        self.skill = skill
        self._rng = random.Random(seed)

    @property
    def name(self) -> str:
        return self._name

    def judge(self, masklet: Masklet) -> Judgement:
        if masklet.frame_count != self.truth.frame_count:
            raise MissingGroundTruthError(
                f"masklet of {masklet.video_id}/{masklet.object_id} has {masklet.frame_count} frames, "
                f"its ground truth {self.truth.frame_count}: they are not of the same video"
            )
        predicted = [decode(m) for m in masklet.masks]
        jf = masklet_jf(masklet, self.truth.masklet)
        failing = tuple(
            i for i, p in enumerate(predicted) if frame_iou(p, self.truth[i]) < self.skill.frame_iou_target
        )
        if jf < self.skill.reject_below:
            return Judgement(Verdict.REJECTED, f"does not follow the object (J&F {jf:.2f})", failing, jf)
        satisfactory = jf >= self.skill.jf_threshold
        if self._rng.random() < self.skill.error_rate:
            satisfactory = not satisfactory
        if satisfactory:
            return Judgement(Verdict.SATISFACTORY, None, (), jf)
        reason = f"J&F {jf:.2f} below {self.skill.jf_threshold:.2f}; {len(failing)} frames below IoU {self.skill.frame_iou_target:g}"
        return Judgement(Verdict.UNSATISFACTORY, reason, failing, jf)
