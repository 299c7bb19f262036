"""Texture primitives shared by sprites and the background: smooth value noise and HSV colours."""

from __future__ import annotations

import cv2
import numpy as np


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, cells: int, octaves: int = 3
) -> np.ndarray:
    """Smooth value noise in [0, 1]: random grids upsampled and summed at halving amplitudes."""
    total = np.zeros((height, width), np.float32)
    for octave in range(octaves):
        grid = rng.random((cells * 2**octave + 1, cells * 2**octave + 1), dtype=np.float32)
        total += 0.5**octave * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """A float32 BGR colour (0..255) from OpenCV's hue (0..180) and saturation and value in 0..1."""
    pixel = np.array([[[hue % 180.0, 255 * saturation, 255 * value]]], np.float32)
    bgr = cv2.cvtColor(pixel.round().clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    return bgr[0, 0].astype(np.float32)
