"""Planning a scene: every random decision of a video, made up front from one seed.

:func:`plan_scene` picks the background, camera and lighting, the objects and their parts, and
their trajectories, then bends those trajectories so the promised events happen (a late entry,
an exit and return, an occlusion), timed on the sampled frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.synthetic.backdrop import plan_background, plan_camera, plan_lighting
from engine.synthetic.curves import bspline, plateau
from engine.synthetic.spec import MIN_SAMPLES_FOR_EVENTS, SyntheticSpec
from engine.synthetic.sprites import SHAPES, Sprite, make_sprite, pick_looks

# Chance that an object without a forced role still enters late or leaves for a while.
RANDOM_EXIT_CHANCE = 0.3


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One object of a scene: what it looks like and where it is on every source frame."""

    object_id: int
    part_id: int | None  # masklet id of its part; None when it has none
    shape: str
    sprite: Sprite
    track: np.ndarray  # (frames, 4): centre x, centre y, scale (<= 1 of the sprite), angle in degrees
    enters_late: bool
    leaves_and_returns: bool


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything random about one video, decided up front so any frame renders on its own."""

    spec: SyntheticSpec
    # (H + 2m, W + 2m, 4) uint8 BGRA canvas the camera looks at; the alpha channel is unused, but
    # OpenCV warps four channels about three times faster than three.
    background: np.ndarray
    camera: np.ndarray  # (frames, 3): canvas x and y of the view's top-left, canvas pixels per frame pixel
    objects: tuple[SceneObject, ...]  # back to front
    lighting: np.ndarray  # (frames, 3, 4) float32 colour transform per frame, for cv2.transform
    noise: np.ndarray  # (2, 2H, 2W, 3) uint8: positive and negative parts of a noise tile
    noise_offsets: np.ndarray  # (frames, 2) int: where each frame's noise window sits in the tile
    occlusion: tuple[int, int, int] | None  # (source frame, occluder id, occluded id) forced; None if not


def plan_scene(spec: SyntheticSpec, seed: int) -> Scene:
    """Decide everything random about a video from ``seed``: a pure function of its arguments."""
    rng = np.random.default_rng(seed)
    background, hue = plan_background(rng, spec)
    camera = plan_camera(rng, spec, margin=(background.shape[1] - spec.width) // 2)
    objects, occlusion = _plan_objects(rng, spec, hue)
    lighting = plan_lighting(rng, spec)
    noise = spec.noise_sigma * rng.standard_normal((2 * spec.height, 2 * spec.width, 3), dtype=np.float32)
    noise_parts = np.stack([np.clip(noise, 0, 255), np.clip(-noise, 0, 255)]).round().astype(np.uint8)
    frames = spec.source_frames
    offsets = np.column_stack([rng.integers(0, spec.height, frames), rng.integers(0, spec.width, frames)])
    return Scene(spec, background, camera, objects, lighting, noise_parts, offsets, occlusion)


@dataclass(frozen=True, eq=False)
class _Exit:
    """A stretch of a video an object spends outside the frame."""

    weight: np.ndarray  # (frames,): 1 wholly outside the frame, 0 on its own path, a cosine ramp between
    anchor: int  # source frame whose position picks the nearest edge to leave or enter by
    late: bool  # an entry after the start, rather than an exit and return


def _plan_objects(
    rng: np.random.Generator, spec: SyntheticSpec, background_hue: float
) -> tuple[tuple[SceneObject, ...], tuple[int, int, int] | None]:
    """Objects back to front, with the roles that make the forced events happen."""
    count = spec.objects
    depth_order = [int(i) for i in rng.permutation(count)]  # object ids, back to front
    parents = sorted(int(i) for i in rng.choice(count, spec.parts, replace=False))
    part_ids = {parent: count + j for j, parent in enumerate(parents)}
    looks = pick_looks(rng, count, background_hue)
    shapes = [SHAPES[int(rng.integers(len(SHAPES)))] for _ in range(count)]
    sprites, tracks = [], []
    for object_id in range(count):
        # Parts need room: an object with one is never among the smallest.
        radius = rng.uniform(0.12 if object_id in part_ids else 0.07, 0.17) * min(spec.width, spec.height)
        swing = rng.uniform(0.08, 0.3)  # the scale varies within exp(+-swing) of its middle
        largest = radius * math.exp(swing)
        sprites.append(make_sprite(rng, largest, shapes[object_id], looks[object_id], object_id in part_ids))
        tracks.append(_base_track(rng, spec, swing))

    # The front object leaves and returns (nothing can hide it, so it is seen whenever it is in
    # frame) and passes in front of the one just behind it, which enters late.
    leaver = depth_order[-1] if spec.force_events else None
    latecomer = depth_order[-2] if spec.force_events and count > 1 else leaver
    exits = _plan_exits(rng, spec, leaver, latecomer)
    for object_id in range(count):
        if object_id != leaver:
            _push_out(tracks[object_id], exits[object_id], sprites[object_id].radius, spec)
    occlusion = None
    if leaver is not None:
        if latecomer != leaver:
            # After the others' exits are applied: the occluder follows the occluded's final path.
            occlusion = _force_occlusion(rng, spec, tracks, sprites, exits, leaver, latecomer)
        _push_out(tracks[leaver], exits[leaver], sprites[leaver].radius, spec)

    objects = tuple(
        SceneObject(
            object_id=i,
            part_id=part_ids.get(i),
            shape=shapes[i],
            sprite=sprites[i],
            track=tracks[i],
            enters_late=any(e.late for e in exits[i]),
            leaves_and_returns=any(not e.late for e in exits[i]),
        )
        for i in depth_order
    )
    return objects, occlusion


def _plan_exits(
    rng: np.random.Generator, spec: SyntheticSpec, leaver: int | None, latecomer: int | None
) -> dict[int, list[_Exit]]:
    """When each object is outside the frame, timed on the sampled frames.

    Timing on the sampled grid is what makes the forced events certain on the ground truth:
    the latecomer is outside on sample 0, the leaver is outside on at least one sample with
    samples on its own path before and after, and the latecomer is in before the leaver leaves.
    """
    samples = spec.sampled_frames
    count = len(samples)
    ramp = max(1, round(0.1 * count))  # samples spent crossing the edge
    exits: dict[int, list[_Exit]] = {i: [] for i in range(spec.objects)}
    if count < MIN_SAMPLES_FOR_EVENTS:
        return exits
    entered = 0
    if latecomer is not None:
        outside_until = int(rng.integers(0, round(0.15 * count) + 1))
        exits[latecomer].append(_late_entry(spec, outside_until, ramp))
        entered = outside_until + ramp
    if leaver is not None:
        first = max(int(rng.integers(round(0.4 * count), round(0.55 * count) + 1)), entered + ramp)
        exits[leaver].append(_exit_and_return(spec, first, first + round(0.1 * count), ramp))
    for object_id in range(spec.objects):
        if object_id not in (leaver, latecomer) and rng.random() < RANDOM_EXIT_CHANCE:
            if rng.random() < 0.5:
                exits[object_id].append(_late_entry(spec, int(rng.integers(0, count // 3 + 1)), ramp))
            else:
                length = int(rng.integers(0, max(1, count // 6)))
                first = int(rng.integers(ramp, count - ramp - length))
                exits[object_id].append(_exit_and_return(spec, first, first + length, ramp))
    return exits


def _late_entry(spec: SyntheticSpec, outside_until: int, ramp: int) -> _Exit:
    """Outside the frame up to sample ``outside_until``, fully on its path from ``ramp`` samples later."""
    samples = spec.sampled_frames
    weight = plateau(spec.source_frames, -1, -1, samples[outside_until], samples[outside_until + ramp])
    return _Exit(weight, anchor=samples[outside_until + ramp], late=True)


def _exit_and_return(spec: SyntheticSpec, first: int, last: int, ramp: int) -> _Exit:
    """Outside the frame from sample ``first`` to ``last``, crossing the edge in ``ramp`` samples."""
    samples = spec.sampled_frames
    weight = plateau(
        spec.source_frames, samples[first - ramp], samples[first], samples[last], samples[last + ramp]
    )
    return _Exit(weight, anchor=samples[first - ramp], late=False)


def _push_out(track: np.ndarray, exits: list[_Exit], radius: float, spec: SyntheticSpec) -> None:
    """Bend ``track`` across the nearest frame edge for each exit, far enough that no pixel shows."""
    size = (spec.width, spec.height)
    for exit_ in exits:
        x, y = track[exit_.anchor, :2]
        edge = int(np.argmin([x, spec.width - 1 - x, y, spec.height - 1 - y]))  # left, right, top, bottom
        axis = edge // 2
        beyond = radius + 2.0
        outside = -beyond if edge % 2 == 0 else size[axis] - 1 + beyond
        track[:, axis] += exit_.weight * (outside - track[:, axis])


def _force_occlusion(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    tracks: list[np.ndarray],
    sprites: list[Sprite],
    exits: dict[int, list[_Exit]],
    occluder: int,
    occluded: int,
) -> tuple[int, int, int]:
    """Bend the occluder's path so that on one sampled frame it covers the occluded object's centre."""
    free = [
        f for f in spec.sampled_frames if all(e.weight[f] == 0.0 for e in exits[occluder] + exits[occluded])
    ]
    frame = free[int(rng.integers(len(free)))]
    step = spec.source_fps / spec.sample_fps
    half = max(2.0 * step, 0.15 * spec.source_frames)
    pull = plateau(spec.source_frames, frame - half, frame, frame, frame + half)
    # Centres closer than both inner radii: each shape covers the other's centre.
    reach = 0.3 * min(
        sprites[occluder].inner_radius * tracks[occluder][frame, 2],
        sprites[occluded].inner_radius * tracks[occluded][frame, 2],
    )
    angle = rng.uniform(0.0, 2.0 * math.pi)
    goal = tracks[occluded][:, :2] + reach * np.array([math.cos(angle), math.sin(angle)])
    tracks[occluder][:, :2] += pull[:, None] * (goal - tracks[occluder][:, :2])
    return frame, occluder, occluded


def _base_track(rng: np.random.Generator, spec: SyntheticSpec, swing: float) -> np.ndarray:
    """A smooth wander inside the frame with a slow scale change and a little rotation."""
    frames, short = spec.source_frames, min(spec.width, spec.height)
    low = np.array([0.12 * spec.width, 0.12 * spec.height])
    high = np.array([0.88 * spec.width, 0.88 * spec.height])
    points = [rng.uniform(low, high)]
    for _ in range(max(3, round(spec.duration_s / 0.7)) + 2):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        step = rng.uniform(0.1, 0.35) * short * np.array([math.cos(angle), math.sin(angle)])
        points.append(np.clip(points[-1] + step, low, high))
    t = np.linspace(0.0, 1.0, frames)
    scale = np.exp(swing * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 2 * np.pi)) - swing)
    spin, wobble = rng.uniform(-40.0, 40.0), rng.uniform(0.0, 8.0)
    angle = rng.uniform(0.0, 360.0) + spin * t + wobble * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
    return np.column_stack([bspline(np.array(points), frames), scale, angle])
