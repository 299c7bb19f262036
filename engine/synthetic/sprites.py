"""What objects look like: shapes, colours, patterns and parts, rasterised once into sprites.

A sprite holds an object's texture and its label map (object, part) at its largest size; each
frame only warps it into place (see :mod:`engine.synthetic.render`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.synthetic.textures import fractal_noise, hsv

SHAPES = ("ellipse", "rounded_rect", "star", "polygon", "blob")
PATTERNS = ("stripes", "checker", "spots", "rings", "noise")
# Chance that two objects share colours and pattern (only their shapes differ): identity swaps.
LOOKALIKE_CHANCE = 0.25
# Chance that an object is coloured like the background (camouflage).
CAMOUFLAGE_CHANCE = 0.15


@dataclass(frozen=True, eq=False)
class Sprite:
    """An object drawn once, upright and at its largest size; each frame warps it into place.

    The texture covers the whole sprite, not just the shape, so interpolating at the shape's
    edge still samples the object's own colours.
    """

    texture: np.ndarray  # (size, size, 3) uint8 BGR
    labels: np.ndarray  # (size, size) uint8: 0 outside the shape, 1 the object, 2 its part
    radius: float  # farthest labelled pixel from the sprite's centre, in sprite pixels
    inner_radius: float  # a disc this wide around the centre lies inside the shape


@dataclass(frozen=True, eq=False)
class Look:
    """An object's appearance; two objects sharing one are lookalikes."""

    hue: float
    colours: tuple[np.ndarray, np.ndarray]  # float32 BGR: the pattern mixes these two
    pattern: str
    period: float  # pattern period as a fraction of the object's radius
    rim: float | None  # brightness factor of a thin outline; None for no outline


def pick_looks(rng: np.random.Generator, count: int, background_hue: float) -> list[Look]:
    """One look per object, around the background's hue: some camouflaged, maybe a lookalike pair."""
    looks = []
    for _ in range(count):
        camouflaged = rng.random() < CAMOUFLAGE_CHANCE
        offset = rng.uniform(-12.0, 12.0) if camouflaged else rng.uniform(25.0, 155.0)
        hue = (background_hue + offset) % 180.0
        colours = (
            hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)),
            hsv(hue + rng.uniform(-25.0, 25.0), rng.uniform(0.2, 1.0), rng.uniform(0.15, 0.9)),
        )
        rim_kind = rng.random()
        rim = rng.uniform(0.45, 0.7) if rim_kind < 0.45 else rng.uniform(1.3, 1.6) if rim_kind < 0.6 else None
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        looks.append(Look(hue, colours, pattern, rng.uniform(0.25, 0.8), rim))
    if count > 1 and rng.random() < LOOKALIKE_CHANCE:
        original, copy = (int(i) for i in rng.choice(count, 2, replace=False))
        looks[copy] = looks[original]
    return looks


def make_sprite(rng: np.random.Generator, radius: float, shape: str, look: Look, with_part: bool) -> Sprite:
    """Rasterise the shape once (labels) and texture the whole square (pixels) at the largest size."""
    outline = _outline(rng, shape)
    size = 2 * math.ceil(radius) + 5
    centre = (size - 1) / 2.0
    labels = np.zeros((size, size), np.uint8)
    corners = np.round((centre + radius * outline) * 16).astype(np.int32)  # 4 fractional bits
    cv2.fillPoly(labels, [corners], 1, cv2.LINE_8, shift=4)
    texture = _texture(rng, size, radius, look)
    if look.rim is not None:
        eroded = cv2.erode(labels, np.ones((3, 3), np.uint8), iterations=max(1, round(radius / 20)))
        texture[(labels > 0) & (eroded == 0)] *= look.rim
    if with_part:
        part = _part_region(rng, labels, centre, radius)
        texture[part] = _part_texture(rng, size, look)[part]
        labels[part] = 2
    texture *= _shading(rng, size, radius)[..., None]
    ys, xs = np.nonzero(labels)
    return Sprite(
        texture=np.clip(texture, 0, 255).astype(np.uint8),
        labels=labels,
        radius=float(np.hypot(xs - centre, ys - centre).max()) + 1.0,
        inner_radius=max(1.0, _inner_radius(outline) * radius - 1.5),
    )


