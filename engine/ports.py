"""The small interfaces through which the domain reaches the outside world.

The domain (``engine``, ``phases``, ``training``) depends on these protocols only; ``storage``
implements them (a local folder and S3 for objects, SQLite and PostgreSQL for the catalog),
and tests may pass fakes where that is honest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from engine.masklets import Masklet
from engine.video import Frame, Video


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes under string keys (``videos/syn_000001/frames/00000.jpg``).

    Keys are relative, ``/``-separated, and never contain ``..``, empty segments or a
    leading ``/``. Every write is atomic: a reader sees the old object, the new one, or
    nothing, never a partial one.
    """

    url: str

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        """Store ``data`` under ``key``; with ``overwrite=False`` raise ObjectExistsError if present."""
        ...

    def put_file(self, key: str, path: Path, *, overwrite: bool = True) -> None:
        """Store the file at ``path`` under ``key``, streaming (multipart on S3 when large)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ObjectNotFoundError when absent."""
        ...

    def get_file(self, key: str, path: Path) -> None:
        """Copy the object under ``key`` to ``path`` atomically, streaming."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix``; returns how many."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in lexicographic order."""
        ...


class VideoCatalog(Protocol):
    """What ingestion needs from the catalog: look-ups by content and one atomic insert."""

    def video_by_hash(self, content_hash: str) -> Video | None:
        ...

    def taken_video_ids(self, prefix: str) -> set[str]:
        """Video ids starting with ``prefix``, to choose a free one."""
        ...

    def add_video(
        self,
        video: Video,
        frames: Sequence[Frame],
        byte_sizes: Sequence[int],
        ground_truth: Sequence[Masklet],
    ) -> None:
        """Record the video, its frames and its ground truth in one transaction.

        Raises DuplicateVideoError when another writer recorded the same content first.
        """
        ...
