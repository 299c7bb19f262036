"""Judging and tidying candidate masks: stability, small components and holes, duplicates.

The steps SAM's automatic mask generator applies to grid-prompted masks, on our types:
:func:`stability_scores` on mask logits, :func:`clean_small_regions` with OpenCV's connected
components, and :func:`suppress_duplicates`, a greedy non-maximum suppression by mask IoU
(SAM uses box IoU; mask IoU keeps a small object lying inside a larger one's box).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from engine.errors import ConfigError
from engine.masks import Rle, area, bbox, decode, iou_matrix

# Masks compared at once. Under 256: pycocotools 2.0.11's area() (in iou_matrix) overflows at 256.
IOU_CHUNK = 255
# Packed bits beat RLEs once a mask has more than one RLE byte per this many pixels (measured:
# pycocotools spends about 17 ns per RLE byte and pair, numpy about 1 ns per packed byte).
RAGGED_PIXELS_PER_COUNT = 128
DENSE_BYTES = 256 << 20  # at most this much memory for packed masks


def stability_scores(logits: torch.Tensor, offset: float = 1.0, threshold: float = 0.0) -> torch.Tensor:
    """SAM's stability score of each mask in ``logits`` (``(n, h, w)``): IoU of the masks cut at +-offset.

    The mask at ``threshold + offset`` lies inside the one at ``threshold - offset``, so the IoU
    is a ratio of areas; a mask empty at both cuts scores 1.0 (nothing to be unstable about),
    as in :mod:`engine.video_session`.
    """
    flat = logits.flatten(1)
    inner = (flat > threshold + offset).sum(1, dtype=torch.int64).float()
    outer = (flat > threshold - offset).sum(1, dtype=torch.int64).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


def clean_small_regions(mask: np.ndarray, max_area: int) -> tuple[np.ndarray, bool]:
    """Fill holes and drop disconnected islands smaller than ``max_area`` pixels; ``(mask, changed)``.

    A mask made only of small islands keeps its largest one rather than vanishing; an empty
    mask stays empty (its background is no hole, however small the frame).
    """
    if max_area <= 0 or not mask.any():
        return mask, False
    filled, holes_changed = _fill_small_holes(mask, max_area)
    cleaned, islands_changed = _remove_small_islands(filled, max_area)
    return cleaned, holes_changed or islands_changed


def _fill_small_holes(mask: np.ndarray, max_area: int) -> tuple[np.ndarray, bool]:
    # Holes are the background's small components; as in SAM, a small pocket of background
    # cut off at the frame border counts as one too.
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < max_area
    small[0] = False  # label 0: the mask itself
    if not small.any():
        return mask, False
    return mask | small[labels], True


def _remove_small_islands(mask: np.ndarray, max_area: int) -> tuple[np.ndarray, bool]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = areas >= max_area
    keep[0] = False  # label 0: the background
    if keep[1:].all():
        return mask, False
    if not keep.any():
        keep[int(np.argmax(areas[1:])) + 1] = True  # all islands are small: the largest stays
    return keep[labels], True


def suppress_duplicates(masks: Sequence[Rle], order: Sequence[int], iou_threshold: float) -> list[int]:
    """Greedy NMS: walk ``order`` (best first) and keep a mask unless it overlaps a kept one by more
    than ``iou_threshold`` (mask IoU). Returns the kept indices, best first.

    Pairs whose areas and boxes alone rule out an IoU above the threshold are never compared
    (distinct objects rarely overlap); the rest are compared exactly.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ConfigError(f"an NMS IoU threshold must be within [0, 1], got {iou_threshold}")
    overlaps = _ExactOverlaps(masks)
    kept: list[int] = []
    for index in order:
        if kept:
            kept_array = np.array(kept)
            bound = overlaps.upper_bound(index, kept_array)
            if overlaps.any_above(index, kept_array[bound > iou_threshold], iou_threshold):
                continue
        kept.append(int(index))
    return kept


class _ExactOverlaps:
    """IoUs of masks of one frame, on RLEs or on packed bits, whichever is cheaper for them.

    pycocotools compares RLEs in time proportional to their runs: fast for the compact masks
    of a trained model, slow for ragged ones (a randomly initialised model's masks have
    thousands of runs, and comparing them by RLE took minutes per frame). Ragged masks are
    therefore compared as packed bits, when those fit in ``DENSE_BYTES``.
    """

    def __init__(self, masks: Sequence[Rle]) -> None:
        self._masks = masks
        self._areas = np.array([area(m) for m in masks], dtype=np.float64)
        self._boxes = np.array([_xyxy(m) for m in masks], dtype=np.float64).reshape(-1, 4)
        self._packed = _packed_if_cheaper(masks)

    def upper_bound(self, index: int, others: np.ndarray) -> np.ndarray:
        """An upper bound on IoU(index, other) for each other: the intersection is at most the
        smaller area and the boxes' intersection, and the union is at least the areas less that."""
        box, boxes = self._boxes[index], self._boxes[others]
        overlap_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
        overlap_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
        intersection = np.minimum(np.minimum(self._areas[index], self._areas[others]), overlap_w * overlap_h)
        union = self._areas[index] + self._areas[others] - intersection
        # Two empty masks are identical (IoU 1, engine.masks' convention): leave them to the exact test.
        return np.divide(intersection, union, out=np.ones_like(union), where=union > 0)

    def any_above(self, index: int, others: np.ndarray, threshold: float) -> bool:
        for start in range(0, len(others), IOU_CHUNK):
            chunk = others[start : start + IOU_CHUNK]
            if (self._ious(index, chunk) > threshold).any():
                return True
        return False

    def _ious(self, index: int, others: np.ndarray) -> np.ndarray:
        if self._packed is None:
            return iou_matrix([self._masks[index]], [self._masks[i] for i in others])[0]
        intersection = np.bitwise_count(self._packed[others] & self._packed[index]).sum(axis=1, dtype=np.int64)
        union = self._areas[index] + self._areas[others] - intersection
        return np.divide(intersection, union, out=np.ones_like(union), where=union > 0)


def _packed_if_cheaper(masks: Sequence[Rle]) -> np.ndarray | None:
    """Every mask as packed bits ``(n, pixels / 8)`` if its RLE is ragged and they fit; else None."""
    if not masks:
        return None
    pixels = masks[0].height * masks[0].width
    mean_counts = sum(len(m.counts) for m in masks) / len(masks)
    if mean_counts < pixels / RAGGED_PIXELS_PER_COUNT or len(masks) * pixels / 8 > DENSE_BYTES:
        return None
    return np.stack([np.packbits(decode(m), axis=None) for m in masks])


def _xyxy(mask: Rle) -> tuple[int, int, int, int]:
    x, y, w, h = bbox(mask)
    return x, y, x + w, y + h
