"""Training clips: shapes, time reversal, objects visible where they are prompted, augmentation alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.frame_source import ArrayFrames
from training.clips import IMAGE_MEAN, IMAGE_STD, ClipSpec, frames_to_pixels, make_clip, sample_clip
from training.videos import TrainingVideo

FRAMES, HEIGHT, WIDTH = 6, 48, 64
RED, LATE, EDGE = 1, 2, 3  # object ids


def _video() -> TrainingVideo:
    """A red square moving right on grey; a blue bar that enters at frame 3; a green dot on the
    right edge (cropping easily cuts it off). Colour tells where each object is in the pixels."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    grey = (60 + x // 2 + y // 3).astype(np.uint8)
    frames = np.repeat(np.stack([grey, grey, grey], axis=-1)[None], FRAMES, axis=0)
    masks = {RED: [], LATE: [], EDGE: []}
    for t in range(FRAMES):
        red = (y >= 10) & (y < 24) & (x >= 6 + 3 * t) & (x < 20 + 3 * t)
        late = (y >= 32) & (y < 40) & (x >= 30) & (x < 50) & (t >= 3)
        edge = (y >= 20) & (y < 26) & (x >= WIDTH - 4)
        frames[t][red] = (230, 20, 20)
        frames[t][late] = (20, 20, 230)
        frames[t][edge] = (20, 230, 20)
        for object_id, mask in ((RED, red), (LATE, late), (EDGE, edge)):
            masks[object_id].append(encode(mask))
    masklets = tuple(Masklet("clips", o, MaskletSource.MANUAL, tuple(m)) for o, m in masks.items())
    return TrainingVideo("clips", ArrayFrames(frames), masklets)


VIDEO = _video()


