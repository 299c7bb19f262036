"""Writing a synthetic video to disk: its MP4 and its SA-V JSON, each file atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from engine.errors import BadVideoError
from engine.sav import SavVideo, to_sav
from engine.synthetic.generate import SyntheticVideo

ENVIRONMENT = "Synthetic"


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
