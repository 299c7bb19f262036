"""Masklets written as SA-V mask folders: ``{root}/{video}/{object:03d}/{frame:05d}.png``.

The layout SA-V's evaluator (and ``dataengine evaluate``) reads: one single-channel PNG per
object and sampled frame, 255 on the object and 0 elsewhere, an empty PNG where the object is
not visible. Each object's folder appears whole: it is written beside its final name and
moved into place, replacing an older folder of the same object.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ExportError
from engine.masklets import Masklet
from engine.masks import decode


def write_sav_folders(root: Path, masklets: Sequence[Masklet]) -> list[Path]:
    """Write each masklet's masks under ``root``; returns the object folders written."""
    written = []
    for masklet in masklets:
        video_dir = Path(root) / masklet.video_id
        try:
            video_dir.mkdir(parents=True, exist_ok=True)
            written.append(_write_object(video_dir, masklet))
        except OSError as exc:
            raise ExportError(f"cannot write masks of {masklet.video_id}/{masklet.object_id} under {root}: {exc}") from exc
    return written


def _write_object(video_dir: Path, masklet: Masklet) -> Path:
    final = video_dir / f"{masklet.object_id:03d}"
    temporary = Path(tempfile.mkdtemp(dir=video_dir, prefix=f".{final.name}."))
    try:
        for index, rle in enumerate(masklet.masks):
            pixels = np.ascontiguousarray(decode(rle), dtype=np.uint8) * 255
            if not cv2.imwrite(str(temporary / f"{index:05d}.png"), pixels):
                raise OSError(f"OpenCV could not write {temporary / f'{index:05d}.png'}")
        temporary.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        temporary.rename(final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final
