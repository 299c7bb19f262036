"""A tiny synthetic video, in memory or ingested, for the auto-masklet and tracking tests (not a test module)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from engine.ingest import ingest_file
from engine.settings import Settings
from engine.synthetic import SyntheticSpec, SyntheticVideo, generate_video, write_synthetic_video
from storage.catalog import Catalog
from storage.objects import LocalObjectStore
from storage.video_catalog import SqlVideoCatalog

# 96x64, 32 source frames at 24 FPS sampled at 6 FPS: 8 frames, two objects (and a part).
TINY = SyntheticSpec(width=96, height=64, source_frames=32, objects=2)


def tiny_video(seed: int = 1) -> SyntheticVideo:
    return generate_video("syn_tiny", seed, TINY)


def sampled_rgb(video: SyntheticVideo) -> np.ndarray:
    """The sampled frames as the models take them: ``(frames, h, w, 3)`` RGB."""
    return np.ascontiguousarray(video.frames[video.sampled_frames][..., ::-1])


def ingest_tiny(tmp_path: Path, catalog: Catalog, seed: int = 1) -> tuple[LocalObjectStore, str, SyntheticVideo]:
    """Write the tiny video as MP4 + SA-V JSON and ingest it; the store, its video id, the video."""
    video = tiny_video(seed)
    mp4, _ = write_synthetic_video(tmp_path / "videos", video)
    store = LocalObjectStore(tmp_path / "objects")
    result = ingest_file(mp4, store=store, catalog=SqlVideoCatalog(catalog), settings=Settings())
    assert result.video_id is not None and result.frames == len(video.sampled_frames)
    return store, result.video_id, video


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: on two cores shared with other test processes, two torch
    threads wait on each other and a propagation runs up to ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
