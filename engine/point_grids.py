"""Where automatic mask generation clicks: point grids over the frame and over crops of it.

As in SAM's automatic mask generator, layer 0 is the whole frame and crop layer ``i`` cuts the
frame into ``2**i x 2**i`` overlapping crops, each clicked with a grid of its own, so small
objects are seen at a higher effective resolution. The SAM 2 paper's grids are 32x32 on the
frame, 16x16 on each 2x2 crop and 4x4 on each 4x4 crop.

Grids are in ``[0, 1]`` coordinates of whatever they are laid on; crops in frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

from engine.errors import ConfigError

# Points per side in the SAM 2 paper's auto masklets: full frame, 2x2 crops, 4x4 crops.
PAPER_GRID_SIDES = (32, 16, 4)


@dataclass(frozen=True, slots=True)
class CropBox:
    """A rectangle ``[x0, x1) x [y0, y1)`` of the frame, and the crop layer it belongs to."""

    x0: int
    y0: int
    x1: int
    y1: int
    layer: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    def is_full_frame(self, height: int, width: int) -> bool:
        return (self.x0, self.y0, self.x1, self.y1) == (0, 0, width, height)


def point_grid(points_per_side: int) -> np.ndarray:
    """``points_per_side**2`` points ``(x, y)`` in ``[0, 1]``, each at the centre of its cell, row by row."""
    if points_per_side < 1:
        raise ConfigError(f"a point grid needs at least 1 point per side, got {points_per_side}")
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def scaled_grid_sides(points_per_side: int, crop_layers: int) -> tuple[int, ...]:
    """Points per side on the full frame and on each crop layer, in the SAM 2 paper's proportions.

    The paper clicks 32, 16 and 4 per side (full frame, 2x2 crops, 4x4 crops); a smaller or larger
    full-frame grid scales all three alike, and layers past the third halve again. At least one
    point (the crop's centre) is clicked per crop.
    """
    if points_per_side < 1:
        raise ConfigError(f"a point grid needs at least 1 point per side, got {points_per_side}")
    if crop_layers < 0:
        raise ConfigError(f"crop layers must be 0 or more, got {crop_layers}")
    sides: list[float] = list(PAPER_GRID_SIDES[: crop_layers + 1])
    while len(sides) < crop_layers + 1:
        sides.append(sides[-1] / 2)
    scale = points_per_side / PAPER_GRID_SIDES[0]
    return tuple(max(1, round(side * scale)) for side in sides)


def crop_boxes(height: int, width: int, crop_layers: int, overlap_ratio: float) -> list[CropBox]:
    """The full frame, then ``(2**i)**2`` overlapping crops for each crop layer ``i = 1..crop_layers``.

    Neighbouring crops of layer ``i`` overlap by ``overlap_ratio * short side * 2 / 2**i`` pixels
    (SAM's rule), so an object on a crop border is whole in at least one crop.
    """
    if crop_layers < 0:
        raise ConfigError(f"crop layers must be 0 or more, got {crop_layers}")
    boxes = [CropBox(0, 0, width, height, 0)]
    short_side = min(height, width)
    for layer in range(1, crop_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * 2 / per_side)
        crop_w = _crop_length(width, per_side, overlap)
        crop_h = _crop_length(height, per_side, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(per_side)]
        ys = [int((crop_h - overlap) * i) for i in range(per_side)]
        for y0, x0 in product(ys, xs):
            boxes.append(CropBox(x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height), layer))
    return boxes


def _crop_length(length: int, crops: int, overlap: int) -> int:
    return int(math.ceil((overlap * (crops - 1) + length) / crops))
