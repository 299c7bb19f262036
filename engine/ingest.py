"""Ingestion: a video file becomes sampled JPEG frames in the object store and rows in the catalog.

The order of work makes ingestion safe to interrupt and to repeat: the file is validated and
hashed first (the same content is never ingested twice), frames are written to the object
store next, and the catalog rows (video, frames, ground truth) are committed last, in one
transaction. A failure at any step removes the frames already written, so a bad file leaves
no catalog row and no orphan objects behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from engine.errors import (
    BadAnnotationFileError,
    BadVideoError,
    DataEngineError,
    DuplicateVideoError,
)
from engine.masklets import Masklet, MaskletSource
from engine.ports import ObjectStore, VideoCatalog
from engine.sav import from_sav
from engine.settings import Settings
from engine.video import (
    VIDEO_SUFFIXES,
    Frame,
    Video,
    decode_sampled,
    probe,
    sample_indices,
    video_name,
)

HASH_CHUNK = 4 << 20
IN_FLIGHT_FRAMES = 8  # bounded, so long videos do not fill memory while frames are stored


class IngestStatus(StrEnum):
    INGESTED = "ingested"
    ALREADY_PRESENT = "already_present"
    FAILED = "failed"


@dataclass(frozen=True)
class IngestResult:
    """What happened to one source file."""

    source: str
    status: IngestStatus
    video_id: str | None = None
    frames: int = 0
    ground_truth_masklets: int = 0
    error: str | None = None


def frame_key(video_id: str, index: int) -> str:
    """Where sampled frame ``index`` of a video lives in the object store."""
    return f"videos/{video_id}/frames/{index:05d}.jpg"


def frames_prefix(video_id: str) -> str:
    return f"videos/{video_id}/frames/"


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ground_truth_beside(path: Path) -> Path | None:
    """The SA-V JSON lying beside a video (``stem.json`` or SA-V's ``stem_manual.json``)."""
    for candidate in (path.with_suffix(".json"), path.with_name(f"{path.stem}_manual.json")):
        if candidate.is_file():
            return candidate
    return None


def ingest_file(
    path: Path,
    *,
    store: ObjectStore,
    catalog: VideoCatalog,
    settings: Settings,
    source_uri: str | None = None,
    ground_truth_path: Path | None = None,
    load_ground_truth: bool = True,
) -> IngestResult:
    """Ingest one video file; raises BadVideoError (or another DataEngineError) on bad input.

    ``ground_truth_path`` defaults to an SA-V JSON beside the file; its masklets become the
    video's ground truth and must match the video's sampled frames exactly. With
    ``load_ground_truth=False`` no ground truth is loaded (an importer decides itself what an
    SA-V file's masklets become).
    """
    source = source_uri or str(path)
    name = video_name(source)
    probed = probe(
        path,
        min_side=settings.min_frame_side,
        max_side=settings.max_frame_side,
        max_frames=settings.max_video_frames,
    )
    digest = content_hash(path)
    existing = catalog.video_by_hash(digest)
    if existing is not None:
        return IngestResult(source, IngestStatus.ALREADY_PRESENT, existing.id, existing.frame_count)

    video_id = _free_id(name, digest, catalog.taken_video_ids(name))
    indices = sample_indices(probed.frame_count, probed.fps, settings.sample_fps)
    gt_path = (ground_truth_path or ground_truth_beside(path)) if load_ground_truth else None
    try:
        frames, sizes = _store_frames(path, video_id, indices, probed.fps, store, settings.jpeg_quality, source)
        video = Video(
            id=video_id,
            source_uri=source,
            content_hash=digest,
            width=probed.width,
            height=probed.height,
            source_fps=probed.fps,
            source_frame_count=probed.frame_count,
            duration_s=probed.frame_count / probed.fps,
            sample_fps=settings.sample_fps,
            frame_count=len(frames),
        )
        truth = _load_ground_truth(gt_path, video) if gt_path is not None else []
        catalog.add_video(video, frames, sizes, truth)
    except DuplicateVideoError:
        store.delete_prefix(frames_prefix(video_id))
        winner = catalog.video_by_hash(digest)
        if winner is None:
            raise
        return IngestResult(source, IngestStatus.ALREADY_PRESENT, winner.id, winner.frame_count)
    except BaseException:
        # Nothing half-written stays visible: no catalog row was committed, so remove the frames.
        store.delete_prefix(frames_prefix(video_id))
        raise
    return IngestResult(source, IngestStatus.INGESTED, video_id, len(frames), len(truth))


def ingest_many(
    items: Iterable[tuple[Path, str]],
    ingest_one: Callable[[Path, str], IngestResult],
) -> list[IngestResult]:
    """Ingest each ``(local path, source uri)``; one bad file is reported, not fatal."""
    results = []
    for path, uri in items:
        try:
            results.append(ingest_one(path, uri))
        except DataEngineError as exc:
            results.append(IngestResult(uri, IngestStatus.FAILED, error=str(exc)))
    return results


def is_video_file(name: str) -> bool:
    return name.lower().endswith(VIDEO_SUFFIXES)


def _free_id(name: str, digest: str, taken: set[str]) -> str:
    """The file's stem, or stem-<hash prefix> when another video already has that id."""
    if name not in taken:
        return name
    for length in (8, 12, 16, 64):
        candidate = f"{name}-{digest[:length]}"
        if candidate not in taken:
            return candidate
    raise DuplicateVideoError(f"no free video id for {name!r}")


def _store_frames(
    path: Path,
    video_id: str,
    indices: Sequence[int],
    fps: float,
    store: ObjectStore,
    quality: int,
    source: str,
) -> tuple[list[Frame], list[int]]:
    """Decode the sampled frames and write them as JPEGs, encoding and writing off the decode thread."""
    frames: list[Frame] = []
    sizes: list[int] = []
    pending: deque[tuple[Frame, Future[int]]] = deque()
    last_source_index = -1

    def store_one(key: str, image: np.ndarray) -> int:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise BadVideoError(source, f"could not encode frame as JPEG ({key})")
        data = encoded.tobytes()
        store.put(key, data)
        return len(data)

    def drain(limit: int) -> None:
        while len(pending) > limit:
            frame, future = pending.popleft()
            sizes.append(future.result())
            frames.append(frame)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest") as pool:
        try:
            for sample, source_index, image in decode_sampled(path, list(indices)):
                frame = Frame(video_id, sample, source_index, source_index / fps, frame_key(video_id, sample))
                pending.append((frame, pool.submit(store_one, frame.object_key, image)))
                last_source_index = source_index
                drain(IN_FLIGHT_FRAMES)
            drain(0)
        finally:
            for _, future in pending:
                future.cancel()
    if not frames:
        raise BadVideoError(source, "no frames could be decoded")
    if len(frames) < len(indices):
        _check_not_truncated(source, last_source_index, indices)
    return frames, sizes


def _check_not_truncated(source: str, last_decoded: int, indices: Sequence[int]) -> None:
    """Containers may over-count a frame or two; more missing than one sampling step is truncation."""
    step = (indices[1] - indices[0]) if len(indices) > 1 else 1
    expected_last = indices[-1]
    if expected_last - last_decoded > step + 2:
        raise BadVideoError(
            source,
            f"truncated: decoding stopped at source frame {last_decoded}, "
            f"the container promises frames up to {expected_last}",
        )


def _load_ground_truth(path: Path, video: Video) -> list[Masklet]:
    """Parse the SA-V JSON beside a video as its ground truth; it must fit the sampled frames."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadAnnotationFileError(f"{path}: not a readable SA-V JSON ({exc})") from exc
    annotation = from_sav(obj, source=MaskletSource.GROUND_TRUTH, origin=str(path))
    masklets = [dataclasses.replace(m, video_id=video.id) for m in annotation.masklets]
    for m in masklets:
        if (m.height, m.width) != (video.height, video.width):
            raise BadAnnotationFileError(
                f"{path}: masks are {m.height}x{m.width}, the video is {video.height}x{video.width}"
            )
        if m.frame_count != video.frame_count:
            raise BadAnnotationFileError(
                f"{path}: {m.frame_count} annotated frames, the video samples {video.frame_count} "
                f"at {video.sample_fps:g} FPS"
            )
    return masklets
