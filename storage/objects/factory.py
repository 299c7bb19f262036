"""open_object_store: the one place that turns ``object_store_url`` into a store."""

from __future__ import annotations

from pathlib import Path

from engine.errors import ConfigError
from engine.ports import ObjectStore
from engine.settings import Settings
from storage.objects.local import LocalObjectStore
from storage.objects.s3 import MIB, S3ObjectStore


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.object_store_url`` names.

    ``file://PATH`` is a local folder (a relative PATH is relative to the working directory,
    ``file:///abs/path`` is absolute); ``s3://bucket/prefix`` is S3, configured by the
    ``s3_*`` settings.
    """
    url = settings.object_store_url
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path:
            raise ConfigError(f"object_store_url {url!r} names no folder; use file://PATH")
        return LocalObjectStore(Path(path))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"object_store_url {url!r} names no bucket; use s3://bucket/prefix")
        try:
            return S3ObjectStore(
                bucket,
                prefix,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                max_attempts=settings.s3_max_attempts,
                multipart_threshold_bytes=settings.s3_multipart_threshold_mb * MIB,
            )
        except ConfigError as err:
            raise ConfigError(f"object_store_url {url!r}: {err}") from err
    raise ConfigError(
        f"object_store_url {url!r} is neither file://PATH nor s3://bucket/prefix"
    )
