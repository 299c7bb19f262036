"""Training clips, sampled from videos as SAM 2's training does.

A clip is 8 consecutive sampled frames (the annotation rate, 6 FPS in SA-V) with up to 3
masklets visible on its first frame, time-reversed with probability 0.5, flipped, rescaled and
colour-jittered the same way on every frame (an object must look like itself from frame to frame
for the memory to learn anything). Frames are squashed into the model's square input exactly as
the video processor does at inference, so training and inference see the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Sam2VideoVideoProcessor

from engine.errors import BadMaskError
from engine.masks import area, decode
from training.videos import TrainingVideo

IMAGE_MEAN = (0.485, 0.456, 0.406)  # the SAM 2 processors' normalisation (ImageNet)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut and augmented; the defaults are SAM 2's training recipe."""

    frames: int = 8
    max_objects: int = 3
    reverse_p: float = 0.5
    hflip_p: float = 0.5
    min_scale: float = 0.7  # side of the random crop, relative to the frame
    brightness: float = 0.1  # SAM 2's consistent colour jitter
    contrast: float = 0.03
    saturation: float = 0.03
    grayscale_p: float = 0.05
    augment: bool = True


EVAL_CLIPS = ClipSpec(augment=False, reverse_p=0.0)


@dataclass(frozen=True)
class Clip:
    """Model-ready frames and masks of a few objects over a few frames."""

    video_id: str
    object_ids: tuple[int, ...]
    frame_indices: tuple[int, ...]  # sampled-frame indices, in the clip's (possibly reversed) order
    pixels: torch.Tensor  # (T, 3, S, S) float32, normalised
    masks: torch.Tensor  # (T, K, S, S) float32 in {0, 1}

    @property
    def frame_count(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def object_count(self) -> int:
        return int(self.masks.shape[1])


def sample_clip(video: TrainingVideo, rng: np.random.Generator, size: int, spec: ClipSpec = ClipSpec()) -> Clip | None:
    """One random clip of ``video`` at the model's input ``size``; None when no window has a visible object."""
    length = min(spec.frames, video.frame_count)
    reverse = spec.augment and rng.random() < spec.reverse_p
    for start in rng.permutation(video.frame_count - length + 1):
        indices = list(range(int(start), int(start) + length))
        if reverse:
            indices.reverse()
        visible = [m for m in video.masklets if area(m.masks[indices[0]]) > 0]
        if visible:
            chosen = [visible[i] for i in sorted(rng.choice(len(visible), min(spec.max_objects, len(visible)), replace=False))]
            clip = make_clip(video, indices, [m.object_id for m in chosen], size, rng if spec.augment else None, spec)
            clip = _visible_on_first_frame(clip)
            if clip is not None:
                return clip
    return None


def _visible_on_first_frame(clip: Clip) -> Clip | None:
    """The clip without the objects its crop or resizing left off its first frame; None if none is left.

    Every object of a clip is prompted on its first frame; one that is not there (cropped out,
    or too small to survive the resize) would teach the model to find an object from an empty
    mask or a click on the background.
    """
    keep = [k for k in range(clip.object_count) if bool(clip.masks[0, k].any())]
    if len(keep) == clip.object_count:
        return clip
    if not keep:
        return None
    return replace(clip, object_ids=tuple(clip.object_ids[k] for k in keep), masks=clip.masks[:, keep])


def make_clip(
    video: TrainingVideo,
    indices: list[int],
    object_ids: list[int],
    size: int,
    rng: np.random.Generator | None = None,
    spec: ClipSpec = EVAL_CLIPS,
) -> Clip:
    """The clip of ``indices`` (in that order) and ``object_ids``; augmented when ``rng`` is given."""
    by_id = {m.object_id: m for m in video.masklets}
    missing = [o for o in object_ids if o not in by_id]
    if missing:
        raise BadMaskError(f"training video {video.video_id} has no masklet(s) {missing}")
    frames = np.stack([video.frames.load(i) for i in indices])
    masks = np.stack([[decode(by_id[o].masks[i]) for o in object_ids] for i in indices]).astype(np.float32)
    if rng is not None:
        frames, masks = _augment(frames, masks, rng, spec)
    return Clip(
        video_id=video.video_id,
        object_ids=tuple(object_ids),
        frame_indices=tuple(indices),
        pixels=frames_to_pixels(frames, size),
        masks=masks_to_size(torch.from_numpy(masks), size),
    )


def frames_to_pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 RGB -> ``(T, 3, size, size)`` normalised by the SAM 2 video processor itself.

    The very processor inference runs (:class:`engine.video_session.VideoSession`): it resizes
    the uint8 frames (rounding to uint8) and normalises with ImageNet's mean and std fused with
    the 1/255 rescale, so a re-implementation differs by a grey level here and a float rounding
    there; the same call gives the same pixels, bit for bit.
    """
    processed = _video_processor(size)(videos=[np.ascontiguousarray(frames)], return_tensors="pt")
    return processed["pixel_values_videos"][0]


@lru_cache(maxsize=4)
def _video_processor(size: int) -> Sam2VideoVideoProcessor:
    return Sam2VideoVideoProcessor(size={"height": size, "width": size})


def masks_to_size(masks: torch.Tensor, size: int) -> torch.Tensor:
    """``(T, K, H, W)`` {0, 1} masks -> ``(T, K, size, size)``: area-resampled, then thresholded at a half."""
    if masks.shape[-2:] == (size, size):
        return masks.float()
    resized = F.interpolate(masks.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (resized > 0.5).float()


def _augment(
    frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, spec: ClipSpec
) -> tuple[np.ndarray, np.ndarray]:
    """One random transform applied to every frame alike (and the geometric part to the masks)."""
    height, width = frames.shape[1:3]
    scale = rng.uniform(spec.min_scale, 1.0)
    crop_h, crop_w = max(8, round(height * scale)), max(8, round(width * scale))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    frames = frames[:, top : top + crop_h, left : left + crop_w]
    masks = masks[:, :, top : top + crop_h, left : left + crop_w]
    if rng.random() < spec.hflip_p:
        frames = frames[:, :, ::-1]
        masks = masks[:, :, :, ::-1]
    frames = _colour_jitter(frames.astype(np.float32), rng, spec)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), np.ascontiguousarray(masks)  # rounded, not truncated


def _colour_jitter(frames: np.ndarray, rng: np.random.Generator, spec: ClipSpec) -> np.ndarray:
    frames = frames * rng.uniform(1 - spec.brightness, 1 + spec.brightness)
    grey = frames @ np.array([0.299, 0.587, 0.114], np.float32)
    contrast = rng.uniform(1 - spec.contrast, 1 + spec.contrast)
    frames = (frames - grey.mean()) * contrast + grey.mean()
    saturation = rng.uniform(1 - spec.saturation, 1 + spec.saturation)
    frames = grey[..., None] + (frames - grey[..., None]) * saturation
    if rng.random() < spec.grayscale_p:
        frames = np.repeat((frames @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=-1)
    return frames
