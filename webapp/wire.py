"""Masks and brush strokes as they travel between the server and the page.

A mask goes to the page as row-major run lengths, ``{"height", "width", "runs"}``, starting
with a run of background (possibly 0): a few hundred integers for a typical object at any
resolution, which the page's JavaScript turns into canvas pixels in one loop, without waiting
for an image decoder. (COCO's RLE is column-major and its compressed form needs a bespoke
decoder; this one needs none.)

A brush or eraser stroke comes from the page as the polyline the pointer drew, in frame
pixels, and a radius; the server paints it, so the page cannot send an arbitrary mask and a
stroke's size is bounded by the request's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from engine.errors import BadPromptError

MAX_RADIUS = 256


def mask_runs(mask: np.ndarray) -> dict[str, Any]:
    """``mask`` (``(h, w)`` bool) as row-major run lengths, background first."""
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    height, width = mask.shape
    if flat.size == 0:
        return {"height": height, "width": width, "runs": []}
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return {"height": int(height), "width": int(width), "runs": runs}


def runs_mask(wire: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`mask_runs` (for tests and clients written in Python)."""
    height, width, runs = int(wire["height"]), int(wire["width"]), wire["runs"]
    if sum(runs) != height * width and runs:
        raise BadPromptError(f"mask runs add up to {sum(runs)} pixels, not {height}x{width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs) if runs else np.zeros(height * width, dtype=bool)
    return flat.reshape(height, width)


def paint_stroke(points: Sequence[Sequence[float]], radius: float, size: tuple[int, int]) -> np.ndarray:
    """The region a round brush of ``radius`` paints along ``points`` (``(x, y)`` frame pixels)."""
    height, width = size
    if not points:
        raise BadPromptError("a stroke needs at least one point")
    if not (isinstance(radius, (int, float)) and np.isfinite(radius) and 0.5 <= radius <= MAX_RADIUS):
        raise BadPromptError(f"brush radius {radius!r} must be between 0.5 and {MAX_RADIUS} pixels")
    coords = np.asarray(points, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
        raise BadPromptError("stroke points must be finite (x, y) pairs")
    if (coords[:, 0] < -radius).any() or (coords[:, 0] > width + radius).any() or (coords[:, 1] < -radius).any() or (
        coords[:, 1] > height + radius
    ).any():
        raise BadPromptError(f"stroke points must lie on the {width}x{height} frame")
    canvas = np.zeros((height, width), dtype=np.uint8)
    pixels = np.round(coords).astype(np.int32)
    thickness = max(1, int(round(2 * radius)))
    r = max(0, int(round(radius)))
    for x, y in pixels:
        cv2.circle(canvas, (int(x), int(y)), r, 1, thickness=-1)
    if len(pixels) > 1:
        cv2.polylines(canvas, [pixels.reshape(-1, 1, 2)], False, 1, thickness=thickness, lineType=cv2.LINE_8)
    return canvas.astype(bool)
