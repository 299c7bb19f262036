"""Tiny training pieces shared by the training tests (not a test module itself).

Synthetic videos of a few 64x64 frames and a ``sam2-compact``-shaped model at 128 px keep a
training step at a fraction of a second on one CPU thread; the equivalence tests that compare
with inference use the real ``sam2-compact`` at 256 px instead.
"""

from __future__ import annotations

import torch
from transformers import Sam2VideoModel

from engine.model_loading import DeviceChoice
from engine.segmenter_config import sam2_compact_config
from engine.synthetic import SyntheticSpec, generate_video
from training.videos import TrainingVideo, synthetic_training_video

torch.set_num_threads(1)  # the machine is shared; every test here is sized for one thread

CPU = DeviceChoice(torch.device("cpu"), None)
SMALL_SIDE = 128  # input side of the small training model


def tiny_spec(*, objects: int = 1, side: int = 64, frames: int = 12) -> SyntheticSpec:
    """``frames`` sampled frames (source at the 6 FPS sampling rate), no forced events, no parts."""
    return SyntheticSpec(
        width=side, height=side, objects=objects, parts=0, force_events=False, source_frames=frames, source_fps=6
    )


def tiny_video(seed: int = 3, *, objects: int = 1, side: int = 64, frames: int = 12) -> TrainingVideo:
    return synthetic_training_video(generate_video(f"tiny-{seed}", seed, tiny_spec(objects=objects, side=side, frames=frames)))


def small_model(seed: int = 0, side: int = SMALL_SIDE) -> Sam2VideoModel:
    """``sam2-compact``'s architecture at ``side`` px with seeded random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam2VideoModel(sam2_compact_config(side))


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers that differ (bit for bit) between two models."""
    right = b.state_dict()
    return [name for name, value in a.state_dict().items() if not torch.equal(value, right[name])]
