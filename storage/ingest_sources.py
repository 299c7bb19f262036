"""Where videos to ingest come from: local files, folders, and S3 prefixes.

Expands each source into video files, brings S3 objects to a temporary local file (OpenCV
decodes local files), and hands each to :func:`engine.ingest.ingest_file`, so that one bad
file is reported without stopping the others.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.errors import DataEngineError
from engine.ingest import IngestResult, IngestStatus, ingest_file, ingest_many, is_video_file
from engine.ports import ObjectStore
from engine.settings import Settings
from storage.catalog import Catalog
from storage.objects import open_object_store
from storage.video_catalog import SqlVideoCatalog


def ingest_sources(
    sources: Sequence[str], *, catalog: Catalog, store: ObjectStore, settings: Settings
) -> list[IngestResult]:
    """Ingest every video named by ``sources``; returns one result per file found."""
    video_catalog = SqlVideoCatalog(catalog)
    results: list[IngestResult] = []
    for source in sources:
        if source.startswith("s3://"):
            results.extend(_ingest_s3(source, video_catalog, store, settings))
            continue
        try:
            files = list(_local_files(Path(source)))
        except DataEngineError as exc:
            results.append(IngestResult(source, IngestStatus.FAILED, error=str(exc)))
            continue
        results.extend(
            ingest_many(
                ((f, str(f.resolve())) for f in files),
                lambda path, uri: ingest_file(
                    path, store=store, catalog=video_catalog, settings=settings, source_uri=uri
                ),
            )
        )
    return results


def _local_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.is_file() and is_video_file(p.name))
    elif path.exists():
        yield path
    else:
        raise DataEngineError(f"{path}: no such file or folder")


def _ingest_s3(url: str, video_catalog: SqlVideoCatalog, store: ObjectStore, settings: Settings) -> list[IngestResult]:
    """Ingest one S3 object (``s3://b/p/v.mp4``) or every video under a prefix (``s3://b/p``)."""
    root, keys = url.rstrip("/"), None
    leaf = root[len("s3://"):].rsplit("/", 1)[-1] if "/" in root[len("s3://"):] else ""
    if leaf and is_video_file(leaf):
        root, keys = root[: -len(leaf) - 1], [leaf]
    try:
        source = open_object_store(settings.model_copy(update={"object_store_url": root}))
        if keys is None:
            keys = [k for k in source.list() if is_video_file(k)]
    except DataEngineError as exc:
        return [IngestResult(url, IngestStatus.FAILED, error=str(exc))]

    def one(key: str, uri: str) -> IngestResult:
        with _downloaded(source, key) as local:
            return ingest_file(local, store=store, catalog=video_catalog, settings=settings, source_uri=uri)

    return ingest_many(((Path(k), f"{root}/{k}") for k in keys), lambda path, uri: one(path.as_posix(), uri))


@contextmanager
def _downloaded(source: ObjectStore, key: str) -> Iterator[Path]:
    """The object as a temporary local file named like the key, with its SA-V JSON if one lies beside it."""
    with tempfile.TemporaryDirectory(prefix="dataengine-ingest-") as tmp:
        name = key.rsplit("/", 1)[-1]
        local = Path(tmp) / name
        source.get_file(key, local)
        stem_key = key[: -len(name)] + name.rsplit(".", 1)[0]
        for suffix in (".json", "_manual.json"):
            if source.exists(stem_key + suffix):
                source.get_file(stem_key + suffix, Path(tmp) / (local.stem + suffix))
        yield local
