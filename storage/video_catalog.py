"""The catalog as ingestion sees it (:class:`engine.ports.VideoCatalog`) on SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from engine.errors import DuplicateVideoError
from engine.masklets import Masklet
from engine.video import Frame, Video
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog


class SqlVideoCatalog:
    """Video look-ups and the one-transaction insert of a video with its frames and ground truth."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def video_by_hash(self, content_hash: str) -> Video | None:
        with self.catalog.read() as session:
            return video_queries.video_by_hash(session, content_hash)

    def taken_video_ids(self, prefix: str) -> set[str]:
        with self.catalog.read() as session:
            return video_queries.video_ids_like(session, prefix)

    def add_video(
        self,
        video: Video,
        frames: Sequence[Frame],
        byte_sizes: Sequence[int],
        ground_truth: Sequence[Masklet],
    ) -> None:
        try:
            with self.catalog.write() as session:
                video_queries.add_video(session, video, frames, byte_sizes)
                for masklet in ground_truth:
                    masklet_queries.add_masklet(session, masklet, status="reference")
        except IntegrityError as exc:
            raise DuplicateVideoError(
                f"video {video.id} ({video.source_uri}) was recorded by another writer first"
            ) from exc
