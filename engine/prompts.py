"""Checks on what annotators and procedures pass to the segmenters, before any model runs.

Shared by the image predictor and the video session so a bad click is refused with the same
words everywhere, and so a refused prompt never reaches (and half-changes) model state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import BadPromptError

POINT_LABELS = (0, 1)  # 0: not the object (negative click), 1: the object (positive click)


def check_frame_image(image: object) -> None:
    """Raise BadPromptError unless ``image`` is an ``(h, w, 3)`` uint8 RGB array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise BadPromptError(
            f"a frame must be an (height, width, 3) RGB array, got shape {getattr(image, 'shape', None)}"
        )
    if image.dtype != np.uint8:
        raise BadPromptError(f"a frame must be uint8 RGB, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadPromptError(f"a frame must not be empty, got shape {image.shape}")


def check_points(
    points: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks as ``(n, 2)`` float32 ``(x, y)`` and ``(n,)`` int64 labels, checked against the frame.

    Coordinates are continuous pixel positions: ``0 <= x <= width`` and ``0 <= y <= height``.
    """
    coords = np.asarray(points, dtype=np.float64)
    if coords.size == 0:
        coords = coords.reshape(0, 2)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise BadPromptError(f"points must be a list of (x, y) pairs, got shape {coords.shape}")
    label_array = np.asarray(labels)
    if label_array.size == 0:
        label_array = label_array.reshape(0)
    if label_array.ndim != 1 or len(label_array) != len(coords):
        raise BadPromptError(f"{len(coords)} points but {label_array.size} labels: give one label per point")
    if not np.isfinite(coords).all():
        raise BadPromptError("points must be finite numbers")
    if len(label_array) and not np.isin(label_array, POINT_LABELS).all():
        found = sorted(set(label_array.tolist()))
        raise BadPromptError(f"labels must be 1 (object) or 0 (not the object), got {found}")
    _check_inside(coords, size, "click")
    return coords.astype(np.float32), label_array.astype(np.int64)


def check_box(box: Sequence[float] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A box ``(x0, y0, x1, y1)`` as float32, inside the frame and not degenerate."""
    array = np.asarray(box, dtype=np.float64)
    if array.shape != (4,) or not np.isfinite(array).all():
        raise BadPromptError(f"a box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = array
    if x1 <= x0 or y1 <= y0:
        raise BadPromptError(f"a box needs x0 < x1 and y0 < y1, got {tuple(array.tolist())}")
    _check_inside(array.reshape(2, 2), size, "box corner")
    return array.astype(np.float32)


def check_frame_index(index: object, frame_count: int) -> int:
    """``index`` as an int in ``[0, frame_count)``, else BadPromptError."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise BadPromptError(f"a frame index must be an integer, got {index!r}")
    if not 0 <= int(index) < frame_count:
        raise BadPromptError(f"frame {index} is out of range: the video has frames 0..{frame_count - 1}")
    return int(index)


def _check_inside(coords: np.ndarray, size: tuple[int, int], what: str) -> None:
    height, width = size
    outside = (coords[:, 0] < 0) | (coords[:, 0] > width) | (coords[:, 1] < 0) | (coords[:, 1] > height)
    if outside.any():
        x, y = coords[outside][0]
        raise BadPromptError(
            f"{what} at ({x:g}, {y:g}) is outside the {width}x{height} frame (0 <= x <= {width}, 0 <= y <= {height})"
        )
