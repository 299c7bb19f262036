"""J&F, the video object segmentation measures of DAVIS and SA-V.

J (region similarity) is the IoU of a predicted mask with the ground truth. F (contour
accuracy) compares their boundaries: precision and recall of boundary pixels, where a pixel
counts as matched if the other boundary passes within ``bound_th`` (0.008) of the image
diagonal, and F is their harmonic mean. J&F is the mean of the two.

The numbers match Meta's SA-V evaluator (``sav_dataset/utils/sav_benchmark.py``):

* boundaries are the one-pixel maps of the DAVIS toolkit (a pixel is on the boundary when it
  differs from its east, south or south-east neighbour), and the tolerance disk has radius
  ``ceil(bound_th * diagonal)``;
* a frame where prediction and ground truth are both empty scores J = F = 1; one empty and
  the other not scores 0;
* an object is scored only from the first frame where it shows up in the ground truth or the
  prediction, and only objects present in the ground truth of some scored frame get a score;
* per object, J and F are means over its scored frames; the overall J and F are means over
  all objects of all videos (not over videos), and J&F is their mean;
* SA-V val/test drop each object's first and last annotated frame (``skip_first_last``): the
  first is the prompt, the last is often a partial frame.

The boundary work is done on a crop around the two masks, which gives the same counts as the
whole frame (outside the crop there is no boundary) at a fraction of the cost.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import cv2
import numpy as np

from engine.errors import BadMaskError

BOUND_TH = 0.008
"""Boundary tolerance as a fraction of the image diagonal (DAVIS and SA-V use 0.008)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FrameScore:
    """J and F of one predicted mask against its ground truth in one frame."""

    j: float
    f: float


@dataclass(frozen=True, slots=True)
class ObjectScore:
    """One object's scores over the frames of one video, each in [0, 1]."""

    video_id: str
    object_id: int
    j: float
    f: float
    jf: float
    n_frames: int  # frames scored for this object