def _outline(rng: np.random.Generator, shape: str) -> np.ndarray:
    """A closed outline around the origin, star-shaped about it, scaled to a farthest point of 1."""
    phi = np.linspace(0.0, 2.0 * np.pi, 120, endpoint=False)
    if shape == "ellipse":
        points = np.column_stack([np.cos(phi), rng.uniform(0.45, 1.0) * np.sin(phi)])
    elif shape == "rounded_rect":
        power = 2.0 / rng.uniform(4.0, 10.0)  # a superellipse: square corners rounded off
        c, s = np.cos(phi), np.sin(phi)
        aspect = rng.uniform(0.5, 1.0)
        points = np.column_stack([np.sign(c) * np.abs(c) ** power, aspect * np.sign(s) * np.abs(s) ** power])
    elif shape == "star":
        tips = int(rng.integers(4, 8))
        phi = np.linspace(0.0, 2.0 * np.pi, 2 * tips, endpoint=False)
        radii = np.where(np.arange(2 * tips) % 2 == 0, 1.0, rng.uniform(0.45, 0.7))
        points = np.column_stack([radii * np.cos(phi), radii * np.sin(phi)])
    elif shape == "polygon":
        corners = int(rng.integers(3, 8))
        spacing = 2 * np.pi / corners
        phi = np.sort((np.arange(corners) + rng.uniform(-0.25, 0.25, corners)) * spacing)
        radii = rng.uniform(0.75, 1.0, corners)
        points = np.column_stack([radii * np.cos(phi), radii * np.sin(phi)])
    else:  # blob: a circle with a few low harmonics
        radii = np.ones_like(phi)
        for harmonic in range(2, 6):
            radii += rng.uniform(0.0, 0.4) / harmonic * np.cos(harmonic * phi + rng.uniform(0, 2 * np.pi))
        points = np.column_stack([radii * np.cos(phi), radii * np.sin(phi)])
    return points / np.hypot(points[:, 0], points[:, 1]).max()


def _inner_radius(outline: np.ndarray) -> float:
    """Distance from the origin to the nearest edge of the closed outline."""
    a, b = outline, np.roll(outline, -1, axis=0)
    edge = b - a
    t = np.clip(-(a * edge).sum(axis=1) / np.maximum((edge * edge).sum(axis=1), 1e-12), 0.0, 1.0)
    nearest = a + t[:, None] * edge
    return float(np.hypot(nearest[:, 0], nearest[:, 1]).min())


def _part_region(rng: np.random.Generator, labels: np.ndarray, centre: float, radius: float) -> np.ndarray:
    """A disc near the object's edge, cut to the object (so the part is a subset of its object)."""
    direction = rng.uniform(0.0, 2.0 * math.pi)
    part_radius = rng.uniform(0.3, 0.42) * radius
    part = np.zeros(labels.shape, bool)
    for distance in (0.55, 0.4, 0.25, 0.0):  # inwards until most of the disc lies on the object
        disc = np.zeros(labels.shape, np.uint8)
        x = centre + distance * radius * math.cos(direction)
        y = centre + distance * radius * math.sin(direction)
        cv2.circle(disc, (round(x * 16), round(y * 16)), round(part_radius * 16), 1, -1, cv2.LINE_8, shift=4)
        part = (disc > 0) & (labels == 1)
        if part.sum() >= 0.5 * math.pi * part_radius**2:
            break
    return part


def _texture(rng: np.random.Generator, size: int, radius: float, look: Look) -> np.ndarray:
    """The object's two colours mixed by its pattern, over the whole sprite square (float32 BGR)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2.0
    theta = rng.uniform(0.0, math.pi)
    period = look.period * radius
    u = (xx * math.cos(theta) + yy * math.sin(theta)) / period
    v = (-xx * math.sin(theta) + yy * math.cos(theta)) / period
    if look.pattern == "stripes":
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * u)
    elif look.pattern == "checker":
        mix = np.clip(0.5 + 3.0 * np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v), 0.0, 1.0)
    elif look.pattern == "spots":
        mix = np.clip((np.sin(2 * np.pi * u) + np.sin(2 * np.pi * v) - 0.6) * 2.0, 0.0, 1.0)
    elif look.pattern == "rings":
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(u, v))
    else:
        mix = fractal_noise(rng, size, size, cells=max(2, round(1.0 / look.period)))
    mix = 0.8 * mix + 0.2 * fractal_noise(rng, size, size, cells=3)
    first, second = look.colours
    return first + (second - first) * mix[..., None]


def _part_texture(rng: np.random.Generator, size: int, look: Look) -> np.ndarray:
    """A colour far from the object's hue, lightly mottled, so the part stands out from its object."""
    colour = hsv(look.hue + rng.uniform(60.0, 120.0), rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
    return colour * (0.85 + 0.3 * fractal_noise(rng, size, size, cells=4))[..., None]


def _shading(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Light from one side and a darker rim of the body: a hint of volume."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2.0
    light = rng.uniform(0.0, 2.0 * math.pi)
    side = (xx * math.cos(light) + yy * math.sin(light)) / radius
    return np.clip(1.0 + 0.18 * side - 0.12 * (np.hypot(xx, yy) / radius) ** 2, 0.6, 1.3)
