"""SAM 2's prompt simulation: corrective clicks, noisy boxes and the plan of a clip's prompts."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from training.prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    NEGATIVE,
    POSITIVE,
    PromptKind,
    PromptSpec,
    noisy_boxes,
    plan_prompts,
    sample_clicks,
)


def square(top: int, left: int, side: int, size: int = 32) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_a_missed_object_gets_a_positive_click_inside_what_was_missed() -> None:
    target = square(8, 8, 10)
    predicted = square(8, 8, 10) & (torch.arange(32) < 12)[None, :]  # the left part found, the right part missed
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        points, labels = sample_clicks(predicted[None], target[None], generator)
        x, y = (int(v) for v in points[0, 0])
        assert labels[0, 0] == POSITIVE and target[y, x] and not predicted[y, x]


def test_a_spill_gets_a_negative_click_where_the_prediction_leaked() -> None:
    target = square(8, 8, 10)
    predicted = square(6, 6, 14)  # the object and a ring around it
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        points, labels = sample_clicks(predicted[None], target[None], generator)
        x, y = (int(v) for v in points[0, 0])
        assert labels[0, 0] == NEGATIVE and predicted[y, x] and not target[y, x]


def test_with_no_error_the_click_confirms_the_object_or_says_it_is_absent() -> None:
    target = square(4, 4, 5)
    points, labels = sample_clicks(target[None], target[None], torch.Generator())
    x, y = (int(v) for v in points[0, 0])
    assert labels[0, 0] == POSITIVE and target[y, x]
    empty = torch.zeros(1, 32, 32, dtype=torch.bool)
    _, labels = sample_clicks(empty, empty, torch.Generator())
    assert labels[0, 0] == NEGATIVE


def test_clicks_come_one_per_object_in_the_shape_the_prompt_encoder_takes() -> None:
    targets = torch.stack([square(2, 2, 4), square(20, 20, 6), torch.zeros(32, 32, dtype=torch.bool)])
    points, labels = sample_clicks(torch.zeros_like(targets), targets, torch.Generator())
    assert points.shape == (3, 1, 2) and labels.shape == (3, 1) and labels.dtype == torch.int32
    assert labels[:, 0].tolist() == [POSITIVE, POSITIVE, NEGATIVE]


@pytest.mark.parametrize(
    ("box", "bound"),
    [
        ((40, 60, 140, 110), (10.0, 5.0)),  # 100 x 50 px: 10% of each side
        ((10, 20, 410, 330), (20.0, 20.0)),  # 400 x 310 px: capped at 20 px
    ],
)
def test_box_noise_moves_each_side_by_at_most_10_percent_of_the_box_or_20_px(box, bound) -> None:
    x0, y0, x1, y1 = box
    target = torch.zeros(1, 512, 512, dtype=torch.bool)
    target[0, y0 : y1 + 1, x0 : x1 + 1] = True
    generator = torch.Generator().manual_seed(2)
    shifts = []
    for _ in range(300):
        points, labels = noisy_boxes(target, PromptSpec(), generator)
        assert labels.tolist() == [[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]]
        (bx0, by0), (bx1, by1) = points[0].tolist()
        shift = torch.tensor([bx0 - x0, by0 - y0, bx1 - x1, by1 - y1]).abs()
        limit = torch.tensor([bound[0], bound[1], bound[0], bound[1]])
        assert (shift <= limit + 1e-4).all(), (shift, limit)
        shifts.append(shift / limit)
    spread = torch.stack(shifts)
    # Uniform within the bound: it is used nearly to its edge, and not left at zero.
    assert (spread.max(dim=0).values > 0.95).all() and (spread.mean(dim=0) > 0.35).all()


def test_a_noisy_box_stays_inside_the_image() -> None:
    target = torch.zeros(1, 64, 64, dtype=torch.bool)
    target[0, 0:30, 40:64] = True  # touching the top and right edges
    generator = torch.Generator().manual_seed(3)
    for _ in range(100):
        points, _ = noisy_boxes(target, PromptSpec(), generator)
        assert points.min() >= 0 and points.max() <= 63


def test_prompt_types_come_at_sam_2s_rates_and_the_first_frame_is_always_prompted() -> None:
    generator = torch.Generator().manual_seed(4)
    plans = [plan_prompts(8, PromptSpec(), generator) for _ in range(4000)]

    kinds = Counter(p.kind for p in plans)
    assert kinds[PromptKind.MASK] / 4000 == pytest.approx(0.5, abs=0.03)
    assert kinds[PromptKind.CLICK] / 4000 == pytest.approx(0.25, abs=0.03)
    assert kinds[PromptKind.BOX] / 4000 == pytest.approx(0.25, abs=0.03)
    assert all(p.cond_frames[0] == 0 for p in plans)
    assert Counter(len(p.cond_frames) for p in plans).keys() == {1, 2}  # one or two conditioning frames
    for p in plans:
        assert list(p.cond_frames) == sorted(set(p.cond_frames)) and all(0 <= f < 8 for f in p.cond_frames)
        assert len(p.correction_frames) <= 2 and len(set(p.correction_frames)) == len(p.correction_frames)
        assert p.corrections_per_frame == 7
        if p.kind is PromptKind.MASK:  # a prompt mask is taken as given: never corrected
            assert not set(p.correction_frames) & set(p.cond_frames)
    assert Counter(len(p.correction_frames) for p in plans).keys() == {0, 1, 2}


def test_every_clip_of_two_frames_or_more_keeps_a_frame_to_track_and_one_frame_is_never_mask_prompted() -> None:
    generator = torch.Generator().manual_seed(5)
    for _ in range(300):
        assert plan_prompts(2, PromptSpec(), generator).cond_frames == (0,)
        assert plan_prompts(1, PromptSpec(), generator).kind is not PromptKind.MASK
        three = plan_prompts(3, PromptSpec(max_cond_frames=5), generator)
        assert len(three.cond_frames) <= 2


def test_the_same_seed_plans_the_same_prompts() -> None:
    first = [plan_prompts(8, PromptSpec(), torch.Generator().manual_seed(s)) for s in range(20)]
    again = [plan_prompts(8, PromptSpec(), torch.Generator().manual_seed(s)) for s in range(20)]
    assert first == again and len(set(first)) > 5
