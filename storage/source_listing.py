"""The video files behind ingestion sources, one source string per video.

The ingest flow ingests one video per task (a task is the unit of retry, and a folder of a
thousand videos must not be one task that restarts from the first video), so it first lists
what its sources hold: a local file stays itself, a folder becomes its video files (by name,
not recursive) and an ``s3://bucket/prefix`` becomes the URL of each video object under it.
Each listed source is something :func:`storage.ingest_sources.ingest_sources` ingests alone,
under the same source URI a whole-folder ingestion would have recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DataEngineError
from engine.ingest import is_video_file
from engine.settings import Settings
from storage.objects import open_object_store


@dataclass(frozen=True)
class ListedSources:
    """The videos found, and the sources that could not be listed with the reason."""

    videos: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...] = ()  # (source, error)


def list_video_sources(sources: Sequence[str], settings: Settings) -> ListedSources:
    """Every video named by ``sources``, in order, each once."""
    videos: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for source in sources:
        try:
            found = _s3_videos(source, settings) if source.startswith("s3://") else _local_videos(Path(source))
        except DataEngineError as exc:
            unreadable.append((source, str(exc)))
            continue
        videos += [v for v in found if v not in videos]
    return ListedSources(tuple(videos), tuple(unreadable))


def _local_videos(path: Path) -> list[str]:
    if path.is_dir():
        return [str(p.resolve()) for p in sorted(path.iterdir()) if p.is_file() and is_video_file(p.name)]
    if path.is_file():
        return [str(path.resolve())]
    raise DataEngineError(f"{path}: no such file or folder")


def _s3_videos(url: str, settings: Settings) -> list[str]:
    root = url.rstrip("/")
    leaf = root[len("s3://") :].rsplit("/", 1)[-1] if "/" in root[len("s3://") :] else ""
    if leaf and is_video_file(leaf):
        return [root]
    store = open_object_store(settings.model_copy(update={"object_store_url": root}))
    return [f"{root}/{key}" for key in sorted(store.list()) if is_video_file(key)]