@dataclass(frozen=True, slots=True)
class VideoScore:
    """Means over the objects of one video (for reports; the overall score pools objects)."""

    video_id: str
    j: float
    f: float
    jf: float
    n_objects: int


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Scores of a whole evaluation: per object, per video and overall (means over all objects)."""

    objects: tuple[ObjectScore, ...]
    videos: tuple[VideoScore, ...]
    j: float
    f: float
    jf: float


def boundary_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Tolerance, in pixels, for boundary matching in a frame of this size."""
    # sqrt of the exact integer sum, as numpy's norm of the shape computes it, so the ceiling
    # lands on the same integer as the reference.
    return math.ceil(bound_th * math.sqrt(height * height + width * width))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask, offset half a pixel towards the origin (DAVIS).

    A pixel is on the boundary when it differs from its east, south or south-east neighbour;
    beyond the last row and column the image is taken to repeat its edge, so the frame border
    itself is not a boundary and a full-frame mask has none.
    """
    mask = _as_bool(mask)
    padded = np.pad(mask, ((0, 1), (0, 1)), mode="edge")
    return (mask != padded[:-1, 1:]) | (mask != padded[1:, :-1]) | (mask != padded[1:, 1:])


def score_frame(pred: np.ndarray, gt: np.ndarray, *, bound_th: float = BOUND_TH) -> FrameScore:
    """J and F of one binary prediction against its binary ground truth (nonzero = foreground)."""
    pred, gt = _as_bool(pred), _as_bool(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise BadMaskError(f"prediction {pred.shape} and ground truth {gt.shape} must be 2-D masks of one size")
    crop = _crop_around(pred | gt)
    if crop is None:
        return FrameScore(1.0, 1.0)
    radius = boundary_radius(gt.shape[0], gt.shape[1], bound_th)
    return FrameScore(_iou(pred[crop], gt[crop]), _boundary_f(pred[crop], gt[crop], radius))


def score_object(
    video_id: str,
    object_id: int,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    skip_first_last: bool = True,
    bound_th: float = BOUND_TH,
) -> ObjectScore | None:
    """Score one object from its ``(prediction, ground truth)`` binary masks, in frame order.

    ``frames`` holds the object's annotated frames (SA-V: the PNGs of its folder); it is read
    once, lazily unless ``skip_first_last`` needs its length. Frames before the object first
    shows up (in truth or prediction) are not scored. Returns None when the ground truth never
    shows the object in a scored frame: there is nothing to score it against (the reference
    evaluator leaves such objects out).
    """
    if skip_first_last:
        frames = frames_to_score(list(frames), skip_first_last)
    js: list[float] = []
    fs: list[float] = []
    seen = in_gt = False
    for pred, gt in frames:
        pred_any, gt_any = bool(np.any(pred)), bool(np.any(gt))
        in_gt = in_gt or gt_any
        seen = seen or pred_any or gt_any
        if seen:
            score = score_frame(pred, gt, bound_th=bound_th)
            js.append(score.j)
            fs.append(score.f)
    return _object_score(video_id, object_id, js, fs) if in_gt else None


def score_label_video(
    video_id: str,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    skip_first_last: bool = True,
    bound_th: float = BOUND_TH,
) -> list[ObjectScore]:
    """Score every object of a video from ``(prediction, ground truth)`` label maps (DAVIS).

    Each map holds object ids per pixel, 0 = background, so one frame carries all objects.
    ``skip_first_last`` drops the video's first and last frame. Objects are returned in id
    order; ids that only the prediction uses are not scored.
    """
    if skip_first_last:
        frames = frames_to_score(list(frames), skip_first_last)
    js: dict[int, list[float]] = defaultdict(list)
    fs: dict[int, list[float]] = defaultdict(list)
    seen: set[int] = set()
    in_gt: set[int] = set()
    for pred, gt in frames:
        gt_ids = _label_ids(gt)
        in_gt |= gt_ids
        seen |= gt_ids | _label_ids(pred)
        for object_id in seen:
            score = score_frame(pred == object_id, gt == object_id, bound_th=bound_th)
            js[object_id].append(score.j)
            fs[object_id].append(score.f)
    return [_object_score(video_id, i, js[i], fs[i]) for i in sorted(in_gt)]


def frames_to_score(frames: Sequence[T], skip_first_last: bool) -> Sequence[T]:
    """The frames that count: all, or all but the first and last (SA-V val/test, DAVIS semi-supervised).

    Objects with fewer than three frames then have none left.
    """
    return frames[1:-1] if skip_first_last else frames


def summarize(objects: Iterable[ObjectScore]) -> EvaluationResult:
    """Aggregate object scores: per-video means, and overall means over all objects.

    Pooling objects (not averaging per-video means) is what the SA-V evaluator reports. With
    no objects the overall scores are NaN.
    """
    rows = tuple(objects)
    by_video: dict[str, list[ObjectScore]] = defaultdict(list)
    for row in rows:
        by_video[row.video_id].append(row)
    videos = tuple(
        VideoScore(video_id, *_means(video_rows), n_objects=len(video_rows))
        for video_id, video_rows in by_video.items()
    )
    return EvaluationResult(rows, videos, *_means(rows))


def _means(rows: Sequence[ObjectScore]) -> tuple[float, float, float]:
    if not rows:
        return math.nan, math.nan, math.nan
    j = sum(r.j for r in rows) / len(rows)
    f = sum(r.f for r in rows) / len(rows)
    return j, f, (j + f) / 2


def _object_score(video_id: str, object_id: int, js: Sequence[float], fs: Sequence[float]) -> ObjectScore:
    j = sum(js) / len(js)
    f = sum(fs) / len(fs)
    return ObjectScore(video_id, int(object_id), j, f, (j + f) / 2, len(js))


def _as_bool(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    return mask if mask.dtype == np.bool_ else mask != 0


def _label_ids(labels: np.ndarray) -> set[int]:
    """Object ids present in a label map, background (0) excluded."""
    if labels.dtype == np.uint8:
        # A histogram is one pass; np.unique would sort the whole frame.
        ids = np.flatnonzero(np.bincount(labels.ravel(), minlength=1))
    elif labels.dtype == np.bool_:
        ids = np.array([1]) if labels.any() else np.array([], dtype=int)
    else:
        ids = np.unique(labels)
    return {int(i) for i in ids if i != 0}


def _crop_around(union: np.ndarray) -> tuple[slice, slice] | None:
    """Box around the foreground, one pixel larger each side (clipped), or None if empty.

    The extra pixel holds the background boundary pixels above and left of the masks; the
    tolerance disk needs no margin because matches are only looked up at boundary pixels,
    which all lie inside.
    """
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return None
    top, bottom = max(int(rows[0]) - 1, 0), int(rows[-1]) + 2
    cols = np.flatnonzero(union[top:bottom].any(axis=0))
    left, right = max(int(cols[0]) - 1, 0), int(cols[-1]) + 2
    return slice(top, bottom), slice(left, right)


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def _boundary_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    """F measure of the boundaries of two masks (cropped alike) with the given tolerance."""
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 or n_gt == 0:
        # Both without boundary: perfect. One without: precision or recall is 0, so F is 0.
        return 1.0 if n_pred == n_gt else 0.0
    precision = _matched(pred_b, gt_b, radius) / n_pred
    recall = _matched(gt_b, pred_b, radius) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _matched(boundary: np.ndarray, other: np.ndarray, radius: int) -> int:
    """How many pixels of ``boundary`` lie within ``radius`` of a pixel of ``other``."""
    near_other = cv2.dilate(other.view(np.uint8), _disk(radius))
    return int(np.count_nonzero(boundary & near_other.view(np.bool_)))


@lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    """Structuring element of the offsets (dy, dx) with dy² + dx² <= radius²."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)
