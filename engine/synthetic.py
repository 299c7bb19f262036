"""Seeded synthetic videos with exact ground-truth masklets.

The demo, the tests and the benchmarks need videos whose true masklets are known exactly, and
the small SAM 2 trained from scratch needs them learnable but not trivial. A video is planned
from one seed (:func:`plan_scene`: background, objects and their parts, trajectories, lighting)
and then rendered frame by frame (:func:`render_frame`) into pixels and a per-pixel label map
in one pass, so a masklet is exactly the pixels its object painted, never an approximation.

What a video holds:

- a textured background (smooth noise, gradient, stripes, soft and hard blobs, a palette of its
  own) seen through a camera that pans and zooms slowly;
- ``spec.objects`` textured objects (ellipses, rounded rectangles, stars, polygons, blobs), each
  with its own colours and pattern, moving on smooth trajectories while they scale and rotate,
  drawn back to front so nearer objects occlude farther ones (a masklet holds visible pixels only);
- ``spec.parts`` of them carry a distinctly coloured part with a masklet of its own, a subset of
  the object's (SA-V's person and hands);
- a global brightness, contrast and colour drift, and a little sensor noise.

With ``spec.force_events`` every video also holds, by construction: an object that enters late
(outside the frame on frame 0), an object that leaves the frame and comes back (visible, then
invisible on at least one sampled frame, then visible again), and, given two objects or more,
that object passing in front of another one. Other objects may do the same by chance.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import BadVideoError, ConfigError
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.sav import SavVideo, to_sav
from engine.video import sample_indices

SHAPES = ("ellipse", "rounded_rect", "star", "polygon", "blob")
PATTERNS = ("stripes", "checker", "spots", "rings", "noise")
ENVIRONMENT = "Synthetic"
BACKGROUND = -1  # label of background pixels in a label map

# A late entry, an exit, a hidden stretch, a return and an occlusion need this many sampled frames.
MIN_SAMPLES_FOR_EVENTS = 8
# Chance that an object without a forced role still enters late or leaves for a while.
RANDOM_EXIT_CHANCE = 0.3
# Chance that two objects share colours and pattern (only their shapes differ): identity swaps.
LOOKALIKE_CHANCE = 0.25
# Chance that an object is coloured like the background (camouflage).
CAMOUFLAGE_CHANCE = 0.15


@dataclass(frozen=True)
class SyntheticSpec:
    """What to synthesise; the defaults make a 4 s, 320x240 clip that renders fast on a small CPU."""

    width: int = 320
    height: int = 240
    source_fps: float = 24.0
    source_frames: int = 96
    # SA-V's annotation rate: ground truth is given on the frames this rate samples, no others.
    sample_fps: float = 6.0
    objects: int = 3
    # Objects that carry a distinctly coloured part with its own masklet (SA-V's person and hands).
    parts: int = 1
    # Guarantee a late entry, an exit and return, and an occlusion in every video (tests assert them).
    force_events: bool = True
    # Largest relative change of brightness over a video (lighting drift).
    lighting_drift: float = 0.2
    # Standard deviation of the sensor noise, in grey levels.
    noise_sigma: float = 2.5

    def __post_init__(self) -> None:
        problems = []
        if self.width < 32 or self.height < 32:
            problems.append(f"frames must be at least 32x32 pixels, got {self.width}x{self.height}")
        if self.source_frames < 1:
            problems.append(f"need at least one source frame, got {self.source_frames}")
        if not (self.source_fps > 0 and self.sample_fps > 0):
            problems.append(f"fps must be positive, got source {self.source_fps}, sample {self.sample_fps}")
        if self.objects < 1:
            problems.append(f"need at least one object, got {self.objects}")
        elif not 0 <= self.parts <= self.objects:
            problems.append(f"parts must be 0 to the number of objects ({self.objects}), got {self.parts}")
        if self.lighting_drift < 0 or self.noise_sigma < 0:
            problems.append("lighting_drift and noise_sigma must not be negative")
        if not problems and self.force_events and len(self.sampled_frames) < MIN_SAMPLES_FOR_EVENTS:
            needed = math.ceil((MIN_SAMPLES_FOR_EVENTS - 1) * self.source_fps / self.sample_fps) + 1
            problems.append(
                f"{self.source_frames} source frames give {len(self.sampled_frames)} sampled frames; the "
                f"forced events need {MIN_SAMPLES_FOR_EVENTS} (use at least {needed} frames, "
                "or force_events=False)"
            )
        if problems:
            raise ConfigError("synthetic video spec: " + "; ".join(problems))

    @property
    def sampled_frames(self) -> list[int]:
        """Source frames that carry ground truth (the engine's one sampling rule)."""
        return sample_indices(self.source_frames, self.source_fps, self.sample_fps)

    @property
    def masklet_count(self) -> int:
        return self.objects + self.parts

    @property
    def duration_s(self) -> float:
        return self.source_frames / self.source_fps


DEFAULT_SPEC = SyntheticSpec()


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


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    labels: np.ndarray  # (H, W) int16: masklet id of the innermost thing seen at each pixel, -1 background


@dataclass(frozen=True, eq=False)
class SyntheticVideo:
    """A rendered synthetic video and its ground truth on the sampled frames."""

    video_id: str
    seed: int
    spec: SyntheticSpec
    frames: np.ndarray  # (frames, H, W, 3) uint8 BGR at the source fps
    masklets: tuple[Masklet, ...]  # ids 0..n-1: objects first, then parts; on the sampled frames
    parent_of: dict[int, int]  # part masklet id -> id of the object it belongs to
    scene: Scene  # the plan the frames came from (re-render a frame, e.g. with an object hidden)

    @property
    def sampled_frames(self) -> list[int]:
        return self.spec.sampled_frames


# --- The public procedure -------------------------------------------------------------------


def generate_video(video_id: str, seed: int, spec: SyntheticSpec = DEFAULT_SPEC) -> SyntheticVideo:
    """Plan and render one video; the same seed and spec give identical pixels and masks."""
    scene = plan_scene(spec, seed)
    frames = np.empty((spec.source_frames, spec.height, spec.width, 3), np.uint8)
    sampled = set(spec.sampled_frames)
    label_maps = []
    for index in range(spec.source_frames):
        rendered = render_frame(scene, index)
        frames[index] = rendered.image
        if index in sampled:
            label_maps.append(rendered.labels)
    parent_of = {o.part_id: o.object_id for o in scene.objects if o.part_id is not None}
    return SyntheticVideo(
        video_id=video_id,
        seed=seed,
        spec=spec,
        frames=frames,
        masklets=_masklets(video_id, scene, label_maps),
        parent_of=parent_of,
        scene=scene,
    )


def write_synthetic_video(out_dir: Path, video: SyntheticVideo) -> tuple[Path, Path]:
    """Write ``{video_id}.mp4`` and its SA-V ``{video_id}.json``; returns both paths.

    Each file appears atomically, the JSON last, so a JSON beside an MP4 means both are complete.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4 = out_dir / f"{video.video_id}.mp4"
    annotation = out_dir / f"{video.video_id}.json"
    _write_mp4(mp4, video.frames, video.spec.source_fps)
    sav_video = SavVideo(
        video_id=video.video_id,
        duration_s=video.spec.duration_s,
        frame_count=video.spec.source_frames,
        height=video.spec.height,
        width=video.spec.width,
        environment=ENVIRONMENT,
        split="train",
    )
    _write_text(annotation, json.dumps(to_sav(sav_video, video.masklets), separators=(",", ":")))
    return mp4, annotation


def synthesize(
    out_dir: Path,
    videos: int,
    seed: int,
    spec: SyntheticSpec = DEFAULT_SPEC,
    on_video: Callable[[SyntheticVideo, Path], None] | None = None,
) -> list[Path]:
    """Write ``videos`` videos ``syn{seed:04d}_{i:04d}``; returns their MP4 paths (the JSON is beside).

    Video ``i`` uses a seed derived from ``(seed, i)``, so the set is reproducible and growing it
    keeps the videos already made. ``on_video`` hears of each video once it is written.
    """
    if videos < 0:
        raise ConfigError(f"number of videos must not be negative, got {videos}")
    if seed < 0:
        raise ConfigError(f"seed must not be negative, got {seed}")
    written = []
    for index in range(videos):
        video = generate_video(synthetic_video_id(seed, index), video_seed(seed, index), spec)
        mp4, _ = write_synthetic_video(out_dir, video)
        written.append(mp4)
        if on_video is not None:
            on_video(video, mp4)
    return written


def synthetic_video_id(seed: int, index: int) -> str:
    return f"syn{seed:04d}_{index:04d}"


def video_seed(seed: int, index: int) -> int:
    """The seed of video ``index`` of a set: independent streams for neighbouring (seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


# --- Rendering ------------------------------------------------------------------------------


def render_frame(scene: Scene, index: int, hidden: frozenset[int] = frozenset()) -> RenderedFrame:
    """Source frame ``index`` of ``scene``, pixels and labels from the same rasterisation.

    ``hidden`` lists object ids to leave out (with their parts); the rest of the frame, noise
    and lighting included, is unchanged, which is what makes occlusion testable.
    """
    image = _camera_view(scene, index)
    labels = np.full(image.shape[:2], BACKGROUND, np.int16)
    for obj in scene.objects:
        if obj.object_id not in hidden:
            _paint(image, labels, obj, index)
    image = cv2.transform(image, scene.lighting[index])
    return RenderedFrame(_add_noise(image, scene, index), labels)


def _camera_view(scene: Scene, index: int) -> np.ndarray:
    x, y, zoom = scene.camera[index]
    view_to_canvas = np.array([[zoom, 0.0, x], [0.0, zoom, y]], np.float32)
    view = cv2.warpAffine(
        scene.background,
        view_to_canvas,
        (scene.spec.width, scene.spec.height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return cv2.cvtColor(view, cv2.COLOR_BGRA2BGR)


def _paint(image: np.ndarray, labels: np.ndarray, obj: SceneObject, index: int) -> None:
    """Draw ``obj`` over ``image`` and claim its pixels in ``labels``, inside its bounding box only."""
    x, y, scale, angle = (float(v) for v in obj.track[index])
    sprite = obj.sprite
    centre = (sprite.labels.shape[0] - 1) / 2.0
    extent = sprite.radius * scale + 2.0
    height, width = labels.shape
    x0, x1 = max(0, math.floor(x - extent)), min(width, math.ceil(x + extent) + 1)
    y0, y1 = max(0, math.floor(y - extent)), min(height, math.ceil(y + extent) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    sprite_to_box = cv2.getRotationMatrix2D((centre, centre), angle, scale)
    sprite_to_box[:, 2] += (x - centre - x0, y - centre - y0)
    size = (x1 - x0, y1 - y0)
    # Same matrix, same pixel grid: the nearest-neighbour labels decide which pixels the
    # interpolated texture may paint, so the mask and the pixels cannot disagree.
    texture = cv2.warpAffine(
        sprite.texture, sprite_to_box, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    drawn = cv2.warpAffine(sprite.labels, sprite_to_box, size, flags=cv2.INTER_NEAREST, borderValue=0)
    cv2.copyTo(texture, drawn, image[y0:y1, x0:x1])  # in place: copies where drawn is non-zero
    box_labels = labels[y0:y1, x0:x1]
    np.putmask(box_labels, drawn > 0, obj.object_id)
    if obj.part_id is not None:
        np.putmask(box_labels, drawn == 2, obj.part_id)


def _add_noise(image: np.ndarray, scene: Scene, index: int) -> np.ndarray:
    # A window of one shared noise tile per frame: as random to the eye as fresh noise, far cheaper.
    height, width = image.shape[:2]
    oy, ox = (int(v) for v in scene.noise_offsets[index])
    positive = scene.noise[0, oy : oy + height, ox : ox + width]
    negative = scene.noise[1, oy : oy + height, ox : ox + width]
    return cv2.subtract(cv2.add(image, positive), negative)


def _masklets(video_id: str, scene: Scene, label_maps: list[np.ndarray]) -> tuple[Masklet, ...]:
    """Ground-truth masklets from the label maps of the sampled frames; a part counts for its object too."""
    masks: dict[int, list[np.ndarray]] = {}
    for obj in scene.objects:
        ids = [obj.object_id] if obj.part_id is None else [obj.object_id, obj.part_id]
        masks[obj.object_id] = [np.isin(labels, ids) for labels in label_maps]
        if obj.part_id is not None:
            masks[obj.part_id] = [labels == obj.part_id for labels in label_maps]
    return tuple(
        Masklet(video_id, masklet_id, MaskletSource.GROUND_TRUTH, tuple(encode(m) for m in masks[masklet_id]))
        for masklet_id in sorted(masks)
    )


# --- Planning a scene -----------------------------------------------------------------------


def plan_scene(spec: SyntheticSpec, seed: int) -> Scene:
    """Decide everything random about a video from ``seed``: a pure function of its arguments."""
    rng = np.random.default_rng(seed)
    background, hue = _background(rng, spec)
    camera = _camera_path(rng, spec, margin=(background.shape[1] - spec.width) // 2)
    objects, occlusion = _plan_objects(rng, spec, hue)
    lighting = _lighting(rng, spec)
    noise = spec.noise_sigma * rng.standard_normal((2 * spec.height, 2 * spec.width, 3), dtype=np.float32)
    noise_parts = np.stack([np.clip(noise, 0, 255), np.clip(-noise, 0, 255)]).round().astype(np.uint8)
    frames = spec.source_frames
    offsets = np.column_stack([rng.integers(0, spec.height, frames), rng.integers(0, spec.width, frames)])
    return Scene(spec, background, camera, objects, lighting, noise_parts, offsets, occlusion)


@dataclass(frozen=True, eq=False)
class _Look:
    """An object's appearance; two objects sharing one are lookalikes."""

    hue: float
    colours: tuple[np.ndarray, np.ndarray]  # float32 BGR: the pattern mixes these two
    pattern: str
    period: float  # pattern period as a fraction of the object's radius
    rim: float | None  # brightness factor of a thin outline; None for no outline


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
    looks = _looks(rng, count, background_hue)
    shapes = [SHAPES[int(rng.integers(len(SHAPES)))] for _ in range(count)]
    sprites, tracks = [], []
    for object_id in range(count):
        # Parts need room: an object with one is never among the smallest.
        radius = rng.uniform(0.12 if object_id in part_ids else 0.07, 0.17) * min(spec.width, spec.height)
        swing = rng.uniform(0.08, 0.3)  # the scale varies within exp(+-swing) of its middle
        largest = radius * math.exp(swing)
        sprites.append(_sprite(rng, largest, shapes[object_id], looks[object_id], object_id in part_ids))
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
    weight = _plateau(spec.source_frames, -1, -1, samples[outside_until], samples[outside_until + ramp])
    return _Exit(weight, anchor=samples[outside_until + ramp], late=True)


def _exit_and_return(spec: SyntheticSpec, first: int, last: int, ramp: int) -> _Exit:
    """Outside the frame from sample ``first`` to ``last``, crossing the edge in ``ramp`` samples."""
    samples = spec.sampled_frames
    weight = _plateau(
        spec.source_frames, samples[first - ramp], samples[first], samples[last], samples[last + ramp]
    )
    return _Exit(weight, anchor=samples[first - ramp], late=False)


def _plateau(frames: int, rise_from: float, start: float, end: float, fall_to: float) -> np.ndarray:
    """1 on [start, end], 0 before ``rise_from`` and after ``fall_to``, cosine ramps between."""
    t = np.arange(frames, dtype=np.float64)
    weight = ((t >= start) & (t <= end)).astype(np.float64)
    rising = (t > rise_from) & (t < start)
    weight[rising] = 0.5 - 0.5 * np.cos(np.pi * (t[rising] - rise_from) / (start - rise_from))
    falling = (t > end) & (t < fall_to)
    weight[falling] = 0.5 + 0.5 * np.cos(np.pi * (t[falling] - end) / (fall_to - end))
    return weight


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
    pull = _plateau(spec.source_frames, frame - half, frame, frame, frame + half)
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
    return np.column_stack([_bspline(np.array(points), frames), scale, angle])


def _bspline(points: np.ndarray, frames: int) -> np.ndarray:
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


# --- Appearance -----------------------------------------------------------------------------


def _looks(rng: np.random.Generator, count: int, background_hue: float) -> list[_Look]:
    looks = []
    for _ in range(count):
        camouflaged = rng.random() < CAMOUFLAGE_CHANCE
        offset = rng.uniform(-12.0, 12.0) if camouflaged else rng.uniform(25.0, 155.0)
        hue = (background_hue + offset) % 180.0
        colours = (
            _hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)),
            _hsv(hue + rng.uniform(-25.0, 25.0), rng.uniform(0.2, 1.0), rng.uniform(0.15, 0.9)),
        )
        rim_kind = rng.random()
        rim = rng.uniform(0.45, 0.7) if rim_kind < 0.45 else rng.uniform(1.3, 1.6) if rim_kind < 0.6 else None
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        looks.append(_Look(hue, colours, pattern, rng.uniform(0.25, 0.8), rim))
    if count > 1 and rng.random() < LOOKALIKE_CHANCE:
        original, copy = (int(i) for i in rng.choice(count, 2, replace=False))
        looks[copy] = looks[original]
    return looks


def _sprite(rng: np.random.Generator, radius: float, shape: str, look: _Look, with_part: bool) -> Sprite:
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


def _texture(rng: np.random.Generator, size: int, radius: float, look: _Look) -> np.ndarray:
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
        mix = _fractal_noise(rng, size, size, cells=max(2, round(1.0 / look.period)))
    mix = 0.8 * mix + 0.2 * _fractal_noise(rng, size, size, cells=3)
    first, second = look.colours
    return first + (second - first) * mix[..., None]


def _part_texture(rng: np.random.Generator, size: int, look: _Look) -> np.ndarray:
    """A colour far from the object's hue, lightly mottled, so the part stands out from its object."""
    colour = _hsv(look.hue + rng.uniform(60.0, 120.0), rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
    return colour * (0.85 + 0.3 * _fractal_noise(rng, size, size, cells=4))[..., None]


def _shading(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Light from one side and a darker rim of the body: a hint of volume."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2.0
    light = rng.uniform(0.0, 2.0 * math.pi)
    side = (xx * math.cos(light) + yy * math.sin(light)) / radius
    return np.clip(1.0 + 0.18 * side - 0.12 * (np.hypot(xx, yy) / radius) ** 2, 0.6, 1.3)


def _background(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, float]:
    """A canvas larger than the frame (so the camera can pan) and its dominant hue."""
    margin = round(0.12 * max(spec.width, spec.height))
    height, width = spec.height + 2 * margin, spec.width + 2 * margin
    hue = rng.uniform(0.0, 180.0)
    dark = _hsv(hue + rng.uniform(-15, 15), rng.uniform(0.15, 0.6), rng.uniform(0.15, 0.45))
    light = _hsv(hue + rng.uniform(-15, 15), rng.uniform(0.1, 0.5), rng.uniform(0.55, 0.95))
    base = _fractal_noise(rng, height, width, cells=int(rng.integers(2, 6)))
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
        colour = _hsv(rng.uniform(0, 180), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.95))
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


def _camera_path(rng: np.random.Generator, spec: SyntheticSpec, margin: int) -> np.ndarray:
    """A slow pan over the canvas with a slight zoom, never looking past its border."""
    t = np.linspace(0.0, 1.0, spec.source_frames)
    zoom = 1.0 - rng.uniform(0.0, 0.1) * (0.5 + 0.5 * _wave(rng, t))
    corner = _bspline(rng.uniform(0, 2 * margin, (5, 2)), spec.source_frames)
    return np.column_stack([corner, zoom])


def _lighting(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Per-frame colour transforms: brightness, contrast and a tint drifting slowly."""
    t = np.linspace(0.0, 1.0, spec.source_frames)
    drift = spec.lighting_drift
    # A steady trend (up or down) plus a slow wave, so every video sees its light change.
    trend = rng.choice([-1.0, 1.0]) * (2.0 * t - 1.0)
    brightness = 1.0 + drift * (0.6 * trend + 0.4 * _wave(rng, t))
    contrast = 1.0 + 0.5 * drift * _wave(rng, t)
    tint = 1.0 + 0.25 * drift * np.column_stack([_wave(rng, t) for _ in range(3)])
    transforms = np.zeros((spec.source_frames, 3, 4), np.float32)
    for channel in range(3):
        transforms[:, channel, channel] = brightness * contrast * tint[:, channel]
        transforms[:, channel, 3] = brightness * (1.0 - contrast) * 128.0 * tint[:, channel]
    return transforms


def _wave(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Less than one slow cycle of a sine: a drift rather than a flicker."""
    return np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0.0, 2 * np.pi))


def _fractal_noise(
    rng: np.random.Generator, height: int, width: int, cells: int, octaves: int = 3
) -> np.ndarray:
    """Smooth value noise in [0, 1]: random grids upsampled and summed at halving amplitudes."""
    total = np.zeros((height, width), np.float32)
    for octave in range(octaves):
        grid = rng.random((cells * 2**octave + 1, cells * 2**octave + 1), dtype=np.float32)
        total += 0.5**octave * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """A float32 BGR colour (0..255) from OpenCV's hue (0..180) and saturation and value in 0..1."""
    pixel = np.array([[[hue % 180.0, 255 * saturation, 255 * value]]], np.float32)
    bgr = cv2.cvtColor(pixel.round().clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    return bgr[0, 0].astype(np.float32)


# --- Writing --------------------------------------------------------------------------------


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode ``frames`` with OpenCV's 'mp4v' into a temporary file, then move it into place."""
    # The temporary name ends in .mp4: OpenCV picks the container from the extension.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    try:
        height, width = frames.shape[1:3]
        writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not writer.isOpened():
            raise BadVideoError(
                str(path), "OpenCV cannot open an 'mp4v' MP4 writer (a build without FFmpeg?)"
            )
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
