"""Reproducible sets of synthetic videos: their ids, their seeds, and :func:`synthesize`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.synthetic.files import write_synthetic_video
from engine.synthetic.generate import SyntheticVideo, generate_video
from engine.synthetic.spec import DEFAULT_SPEC, SyntheticSpec


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
