"""Everything around the objects: the background canvas, the camera's path over it, the lighting."""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.synthetic.curves import bspline, wave
from engine.synthetic.spec import SyntheticSpec
from engine.synthetic.textures import fractal_noise, hsv


def plan_background(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, float]:
    """A canvas larger than the frame (so the camera can pan) and its dominant hue."""
    margin = round(0.12 * max(spec.width, spec.height))
    height, width = spec.height + 2 * margin, spec.width + 2 * margin
    hue = rng.uniform(0.0, 180.0)
    dark = hsv(hue + rng.uniform(-15, 15), rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.45))
    light = hsv(hue + rng.uniform(-15, 15), rng.uniform(0.1, 0.5), rng.uniform(0.55, 0.95))
    base = fractal_noise(rng, height, width, cells=int(rng.integers(2, 6)))
    canvas = dark + (light - dark) * base[..., None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = rng.uniform(0.0, 2.0 * math.pi)
    ramp = (xx * math.cos(slope) + yy * math.sin(slope)) / max(height, width)
    canvas *= (0.8 + 0.4 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))[..., None]
    if rng.random() < 0.6:
        angle, period = rng.uniform(0.0, math.pi), rng.uniform(8.0, 40.0)
        stripes = np.sin(2 * np.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
        canvas *= (1.0 + rng.uniform(0.05, 0.15) * stripes)[..., None]
    # Blobs, soft and hard edged, some as saturated as objects: things that are not objects.
    for _ in range(int(rng.integers(4, 12))):
        colour = hsv(rng.uniform(0, 180), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.95))
        _blend_blob(rng, canvas, colour * (0.85 + 0.3 * base[..., None]))
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA), hue


def _blend_blob(rng: np.random.Generator, canvas: np.ndarray, paint: np.ndarray) -> None:
    """Blend an ellipse of ``paint`` into ``canvas``, its edge blurred by a random amount."""
    height, width = canvas.shape[:2]
    cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
    axes = (int(rng.integers(5, width // 6)), int(rng.integers(5, height // 6)))
    angle, sigma = rng.uniform(0, 180), rng.uniform(0.5, 6.0)
    reach = max(axes) + math.ceil(3 * sigma)  # only this box around the centre can change
    x0, x1 = max(0, cx - reach), min(width, cx + reach + 1)
    y0, y1 = max(0, cy - reach), min(height, cy + reach + 1)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(alpha, (cx - x0, cy - y0), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)[..., None]
    box = canvas[y0:y1, x0:x1]
    box[...] = box * (1 - alpha) + paint[y0:y1, x0:x1] * alpha


def plan_camera(rng: np.random.Generator, spec: SyntheticSpec, margin: int) -> np.ndarray:
    """A slow pan over the canvas with a slight zoom, never looking past its border."""
    t = np.linspace(0.0, 1.0, spec.source_frames)
    zoom = 1.0 - rng.uniform(0.0, 0.1) * (0.5 + 0.5 * wave(rng, t))
    corner = bspline(rng.uniform(0, 2 * margin, (5, 2)), spec.source_frames)
    return np.column_stack([corner, zoom])


def plan_lighting(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Per-frame colour transforms: brightness, contrast and a tint drifting slowly."""
    t = np.linspace(0.0, 1.0, spec.source_frames)
    drift = spec.lighting_drift
    # A steady trend (up or down) plus a slow wave, so every video sees its light change.
    trend = rng.choice([-1.0, 1.0]) * (2.0 * t - 1.0)
    brightness = 1.0 + drift * (0.6 * trend + 0.4 * wave(rng, t))
    contrast = 1.0 + 0.5 * drift * wave(rng, t)
    tint = 1.0 + 0.25 * drift * np.column_stack([wave(rng, t) for _ in range(3)])
    transforms = np.zeros((spec.source_frames, 3, 4), np.float32)
    for channel in range(3):
        transforms[:, channel, channel] = brightness * contrast * tint[:, channel]
        transforms[:, channel, 3] = brightness * (1.0 - contrast) * 128.0 * tint[:, channel]
    return transforms
