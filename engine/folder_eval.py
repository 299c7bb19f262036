"""Evaluate predicted masks saved as PNG folders against ground truth, as SA-V's evaluator does.

Two layouts, told apart per video by the ground truth, and the prediction must use the same:

* SA-V val/test: ``{video}/{object:03d}/{frame:05d}.png``, one binary PNG per object and
  frame (any nonzero value is foreground);
* DAVIS: ``{video}/{frame:05d}.png``, one indexed (palette) PNG per frame whose pixel values
  are object ids, 0 = background.

Only frames with a ground-truth PNG are scored, and each needs a prediction PNG of the same
name and size: a missing one is an error, as in the reference (write an empty mask where the
object is not visible). Predictions for frames without ground truth, and prediction videos
the ground truth does not list, are ignored. Scoring rules are those of :mod:`engine.jf`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from engine import jf
from engine.errors import BadFolderLayoutError, BadMaskError, NotFoundError


@dataclass(frozen=True, slots=True)
class _Pair:
    """Where one frame's ground truth and prediction live."""

    gt: Path
    pred: Path


def evaluate_folders(
    gt_root: Path,
    pred_root: Path,
    *,
    skip_first_last: bool = True,
    workers: int = 1,
    bound_th: float = jf.BOUND_TH,
) -> jf.EvaluationResult:
    """Score every video under ``gt_root`` against the same-named folder under ``pred_root``.

    ``skip_first_last`` (the SA-V val/test and DAVIS convention) drops each object's first and
    last annotated frame; ``workers`` > 1 scores videos in that many processes.
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    videos = list_videos(gt_root)
    _require_dir(pred_root, "prediction root")
    score = partial(evaluate_video, gt_root, pred_root, skip_first_last=skip_first_last, bound_th=bound_th)
    if workers > 1 and len(videos) > 1:
        # "spawn", not fork: a process that has started torch's (or any) thread pools can
        # deadlock in a forked child that inherits their locks.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(videos)), initializer=_init_worker, mp_context=context
        ) as pool:
            per_video = list(pool.map(score, videos))
    else:
        per_video = [score(video_id) for video_id in videos]
    return jf.summarize(row for rows in per_video for row in rows)


def list_videos(gt_root: Path) -> list[str]:
    """Names of the video folders under a ground-truth root, sorted."""
    _require_dir(gt_root, "ground-truth root")
    videos = sorted(p.name for p in gt_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not videos:
        raise BadFolderLayoutError(f"{gt_root}: no video folders; expected {{video}}/... folders of PNG masks")
    return videos


def evaluate_video(
    gt_root: Path,
    pred_root: Path,
    video_id: str,
    *,
    skip_first_last: bool = True,
    bound_th: float = jf.BOUND_TH,
) -> list[jf.ObjectScore]:
    """Scores of the objects of one video, in object order."""
    gt_dir, pred_dir = Path(gt_root) / video_id, Path(pred_root) / video_id
    _require_dir(gt_dir, "ground-truth video folder")
    object_dirs = sorted(p for p in gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    frames = [] if object_dirs else _png_names(gt_dir)
    if not object_dirs and not frames:
        raise BadFolderLayoutError(f"{gt_dir}: neither object folders (SA-V layout) nor PNG frames (DAVIS layout)")
    if not pred_dir.is_dir():
        raise NotFoundError(f"{pred_dir}: no prediction folder for video {video_id!r} (ground truth: {gt_dir})")
    if object_dirs:
        return _evaluate_sav_video(video_id, object_dirs, pred_dir, skip_first_last, bound_th)
    pairs = jf.frames_to_score([_Pair(gt_dir / name, pred_dir / name) for name in frames], skip_first_last)
    return jf.score_label_video(video_id, _read_labels(pairs), skip_first_last=False, bound_th=bound_th)


def read_png(path: Path) -> np.ndarray:
    """Pixel values of a single-channel PNG (palette PNGs give their indices, not colours)."""
    try:
        with Image.open(path) as image:
            values = np.asarray(image)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path}: no such mask file") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadMaskError(f"{path}: not a readable PNG ({exc})") from exc
    if values.ndim != 2:
        raise BadMaskError(
            f"{path}: a mask PNG must have one channel (mode L, P or 1), got shape {values.shape}"
        )
    return values


def _evaluate_sav_video(
    video_id: str, object_dirs: Sequence[Path], pred_dir: Path, skip_first_last: bool, bound_th: float
) -> list[jf.ObjectScore]:
    rows = []
    for object_dir in object_dirs:
        object_id = _object_id(object_dir)
        names = jf.frames_to_score(_png_names(object_dir), skip_first_last)
        pairs = [_Pair(object_dir / name, pred_dir / object_dir.name / name) for name in names]
        row = jf.score_object(video_id, object_id, _read_binary(pairs), skip_first_last=False, bound_th=bound_th)
        if row is not None:
            rows.append(row)
    return rows


def _read_binary(pairs: Sequence[_Pair]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(prediction, ground truth) binary masks, read one frame at a time."""
    for pair in pairs:
        gt, pred = _read_same_size(pair)
        yield _binary(pred, pair.pred), _binary(gt, pair.gt)


def _read_labels(pairs: Sequence[_Pair]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(prediction, ground truth) label maps, read one frame at a time."""
    for pair in pairs:
        gt, pred = _read_same_size(pair)
        yield pred, gt


def _read_same_size(pair: _Pair) -> tuple[np.ndarray, np.ndarray]:
    if not pair.pred.is_file():
        raise NotFoundError(
            f"{pair.pred}: missing prediction for ground-truth frame {pair.gt}; "
            "every scored ground-truth frame needs one (save an empty mask if the object is not visible)"
        )
    gt, pred = read_png(pair.gt), read_png(pair.pred)
    if gt.shape != pred.shape:
        raise BadMaskError(f"{pair.pred}: size {pred.shape} differs from the ground truth {gt.shape} in {pair.gt}")
    return gt, pred


def _binary(values: np.ndarray, path: Path) -> np.ndarray:
    """Foreground of an SA-V mask PNG, which must hold one object (at most one nonzero value)."""
    if values.dtype == np.bool_:
        return values
    foreground = values > 0
    top = values.max()
    if top > 0 and values.min(where=foreground, initial=top) != top:
        raise BadMaskError(
            f"{path}: more than one object in an SA-V mask PNG (values other than 0 and {top}); "
            "the SA-V layout keeps one object per PNG, in its own folder"
        )
    return foreground


def _object_id(object_dir: Path) -> int:
    try:
        return int(object_dir.name)
    except ValueError as exc:
        raise BadFolderLayoutError(
            f"{object_dir}: object folders must be named by object id (e.g. 000), got {object_dir.name!r}"
        ) from exc


def _png_names(folder: Path) -> list[str]:
    # Lexicographic order, as the reference: frame names are zero-padded.
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise NotFoundError(f"{path}: {what} not found (or not a folder)")


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)
