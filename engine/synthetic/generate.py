"""generate_video: plan and render a whole video, with its exact ground-truth masklets.

``render_sampled`` renders only the sampled frames (a quarter of them at the default spec), for
training, which never reads the others: the same pixels and masklets, a fraction of the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.synthetic.render import render_frame
from engine.synthetic.scene import Scene, plan_scene
from engine.synthetic.spec import DEFAULT_SPEC, SyntheticSpec


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


def render_sampled(video_id: str, seed: int, spec: SyntheticSpec = DEFAULT_SPEC) -> tuple[list[np.ndarray], tuple[Masklet, ...]]:
    """The sampled frames (BGR, as ``generate_video`` renders them) and the ground-truth masklets.

    A frame is a pure function of the scene and its index, so skipping the frames between
    samples changes no pixel: the result equals ``generate_video``'s sampled frames and masklets.
    """
    scene = plan_scene(spec, seed)
    rendered = [render_frame(scene, index) for index in spec.sampled_frames]
    return [r.image for r in rendered], _masklets(video_id, scene, [r.labels for r in rendered])


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
