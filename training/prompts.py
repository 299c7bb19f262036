"""SAM 2's interactive prompt simulation for training.

Each clip is prompted the way the SAM 2 paper trains (appendix D.2 and the released training
configuration): the first conditioning frame gets a ground-truth mask (probability 0.5), a
click inside the object (0.25) or a noisy box (0.25, noise of 10% of the box side, at most
20 px); one or two conditioning frames; then corrective clicks, sampled from the error region of
the model's own prediction, on up to two frames, up to 7 per frame. The model thus learns both
to take a mask (Phase 2's SAM 2 Mask) and to take clicks and corrections (Phase 3).

All sampling draws from a ``torch.Generator`` the caller seeds per step, so a resumed run draws
exactly the prompts an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch


class PromptKind(StrEnum):
    MASK = "mask"
    CLICK = "click"
    BOX = "box"


# SAM 2's point labels; boxes are two corner points with labels 2 and 3, as the video model takes them.
NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 0, 1, 2, 3


@dataclass(frozen=True)
class PromptSpec:
    """Probabilities and counts of the prompt simulation; the defaults are SAM 2's."""

    mask_p: float = 0.5
    click_p: float = 0.25  # the rest of the probability goes to boxes
    box_noise: float = 0.1  # largest shift of a box side, relative to the box's width or height
    box_noise_max_px: float = 20.0  # ... and in pixels, whichever is smaller
    max_cond_frames: int = 2
    correction_frames: int = 2
    corrections_per_frame: int = 7


@dataclass(frozen=True)
class ClipPrompts:
    """Which frames of a clip are prompted, and how."""

    kind: PromptKind
    cond_frames: tuple[int, ...]  # clip positions; the first is always 0
    correction_frames: tuple[int, ...]  # clip positions that get corrective clicks
    corrections_per_frame: int


def plan_prompts(frame_count: int, spec: PromptSpec, generator: torch.Generator) -> ClipPrompts:
    """Draw the prompt type, the conditioning frames and the frames to correct for one clip."""
    draw = float(torch.rand((), generator=generator))
    if frame_count == 1:
        # A single frame (an image step) prompted by its own mask has nothing to predict:
        # it gets a click or a box, in their usual proportion.
        draw = spec.mask_p + draw * (1 - spec.mask_p)
    kind = PromptKind.MASK if draw < spec.mask_p else PromptKind.CLICK if draw < spec.mask_p + spec.click_p else PromptKind.BOX
    cond_count = int(torch.randint(1, max(1, spec.max_cond_frames) + 1, (), generator=generator))
    # A clip of two frames or more keeps at least one frame to track: the memory path is then
    # trained on every clip, and frames that are all mask-prompted would leave no loss at all.
    cond_count = max(1, min(cond_count, frame_count - 1))
    others = (torch.randperm(frame_count - 1, generator=generator) + 1).tolist()
    cond_frames = (0, *sorted(others[: cond_count - 1]))
    # Corrections go to prompted frames first (a click prompt is refined where it was given), then
    # to tracked frames, as in SAM 2; a mask prompt is taken as given and never corrected.
    candidates = [f for f in cond_frames if kind is not PromptKind.MASK] + [f for f in others if f not in cond_frames]
    count = int(torch.randint(0, spec.correction_frames + 1, (), generator=generator)) if spec.correction_frames else 0
    return ClipPrompts(kind, cond_frames, tuple(candidates[:count]), spec.corrections_per_frame)


def sample_clicks(
    predicted: torch.Tensor, target: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per object at a uniformly random pixel of its error region.

    ``predicted`` and ``target`` are ``(K, H, W)`` booleans. Positive where the object was
    missed, negative where the prediction spills over. Where there is no error, a positive click
    inside the object (or a negative one anywhere, if the object is absent). Returns ``(K, 1, 2)``
    ``(x, y)`` points and ``(K, 1)`` labels.
    """
    points, labels = [], []
    for pred, true in zip(predicted, target, strict=True):
        error = pred ^ true
        region = error if bool(error.any()) else (true if bool(true.any()) else torch.ones_like(true))
        ys, xs = torch.nonzero(region, as_tuple=True)
        pick = int(torch.randint(0, len(ys), (), generator=generator))
        y, x = int(ys[pick]), int(xs[pick])
        points.append([float(x), float(y)])
        labels.append(POSITIVE if bool(true[y, x]) else NEGATIVE)
    return torch.tensor(points).view(-1, 1, 2), torch.tensor(labels, dtype=torch.int32).view(-1, 1)


def noisy_boxes(
    target: torch.Tensor, spec: PromptSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The objects' bounding boxes, jittered, as ``(K, 2, 2)`` corner points with labels 2 and 3."""
    size = target.shape[-1]
    points = []
    for true in target:
        ys, xs = torch.nonzero(true, as_tuple=True)
        if len(ys) == 0:
            box = torch.tensor([0.0, 0.0, size - 1.0, size - 1.0])
        else:
            box = torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32)
        width, height = float(box[2] - box[0]), float(box[3] - box[1])
        # SAM 2's sample_box_points: each side moves uniformly within +-min(10% of the box's
        # width or height, 20 px); the box then stays inside the image.
        bound = torch.tensor([min(spec.box_noise * s, spec.box_noise_max_px) for s in (width, height, width, height)])
        noise = (2 * torch.rand(4, generator=generator) - 1) * bound
        box = (box + noise).clamp(0, size - 1)
        x0, x1 = sorted((float(box[0]), float(box[2])))
        y0, y1 = sorted((float(box[1]), float(box[3])))
        points.append([[x0, y0], [x1, y1]])
    labels = torch.tensor([[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]] * len(points), dtype=torch.int32)
    return torch.tensor(points), labels
