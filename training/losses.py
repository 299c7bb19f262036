"""SAM 2's training losses: focal, dice, IoU regression and occlusion, weighted 20 : 1 : 1 : 1.

As in SAM 2 (``MultiStepMultiMasksAndIous``): every step on every frame is supervised (the
first prediction and each prediction after a corrective click); where the decoder proposed
several masks, only the one with the lowest focal + dice loss is supervised on its mask (the
others are free to cover other readings of an ambiguous click) while the IoU head learns the
real IoU of all of them; mask and IoU losses count only where the object is on the frame; the
occlusion loss teaches the object-score head whether it is. Totals are divided by the number
of objects, as SAM 2 does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.model import FramePrediction


@dataclass(frozen=True)
class LossWeights:
    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    occlusion: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # Not one of SAM 2's losses: a penalty on image features and memories whose root-mean-square
    # exceeds ``magnitude_limit`` (squared excess, summed). Training from scratch without it, the
    # features grow a hundredfold and drown each object's mask in its memory (docs/training.md).
    magnitude: float = 0.0
    magnitude_limit: float = 1.0


def clip_loss(
    predictions: list[FramePrediction], masks: torch.Tensor, weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of a clip's predictions against ``masks`` (T, K, S, S); and its parts, for logs."""
    objects = masks.shape[1]
    parts = {"focal": 0.0, "dice": 0.0, "iou": 0.0, "occlusion": 0.0}
    total = masks.new_zeros(())
    for prediction in predictions:
        target = masks[prediction.clip_position]  # (K, S, S)
        present = (target.flatten(1).sum(dim=1) > 0).float()  # (K,)
        for step in prediction.steps:
            logits = F.interpolate(step.multimask_logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
            focal = _focal(logits, target[:, None], weights.focal_alpha, weights.focal_gamma)  # (K, M)
            dice = _dice(logits, target[:, None])  # (K, M)
            best = (weights.focal * focal + weights.dice * dice).argmin(dim=1)
            rows = torch.arange(objects, device=masks.device)
            iou = (step.iou_scores - _actual_iou(logits, target[:, None])).abs().mean(dim=1)  # (K,)
            occlusion = F.binary_cross_entropy_with_logits(step.object_score_logits[:, 0], present, reduction="none")
            terms = {
                "focal": (focal[rows, best] * present).sum(),
                "dice": (dice[rows, best] * present).sum(),
                "iou": (iou * present).sum(),
                "occlusion": occlusion.sum(),
            }
            for name, value in terms.items():
                total = total + getattr(weights, name) * value / objects
                parts[name] += float(value.detach()) / objects
    if weights.magnitude and getattr(predictions, "feature_rms", None):
        excess = sum(torch.relu(rms - weights.magnitude_limit) ** 2 for rms in predictions.feature_rms)
        total = total + weights.magnitude * excess
        parts["magnitude"] = float(excess.detach())
    return total, parts


def _focal(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Mean sigmoid focal loss per mask (RetinaNet's form, which SAM and SAM 2 use)."""
    target = target.expand_as(logits)
    probability = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = probability * target + (1 - probability) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(dim=2)


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probability = logits.sigmoid().flatten(2)
    target = target.expand_as(logits).flatten(2)
    numerator = 2 * (probability * target).sum(dim=2)
    denominator = probability.sum(dim=2) + target.sum(dim=2)
    return 1 - (numerator + 1) / (denominator + 1)


def _actual_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each thresholded mask with the target, the IoU head's regression target."""
    predicted = (logits > 0).flatten(2).float()
    target = target.expand_as(logits).flatten(2)
    intersection = (predicted * target).sum(dim=2)
    union = (predicted + target).clamp(max=1).sum(dim=2)
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union)).detach()