def _rgb(pixels: torch.Tensor) -> torch.Tensor:
    """Normalised ``(T, 3, S, S)`` pixels back to 0..255 RGB."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (pixels * std + mean) * 255


def test_a_clip_has_model_ready_pixels_and_binary_masks_of_a_few_consecutive_frames() -> None:
    clip = sample_clip(VIDEO, np.random.default_rng(0), 32, ClipSpec(frames=3))

    assert clip is not None and clip.video_id == "clips"
    assert clip.pixels.shape == (3, 3, 32, 32) and clip.pixels.dtype == torch.float32
    assert clip.masks.shape == (3, clip.object_count, 32, 32) and 1 <= clip.object_count <= 3
    assert set(clip.masks.unique().tolist()) <= {0.0, 1.0}
    assert set(clip.object_ids) <= {RED, LATE, EDGE} and len(set(clip.object_ids)) == clip.object_count
    steps = np.diff(clip.frame_indices)
    assert len(clip.frame_indices) == 3 and (np.all(steps == 1) or np.all(steps == -1))


def test_at_most_max_objects_and_a_clip_never_longer_than_its_video() -> None:
    clip = sample_clip(VIDEO, np.random.default_rng(1), 32, ClipSpec(frames=20, max_objects=1))
    assert clip.frame_count == FRAMES and clip.object_count == 1


def test_time_reversal_plays_the_same_frames_backwards() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        forward = sample_clip(VIDEO, rng, 32, ClipSpec(frames=3, reverse_p=0.0))
        backward = sample_clip(VIDEO, rng, 32, ClipSpec(frames=3, reverse_p=1.0))
        assert np.all(np.diff(forward.frame_indices) == 1) and np.all(np.diff(backward.frame_indices) == -1)

    ahead = make_clip(VIDEO, [1, 2, 3], [RED, LATE], 32)
    behind = make_clip(VIDEO, [3, 2, 1], [RED, LATE], 32)
    assert torch.equal(behind.pixels, ahead.pixels.flip(0)) and torch.equal(behind.masks, ahead.masks.flip(0))


def test_every_object_of_a_clip_is_visible_on_its_first_frame_whatever_the_crop() -> None:
    rng = np.random.default_rng(3)
    dropped_edge = 0
    for _ in range(100):
        clip = sample_clip(VIDEO, rng, 32, ClipSpec(frames=3))
        first = clip.masks[0].flatten(1).sum(dim=1)
        assert (first > 0).all(), f"{clip.object_ids} on frames {clip.frame_indices}: {first.tolist()}"
        if LATE in clip.object_ids:  # it enters at frame 3: only clips starting there may hold it
            assert clip.frame_indices[0] >= 3
        dropped_edge += EDGE not in clip.object_ids
    # The green dot sits on the right edge: some crops cut it off, and it is dropped from those clips.
    assert dropped_edge > 0


def test_a_video_whose_objects_appear_only_at_its_end_gives_clips_only_backwards() -> None:
    masks = [encode(np.zeros((HEIGHT, WIDTH), bool))] * (FRAMES - 1) + [VIDEO.masklets[0].masks[-1]]
    video = TrainingVideo("late", VIDEO.frames, (Masklet("late", 1, MaskletSource.MANUAL, tuple(masks)),))
    rng = np.random.default_rng(4)
    assert sample_clip(video, rng, 32, ClipSpec(frames=3, reverse_p=0.0)) is None
    clip = sample_clip(video, rng, 32, ClipSpec(frames=3, reverse_p=1.0))
    assert clip.frame_indices == (5, 4, 3)


def test_a_horizontal_flip_flips_frames_and_masks_alike() -> None:
    still = ClipSpec(frames=3, min_scale=1.0, brightness=0, contrast=0, saturation=0, grayscale_p=0, reverse_p=0)
    rng = np.random.default_rng(5)
    plain = make_clip(VIDEO, [0, 1, 2], [RED], 64, rng, ClipSpec(**{**still.__dict__, "hflip_p": 0.0}))
    flipped = make_clip(VIDEO, [0, 1, 2], [RED], 64, rng, ClipSpec(**{**still.__dict__, "hflip_p": 1.0}))

    assert torch.equal(flipped.masks, plain.masks.flip(-1))
    assert torch.allclose(flipped.pixels, plain.pixels.flip(-1), atol=1e-5)
    assert not torch.equal(flipped.masks, plain.masks)  # the square is off-centre: a flip shows


def test_crops_flips_and_colour_jitter_keep_every_mask_on_its_object() -> None:
    spec = ClipSpec(frames=3, grayscale_p=0.0)  # grey frames would hide which colour is where
    rng = np.random.default_rng(6)
    for _ in range(20):
        clip = sample_clip(VIDEO, rng, 64, spec)
        rgb = _rgb(clip.pixels)
        colours = {RED: 0, LATE: 2, EDGE: 1}  # the channel each object is painted in
        for k, object_id in enumerate(clip.object_ids):
            channel = colours[object_id]
            others = [c for c in range(3) if c != channel]
            painted = (rgb[:, channel] - rgb[:, others].max(dim=1).values) > 100  # (T, S, S)
            mask = clip.masks[:, k] > 0
            agreement = (painted == mask).float().mean().item()
            assert agreement > 0.98, f"object {object_id}: its mask covers its pixels at only {agreement:.1%}"


def test_pixels_are_normalised_exactly_as_the_sam_2_video_processor_does() -> None:
    from transformers import Sam2VideoVideoProcessor

    frames = np.stack([VIDEO.frames.load(i) for i in range(2)])
    expected = Sam2VideoVideoProcessor(size={"height": 40, "width": 40})(videos=[frames], return_tensors="pt")
    assert torch.equal(frames_to_pixels(frames, 40), expected["pixel_values_videos"][0])


@pytest.mark.parametrize("object_ids", [[9], [RED, 9]])
def test_asking_for_an_object_the_video_does_not_have_is_an_error(object_ids) -> None:
    from engine.errors import BadMaskError

    with pytest.raises(BadMaskError, match=r"no masklet\(s\) \[9\]"):
        make_clip(VIDEO, [0, 1], object_ids, 32)
