"""Videos as the engine sees them: probing a file, choosing the frames to sample, decoding them.

SA-V annotates at 6 FPS (every 4th frame of 24 FPS video). :func:`sample_indices` is the one
place that decides which source frames are sampled, so ingestion, synthetic ground truth and
exports agree on what "frame i" of a video is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import BadVideoError


def sample_indices(frame_count: int, source_fps: float, target_fps: float) -> list[int]:
    """Source frame indices sampled at ``target_fps`` from a ``source_fps`` video.

    Sample ``k`` is the source frame nearest to time ``k / target_fps``; every frame when the
    source is no faster than the target. For 24 FPS to 6 FPS that is 0, 4, 8, ...
    """
    if frame_count <= 0:
        return []
    if source_fps <= 0 or not math.isfinite(source_fps):
        raise ValueError(f"source fps must be positive, got {source_fps}")
    if target_fps <= 0:
        raise ValueError(f"target fps must be positive, got {target_fps}")
    step = source_fps / target_fps
    if step <= 1.0:
        return list(range(frame_count))
    indices = []
    k = 0
    while True:
        index = int(math.floor(k * step + 0.5))
        if index >= frame_count:
            return indices
        indices.append(index)
        k += 1


@dataclass(frozen=True)
class Video:
    """A video in the catalog: its source, its geometry, and how it was sampled."""

    id: str
    source_uri: str
    content_hash: str
    width: int
    height: int
    source_fps: float
    source_frame_count: int
    duration_s: float
    sample_fps: float
    frame_count: int
    environment: str = "Unknown"
    split: str = "train"


@dataclass(frozen=True)
class Frame:
    """One sampled frame of a video: ``index`` counts sampled frames, ``source_index`` the file's."""

    video_id: str
    index: int
    source_index: int
    timestamp_s: float
    object_key: str


@dataclass(frozen=True)
class VideoProbe:
    """What OpenCV says about a file before decoding it."""

    width: int
    height: int
    fps: float
    frame_count: int


VIDEO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MAX_FPS = 1000.0


def video_name(source: str) -> str:
    """The video id a file proposes: its stem, if it is a safe name.

    Ids end up in object keys and URLs, so only letters, digits, ``.``, ``_`` and ``-`` pass,
    and never ``..``.
    """
    name = source.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if not VIDEO_NAME.match(stem) or ".." in stem:
        raise BadVideoError(
            source, f"video name {stem!r} must be 1-100 letters, digits, '.', '_' or '-', without '..'"
        )
    return stem


def probe(path: Path, *, min_side: int, max_side: int, max_frames: int) -> VideoProbe:
    """Open ``path`` with OpenCV and check that it is a plausible video."""
    source = str(path)
    if not path.is_file():
        raise BadVideoError(source, "no such file")
    if path.stat().st_size == 0:
        raise BadVideoError(source, "empty file")
    capture = cv2.VideoCapture(source)
    try:
        if not capture.isOpened():
            raise BadVideoError(source, "not a readable video (OpenCV could not open it)")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise BadVideoError(source, "not a readable video (no frame size)")
    if min(width, height) < min_side or max(width, height) > max_side:
        raise BadVideoError(
            source, f"frame size {width}x{height} outside the accepted {min_side}..{max_side} px per side"
        )
    if not math.isfinite(fps) or fps <= 0 or fps > MAX_FPS:
        raise BadVideoError(source, f"implausible frame rate {fps!r}")
    if frame_count <= 0:
        raise BadVideoError(source, "no frames (zero decodable frames)")
    if frame_count > max_frames:
        raise BadVideoError(source, f"{frame_count} frames, more than the accepted {max_frames}")
    return VideoProbe(width, height, fps, frame_count)


def decode_sampled(path: Path, indices: list[int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(sample index, source index, BGR frame)`` for the wanted source frames.

    Every frame is grabbed (video codecs decode sequentially anyway) but only the sampled ones
    are converted to images. Stops early, without error, if the file ends first: callers
    compare what they got with what they asked for.
    """
    wanted = iter(enumerate(indices))
    next_wanted = next(wanted, None)
    capture = cv2.VideoCapture(str(path))
    try:
        source_index = 0
        while next_wanted is not None:
            if not capture.grab():
                return
            if source_index == next_wanted[1]:
                ok, image = capture.retrieve()
                if not ok or image is None:
                    return
                yield next_wanted[0], source_index, image
                next_wanted = next(wanted, None)
            source_index += 1
    finally:
        capture.release()


def decoded_frame_count(path: Path) -> int:
    """Frames OpenCV can actually decode (the container's count can lie)."""
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()
