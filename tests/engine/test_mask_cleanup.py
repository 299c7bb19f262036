"""Stability scores, small components and holes, and NMS by mask IoU, on hand-made masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.mask_cleanup import clean_small_regions, stability_scores, suppress_duplicates
from engine.masks import encode, iou


def square(x0: int, y0: int, side: int, shape: tuple[int, int] = (64, 96)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def test_stability_is_the_iou_of_the_mask_at_plus_and_minus_offset() -> None:
    logits = torch.full((3, 10, 10), -5.0)
    logits[0, :4, :5] = 5.0  # 20 pixels certain
    logits[0, 4:6, :5] = 0.5  # 10 pixels in the mask only at the lower cut
    logits[1, :4, :4] = 3.0  # all certain
    scores = stability_scores(logits, offset=1.0)
    assert scores.tolist() == pytest.approx([20 / 30, 1.0, 1.0])  # an empty mask is stable
    assert stability_scores(logits, offset=0.25)[0].item() == pytest.approx(1.0)


def test_small_islands_go_and_small_holes_are_filled_but_large_ones_stay() -> None:
    mask = square(10, 10, 40)
    mask[20:24, 20:24] = False  # a 16-pixel hole
    mask[30:45, 30:45] = False  # a 225-pixel hole: larger than the limit, a real hole
    mask[2:7, 70:75] = True  # a 25-pixel island
    cleaned, changed = clean_small_regions(mask, 200)
    assert changed
    assert cleaned[20:24, 20:24].all(), "the small hole is filled"
    assert not cleaned[30:45, 30:45].any(), "the large hole stays"
    assert not cleaned[2:7, 70:75].any(), "the small island is removed"
    count, _, stats, _ = cv2.connectedComponentsWithStats(cleaned.astype(np.uint8), connectivity=8)
    assert count == 2 and stats[1, cv2.CC_STAT_AREA] >= 200


def test_a_clean_mask_is_left_alone() -> None:
    mask = square(10, 10, 30)
    cleaned, changed = clean_small_regions(mask, 200)
    assert not changed and cleaned is mask
    empty = np.zeros((8, 8), bool)
    assert clean_small_regions(empty, 200) == (empty, False)
    assert clean_small_regions(mask, 0)[1] is False


def test_a_mask_of_only_small_islands_keeps_its_largest() -> None:
    mask = square(5, 5, 6) | square(40, 40, 10)  # 36 and 100 pixels
    cleaned, changed = clean_small_regions(mask, 200)
    assert changed and cleaned.sum() == 100 and cleaned[45, 45]


def test_nms_keeps_the_best_of_each_duplicate_group() -> None:
    big = square(10, 10, 30)
    big_shifted = square(11, 11, 30)  # IoU about 0.94 with big
    apart = square(60, 20, 20)
    inside = square(15, 15, 10)  # IoU 0.11 with big: a part, not a duplicate
    masks = [encode(m) for m in (big, big_shifted, apart, inside)]
    assert iou(masks[0], masks[1]) > 0.7
    assert suppress_duplicates(masks, [0, 1, 2, 3], 0.7) == [0, 2, 3]
    assert suppress_duplicates(masks, [1, 0, 3, 2], 0.7) == [1, 3, 2], "order decides which duplicate wins"
    assert suppress_duplicates(masks, [0, 1, 2, 3], 0.99) == [0, 1, 2, 3]
    assert suppress_duplicates([], [], 0.7) == []
    with pytest.raises(ConfigError, match="NMS IoU threshold"):
        suppress_duplicates(masks, [0], 1.5)


def test_nms_on_ragged_masks_matches_brute_force() -> None:
    """More than 255 masks with thousands of runs each: the packed-bits path, past pycocotools' limit."""
    rng = np.random.default_rng(7)
    base = [cv2.resize(rng.normal(size=(8, 8)).astype(np.float32), (48, 32)) > 0 for _ in range(30)]
    masks = []
    for i in range(300):
        noisy = base[i % 30] ^ (rng.random((32, 48)) < 0.08)  # near-duplicates of 30 shapes, ragged
        masks.append(encode(noisy))
    order = list(rng.permutation(300))
    kept = suppress_duplicates(masks, order, 0.7)
    expected: list[int] = []
    for index in order:
        if all(iou(masks[index], masks[k]) <= 0.7 for k in expected):
            expected.append(int(index))
    assert kept == expected
    assert 30 <= len(kept) < 300
