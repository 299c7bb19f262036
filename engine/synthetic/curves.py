"""Smooth curves over a video's frames: B-spline paths, cosine-ramped plateaus and slow waves.

Objects, the camera and the lighting move along these, so nothing in a video jumps.
"""

from __future__ import annotations

import numpy as np


def bspline(points: np.ndarray, frames: int) -> np.ndarray:
    """A uniform cubic B-spline through ``frames`` steps: smooth, and inside the points' hull."""
    u = np.linspace(0.0, len(points) - 3.0, frames)
    segment = np.minimum(u.astype(int), len(points) - 4)
    s = (u - segment)[:, None]
    weights = (
        (1 - s) ** 3 / 6,
        (3 * s**3 - 6 * s**2 + 4) / 6,
        (-3 * s**3 + 3 * s**2 + 3 * s + 1) / 6,
        s**3 / 6,
    )
    return sum(w * points[segment + k] for k, w in enumerate(weights))


def plateau(frames: int, rise_from: float, start: float, end: float, fall_to: float) -> np.ndarray:
    """1 on [start, end], 0 before ``rise_from`` and after ``fall_to``, cosine ramps between."""
    t = np.arange(frames, dtype=np.float64)
    weight = ((t >= start) & (t <= end)).astype(np.float64)
    rising = (t > rise_from) & (t < start)
    weight[rising] = 0.5 - 0.5 * np.cos(np.pi * (t[rising] - rise_from) / (start - rise_from))
    falling = (t > end) & (t < fall_to)
    weight[falling] = 0.5 + 0.5 * np.cos(np.pi * (t[falling] - end) / (fall_to - end))
    return weight


def wave(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Less than one slow cycle of a sine: a drift rather than a flicker."""
    return np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0.0, 2 * np.pi))
