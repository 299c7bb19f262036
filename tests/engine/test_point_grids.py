"""Point grids and crop boxes: the paper's 32/16/4 grids, SAM's overlapping crops."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.point_grids import PAPER_GRID_SIDES, crop_boxes, point_grid, scaled_grid_sides


def test_a_grid_clicks_the_centre_of_every_cell_row_by_row() -> None:
    grid = point_grid(4)
    assert grid.shape == (16, 2)
    assert np.allclose(np.unique(grid[:, 0]), [0.125, 0.375, 0.625, 0.875])
    assert np.allclose(grid[:4, 1], 0.125) and np.allclose(grid[:4, 0], [0.125, 0.375, 0.625, 0.875])
    assert np.allclose(point_grid(1), [[0.5, 0.5]])


def test_grid_sides_follow_the_paper_and_scale_with_the_full_frame_grid() -> None:
    assert scaled_grid_sides(32, 2) == PAPER_GRID_SIDES == (32, 16, 4)
    assert scaled_grid_sides(32, 0) == (32,)
    assert scaled_grid_sides(8, 0) == (8,)
    assert scaled_grid_sides(8, 2) == (8, 4, 1)
    assert scaled_grid_sides(64, 3) == (64, 32, 8, 4)  # past the paper's layers: halve again
    with pytest.raises(ConfigError, match="at least 1 point"):
        scaled_grid_sides(0, 1)
    with pytest.raises(ConfigError, match="crop layers"):
        scaled_grid_sides(8, -1)


def test_the_paper_s_grids_click_2304_points() -> None:
    boxes = crop_boxes(240, 320, 2, 512 / 1500)
    per_layer = [sum(b.layer == layer for b in boxes) for layer in range(3)]
    assert per_layer == [1, 4, 16]
    assert sum(PAPER_GRID_SIDES[b.layer] ** 2 for b in boxes) == 1024 + 4 * 256 + 16 * 16 == 2304


def test_crops_cover_the_frame_and_overlap() -> None:
    height, width = 240, 320
    boxes = crop_boxes(height, width, 2, 512 / 1500)
    assert (boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1, boxes[0].layer) == (0, 0, width, height, 0)
    assert boxes[0].is_full_frame(height, width)
    for layer in (1, 2):
        covered = np.zeros((height, width), dtype=np.int32)
        for box in (b for b in boxes if b.layer == layer):
            assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
            assert not box.is_full_frame(height, width)
            covered[box.y0 : box.y1, box.x0 : box.x1] += 1
        assert covered.min() >= 1, f"layer {layer} leaves pixels uncovered"
        assert covered.max() >= 2, f"layer {layer} crops do not overlap"
    first_layer = [b for b in boxes if b.layer == 1]
    assert all(width // 2 < b.width <= width // 2 + 41 for b in first_layer)  # overlap: 512/1500 of 240 / 2
    assert all(height // 2 < b.height <= height // 2 + 41 for b in first_layer)


def test_no_crop_layers_is_the_full_frame_only() -> None:
    (only,) = crop_boxes(64, 96, 0, 0.3)
    assert only.area == 64 * 96
