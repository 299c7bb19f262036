"""How automatic masklets are generated: :class:`AutoMaskConfig`, every knob in one record.

Kept apart from :mod:`engine.auto_masklets` (which needs torch) so that commands and flows can
build and check a configuration without importing the model code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.point_grids import PAPER_GRID_SIDES, scaled_grid_sides


@dataclass(frozen=True)
class AutoMaskConfig:
    """How automatic masklets are generated; the defaults follow the SAM 2 paper and SAM 2's generator."""

    # Points per side on the full frame, then on the crops of each crop layer (layer i: 2**i x 2**i
    # crops). The paper's 32, 16, 4; see `with_grid` for smaller or larger grids in proportion.
    grid_sides: tuple[int, ...] = PAPER_GRID_SIDES
    # Neighbouring crops overlap by this share of the frame's short side (halved per layer), as in SAM.
    crop_overlap_ratio: float = 512 / 1500
    # Points decoded at once: memory grows with it (three low-resolution masks per point).
    points_per_batch: int = 64
    # Three candidates per click: one click is ambiguous (part, object, group).
    multimask: bool = True
    # Keep a mask only if the model predicts an IoU above this (0: keep all) ...
    min_predicted_iou: float = 0.8
    # ... and its stability score (IoU of the mask at logits -offset and +offset) is at least this.
    min_stability: float = 0.95
    stability_offset: float = 1.0
    # Two masks overlapping by more than this IoU are one object; the better one is kept.
    nms_iou_threshold: float = 0.7
    # A crop's mask within this many pixels of the crop's inner border was cut off by it.
    crop_edge_margin: int = 20
    # Disconnected pieces and holes smaller than this (pixels of the full frame) are cleaned away.
    min_region_area: int = 200
    # At most this many masklets, best predicted IoU first (None: all that survive).
    max_candidates: int | None = None
    # Objects propagated together in one video session; memory grows with it.
    objects_per_session: int = 16

    def __post_init__(self) -> None:
        problems = []
        if not self.grid_sides or any(not isinstance(n, int) or n < 1 for n in self.grid_sides):
            problems.append(f"grid_sides must be one or more positive point counts, got {self.grid_sides!r}")
        for name in ("points_per_batch", "objects_per_session"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("min_predicted_iou", "min_stability", "nms_iou_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            problems.append(f"crop_overlap_ratio must be within [0, 1), got {self.crop_overlap_ratio}")
        if self.stability_offset <= 0 or self.crop_edge_margin < 0 or self.min_region_area < 0:
            problems.append("stability_offset must be positive; crop_edge_margin and min_region_area not negative")
        if self.max_candidates is not None and self.max_candidates < 1:
            problems.append(f"max_candidates must be at least 1 (or None), got {self.max_candidates}")
        if problems:
            raise ConfigError("auto masklet config: " + "; ".join(problems))

    @classmethod
    def with_grid(cls, points_per_side: int, crop_layers: int, **fields: Any) -> AutoMaskConfig:
        """A config whose grids are the paper's scaled to ``points_per_side`` on the full frame.

        ``with_grid(32, 2)`` is the default (32, 16, 4); ``with_grid(8, 0)`` one 8x8 grid, no crops.
        """
        return cls(grid_sides=scaled_grid_sides(points_per_side, crop_layers), **fields)

    @property
    def crop_layers(self) -> int:
        return len(self.grid_sides) - 1
