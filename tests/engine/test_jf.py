"""J&F: the numbers a VOS paper would report for the same masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import BadMaskError
from engine.jf import (
    FrameScore,
    ObjectScore,
    boundary_map,
    boundary_radius,
    frames_to_score,
    score_frame,
    score_label_video,
    score_object,
    summarize,
)


def square(top: int, left: int, size: int = 5, shape: tuple[int, int] = (20, 20)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + size, left : left + size] = True
    return mask


EMPTY = np.zeros((20, 20), bool)


def slow_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary by the definition, pixel by pixel: differs from E, S or SE (edge repeated)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            east, south = min(x + 1, w - 1), min(y + 1, h - 1)
            out[y, x] = any(mask[y, x] != n for n in (mask[y, east], mask[south, x], mask[south, east]))
    return out


def slow_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """Boundary F by brute-force distances between all boundary pixel pairs."""
    radius = math.ceil(bound_th * math.hypot(*gt.shape))
    pb, gb = np.argwhere(slow_boundary(pred)), np.argwhere(slow_boundary(gt))
    if len(pb) == 0 or len(gb) == 0:
        return 1.0 if len(pb) == len(gb) else 0.0
    d2 = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1)
    precision = (d2.min(axis=1) <= radius**2).mean()
    recall = (d2.min(axis=0) <= radius**2).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_radius_is_the_ceiling_of_a_fraction_of_the_diagonal() -> None:
    assert boundary_radius(720, 1280) == 12  # 0.008 * 1468.6 = 11.75
    assert boundary_radius(480, 854) == 8  # DAVIS 480p: 7.84
    assert boundary_radius(20, 20) == 1


def test_boundary_map_is_the_ring_offset_towards_the_origin() -> None:
    ring = boundary_map(square(5, 5))
    # The 5x5 square at rows/cols 5..9 has its boundary on the ring of the 6x6 box 4..9.
    expected = np.zeros((20, 20), bool)
    expected[4:10, 4:10] = True
    expected[5:9, 5:9] = False
    np.testing.assert_array_equal(ring, expected)
    assert not boundary_map(np.ones((6, 7), bool)).any()
    edge = np.zeros((6, 7), bool)
    edge[3:, 2:] = True  # touches the bottom and right borders
    np.testing.assert_array_equal(boundary_map(edge), slow_boundary(edge))


def test_identical_masks_score_one() -> None:
    assert score_frame(square(3, 4), square(3, 4)) == FrameScore(1.0, 1.0)


def test_disjoint_masks_score_zero() -> None:
    assert score_frame(square(0, 0), square(12, 12)) == FrameScore(0.0, 0.0)


def test_both_empty_scores_one_and_one_empty_scores_zero() -> None:
    assert score_frame(EMPTY, EMPTY) == FrameScore(1.0, 1.0)
    assert score_frame(EMPTY, square(3, 3)) == FrameScore(0.0, 0.0)
    assert score_frame(square(3, 3), EMPTY) == FrameScore(0.0, 0.0)


def test_one_pixel_shift_is_within_tolerance() -> None:
    score = score_frame(square(5, 6), square(5, 5))
    assert score.j == pytest.approx(20 / 30)
    assert score.f == 1.0


def test_two_pixel_shift_hand_computed() -> None:
    # Radius 1 (4-neighbours) on a 20x20 frame. The boundary rings are the 6x6 boxes at cols
    # 4..9 (truth) and 6..11 (prediction), rows 4..9. Of the prediction's 20 ring pixels, 5 in
    # the top row and 5 in the bottom row are on or next to the truth's ring, and so are the
    # ends of its left side, (5, 6) and (8, 6), next to (4, 6) and (9, 6): precision 12/20.
    # Recall is 12/20 by symmetry, so F = 0.6. Overlap is 5x3 of a 5x7 union: J = 3/7.
    score = score_frame(square(5, 7), square(5, 5))
    assert score.j == pytest.approx(3 / 7)
    assert score.f == pytest.approx(0.6)


def test_f_matches_brute_force_on_random_shapes() -> None:
    rng = np.random.default_rng(0)
    for trial in range(12):
        shape = (int(rng.integers(20, 70)), int(rng.integers(20, 90)))
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        blobs = []
        for _ in range(2):
            cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
            r = rng.uniform(3, 25)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            if trial % 3 == 0:
                blob ^= rng.random(shape) < 0.05  # ragged edges and specks
            blobs.append(blob)
        pred, gt = blobs
        bound_th = 0.008 if trial % 2 else 0.05  # radius 1 to 6
        score = score_frame(pred, gt, bound_th=bound_th)
        assert score.f == pytest.approx(slow_f(pred, gt, bound_th), abs=1e-12)
        union = (pred | gt).sum()
        assert score.j == pytest.approx((pred & gt).sum() / union if union else 1.0)


def test_masks_of_different_sizes_are_refused() -> None:
    with pytest.raises(BadMaskError):
        score_frame(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_non_bool_masks_use_nonzero_as_foreground() -> None:
    assert score_frame(square(5, 6).astype(np.uint8) * 255, square(5, 5)) == score_frame(square(5, 6), square(5, 5))


def test_skip_first_last_drops_the_prompt_and_final_frames() -> None:
    # First and last frames are wrong, the middle two perfect.
    frames = [
        (EMPTY, square(2, 2)),
        (square(3, 3), square(3, 3)),
        (square(4, 4), square(4, 4)),
        (EMPTY, square(5, 5)),
    ]
    skipped = score_object("v", 1, frames)
    assert skipped == ObjectScore("v", 1, 1.0, 1.0, 1.0, n_frames=2)
    everything = score_object("v", 1, frames, skip_first_last=False)
    assert everything == ObjectScore("v", 1, 0.5, 0.5, 0.5, n_frames=4)
    assert frames_to_score([1, 2], True) == [] and frames_to_score([1, 2, 3], True) == [2]


def test_object_is_scored_from_its_first_appearance() -> None:
    # Frames before the object appears (in truth or prediction) do not count; once it has
    # appeared, frames where both are empty count as perfect.
    frames = [(EMPTY, EMPTY), (EMPTY, EMPTY), (EMPTY, square(2, 2)), (EMPTY, EMPTY)]
    score = score_object("v", 1, frames, skip_first_last=False)
    assert score is not None and score.n_frames == 2 and score.j == 0.5
    early_guess = [(square(2, 2), EMPTY), (EMPTY, square(2, 2))]
    score = score_object("v", 1, early_guess, skip_first_last=False)
    assert score is not None and score.n_frames == 2 and score.j == 0.0


def test_object_absent_from_ground_truth_is_not_scored() -> None:
    assert score_object("v", 1, [(square(2, 2), EMPTY)] * 3, skip_first_last=False) is None
    assert score_object("v", 1, [(EMPTY, square(2, 2))] * 2) is None  # nothing left after skipping


def test_label_video_scores_each_object() -> None:
    def labels(*placed: tuple[int, np.ndarray]) -> np.ndarray:
        out = np.zeros((20, 20), np.uint8)
        for object_id, mask in placed:
            out[mask] = object_id
        return out

    frames = [
        (labels((1, square(0, 0))), labels((1, square(0, 0)))),
        (labels((1, square(0, 0)), (9, square(12, 12))), labels((1, square(0, 0)), (2, square(12, 12)))),
        (labels((1, square(0, 0))), labels((1, square(0, 0)), (2, square(12, 12)))),
    ]
    rows = score_label_video("v", frames, skip_first_last=False)
    # Object 2 first appears in frame 2; object 9 exists only in the prediction.
    assert [(r.object_id, r.n_frames, r.j) for r in rows] == [(1, 3, 1.0), (2, 2, 0.0)]
    assert [r.object_id for r in score_label_video("v", frames)] == [1, 2]


def test_summary_pools_objects_across_videos() -> None:
    rows = [
        ObjectScore("a", 0, 1.0, 0.8, 0.9, 5),
        ObjectScore("a", 1, 0.6, 0.6, 0.6, 5),
        ObjectScore("b", 0, 0.2, 0.4, 0.3, 5),
    ]
    result = summarize(rows)
    # Means over the three objects, as SA-V reports; the mean of video means would be 0.525.
    assert result.j == pytest.approx(0.6) and result.f == pytest.approx(0.6)
    assert result.jf == pytest.approx(0.6)
    assert [(v.video_id, v.n_objects) for v in result.videos] == [("a", 2), ("b", 1)]
    assert result.videos[0].jf == pytest.approx(0.75) and result.videos[1].j == pytest.approx(0.2)
    assert math.isnan(summarize([]).jf)
