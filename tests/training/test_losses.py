"""SAM 2's training losses on hand-made predictions whose values can be worked out on paper."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import LossWeights, clip_loss
from training.model import ClipPredictions, FramePrediction, HeadOutput

LN2 = math.log(2)


def head(logits: list, iou: list, score: float) -> HeadOutput:
    """One step's outputs for one object: ``logits`` (M, S, S) candidate masks at the target's size."""
    multimask = torch.tensor([logits], dtype=torch.float32, requires_grad=True)  # (1, M, S, S)
    best = multimask[:, :1]
    return HeadOutput(
        multimask_logits=multimask,
        iou_scores=torch.tensor([iou], dtype=torch.float32, requires_grad=True),
        object_score_logits=torch.tensor([[score]], dtype=torch.float32, requires_grad=True),
        best_low_res=best,
        best_high_res=best,
        object_pointer=torch.zeros(1, 4),
    )


def frame(position: int, *steps: HeadOutput) -> FramePrediction:
    return FramePrediction(clip_position=position, steps=list(steps))


ONE_PIXEL = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # (T=1, K=1, 2, 2): the object is the top-left pixel


def test_each_loss_has_its_textbook_value_on_an_undecided_prediction() -> None:
    # Logits 0 everywhere: probability 0.5 on all four pixels; nothing above the threshold.
    _, parts = clip_loss([frame(0, head([[[0.0, 0.0], [0.0, 0.0]]], [0.3], 0.0))], ONE_PIXEL)

    # Focal: CE ln 2 on every pixel, times (1 - p_t)^2 = 1/4, times alpha 0.25 on the object
    # pixel and 0.75 on the three others, averaged over the 4 pixels.
    assert parts["focal"] == pytest.approx((0.25 + 3 * 0.75) * 0.25 * LN2 / 4)
    # Dice: 1 - (2 * 0.5 + 1) / (4 * 0.5 + 1 + 1) = 0.5.
    assert parts["dice"] == pytest.approx(0.5)
    # IoU: the thresholded mask is empty, so the real IoU is 0 and the head said 0.3.
    assert parts["iou"] == pytest.approx(0.3)
    # Occlusion: the object is there and the head gave even odds.
    assert parts["occlusion"] == pytest.approx(LN2)


def test_the_total_weighs_focal_dice_iou_and_occlusion_20_1_1_1() -> None:
    prediction = [frame(0, head([[[0.5, -1.0], [2.0, -0.3]]], [0.7], -0.4))]
    total, parts = clip_loss(prediction, ONE_PIXEL)
    assert LossWeights() == LossWeights(focal=20.0, dice=1.0, iou=1.0, occlusion=1.0)
    expected = 20 * parts["focal"] + parts["dice"] + parts["iou"] + parts["occlusion"]
    assert total.item() == pytest.approx(expected, rel=1e-6)
    only_dice, _ = clip_loss(prediction, ONE_PIXEL, LossWeights(focal=0, dice=1, iou=0, occlusion=0))
    assert only_dice.item() == pytest.approx(parts["dice"], rel=1e-6)


def test_of_several_candidate_masks_only_the_closest_is_supervised_and_the_iou_head_learns_all() -> None:
    right = [[10.0, -10.0], [-10.0, -10.0]]  # the object exactly
    spill = [[10.0, 10.0], [10.0, -10.0]]  # three pixels, IoU 1/3
    empty = [[-10.0, -10.0], [-10.0, -10.0]]  # IoU 0
    step = head([spill, right, empty], [1 / 3, 1.0, 0.6], 5.0)

    total, parts = clip_loss([frame(0, step)], ONE_PIXEL)
    total.backward()

    assert parts["focal"] < 1e-6 and parts["dice"] < 1e-3  # the right mask's loss, not the others'
    assert parts["iou"] == pytest.approx(0.6 / 3, rel=1e-5)  # mean |error| over all three candidates
    grad = step.multimask_logits.grad[0]
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0  # the other candidates are left free
    assert grad[1].abs().sum() > 0
    assert (step.iou_scores.grad[0] != 0).tolist() == [False, False, True]


def test_mask_losses_are_zero_where_the_object_is_absent_and_occlusion_teaches_the_score_head() -> None:
    absent = torch.zeros(1, 1, 2, 2)
    step = head([[[3.0, -1.0], [0.5, 2.0]]], [0.9], 1.5)

    total, parts = clip_loss([frame(0, step)], absent)
    total.backward()

    assert parts["focal"] == parts["dice"] == parts["iou"] == 0
    assert parts["occlusion"] == pytest.approx(math.log1p(math.exp(1.5)))  # -log(1 - sigmoid(1.5))
    assert step.multimask_logits.grad.abs().sum() == 0 and step.iou_scores.grad.abs().sum() == 0
    assert step.object_score_logits.grad.item() > 0  # pushed towards "absent"


def test_losses_are_summed_over_steps_and_frames_and_divided_by_objects() -> None:
    one = head([[[0.0, 0.0], [0.0, 0.0]]], [0.3], 0.0)
    _, single = clip_loss([frame(0, one)], ONE_PIXEL)
    two_frames = torch.cat([ONE_PIXEL, ONE_PIXEL])
    _, summed = clip_loss([frame(0, one, one), frame(1, one)], two_frames)
    assert summed["dice"] == pytest.approx(3 * single["dice"])

    # Two objects on one frame: object 0 as above, object 1 absent; totals are per object.
    both = torch.cat([ONE_PIXEL, torch.zeros(1, 1, 2, 2)], dim=1)
    pair = HeadOutput(
        multimask_logits=torch.zeros(2, 1, 2, 2),
        iou_scores=torch.tensor([[0.3], [0.3]]),
        object_score_logits=torch.zeros(2, 1),
        best_low_res=torch.zeros(2, 1, 2, 2),
        best_high_res=torch.zeros(2, 1, 2, 2),
        object_pointer=torch.zeros(2, 4),
    )
    _, per_object = clip_loss([frame(0, pair)], both)
    assert per_object["dice"] == pytest.approx(single["dice"] / 2)  # the absent object adds no dice
    assert per_object["occlusion"] == pytest.approx(LN2)  # both objects' occlusion, halved


def test_a_mask_prompted_frame_has_nothing_to_learn() -> None:
    total, parts = clip_loss([FramePrediction(0, [], from_mask_prompt=True)], ONE_PIXEL)
    assert total.item() == 0 and not any(parts.values())


def test_the_magnitude_penalty_bounds_features_beyond_the_limit_and_is_off_by_default() -> None:
    predictions = ClipPredictions([frame(0, head([[[0.0, 0.0], [0.0, 0.0]]], [0.3], 0.0))])
    small, large = torch.tensor(0.5, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    predictions.feature_rms = [small, large]
    plain, parts = clip_loss(predictions, ONE_PIXEL)
    assert "magnitude" not in parts

    bounded, parts = clip_loss(predictions, ONE_PIXEL, LossWeights(magnitude=0.5, magnitude_limit=1.0))
    assert parts["magnitude"] == pytest.approx(4.0)  # (3 - 1)^2; 0.5 is within the limit
    assert float((bounded - plain).detach()) == pytest.approx(2.0)
    bounded.backward()
    assert small.grad == 0 and large.grad == pytest.approx(2.0)  # 0.5 * 2 * (3 - 1)
