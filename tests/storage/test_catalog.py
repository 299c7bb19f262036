"""The catalog: migrations match the models, both backends behave the same, SQLite writes queue."""

from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from engine.errors import CatalogError
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.video import Frame, Video
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog, open_catalog
from storage.schema import Base, VideoRow

import numpy as np


def make_video(video_id: str = "v1", frames: int = 3, h: int = 8, w: int = 10) -> tuple[Video, list[Frame]]:
    video = Video(video_id, f"/src/{video_id}.mp4", f"hash-{video_id}", w, h, 24.0, frames * 4, frames / 6, 6.0, frames)
    return video, [Frame(video_id, i, 4 * i, i / 6, f"videos/{video_id}/frames/{i:05d}.jpg") for i in range(frames)]


def make_masklet(video_id: str = "v1", object_id: int = 0, frames: int = 3, source=MaskletSource.GROUND_TRUTH) -> Masklet:
    masks = []
    for i in range(frames):
        m = np.zeros((8, 10), bool)
        m[1 : 3 + i, 2:6] = i > 0  # invisible in frame 0: appears late
        masks.append(encode(m))
    return Masklet(video_id, object_id, source, tuple(masks), edited_frame_count=1)


def test_migrations_match_the_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert catalog.current_revision() == catalog.head_revision()


def test_downgrade_to_base_and_up_again(catalog: Catalog) -> None:
    catalog.downgrade("base")
    assert catalog.current_revision() is None
    catalog.upgrade()
    assert catalog.current_revision() == catalog.head_revision()


def test_video_frames_and_masklets_round_trip(catalog: Catalog) -> None:
    video, frames = make_video()
    masklet = make_masklet()
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [100, 101, 102])
        masklet_id = masklet_queries.add_masklet(session, masklet, status="reference")
    with catalog.read() as session:
        assert video_queries.get_video(session, "v1") == video
        assert video_queries.frames_of(session, "v1") == frames
        assert video_queries.video_by_hash(session, "hash-v1") == video
        loaded = masklet_queries.get_masklet(session, masklet_id)
        assert loaded == masklet
        assert loaded.first_appeared_frame == 1
        assert masklet_queries.ground_truth(session, "v1") == [masklet]
        assert video_queries.catalog_summary(session)["ground_truth_masklets"] == 1


def test_a_failed_write_leaves_nothing(catalog: Catalog) -> None:
    video, frames = make_video()
    with pytest.raises(RuntimeError):
        with catalog.write() as session:
            video_queries.add_video(session, video, frames, [1, 2, 3])
            raise RuntimeError("crash between the video and its masklets")
    with catalog.read() as session:
        assert video_queries.list_videos(session) == []
        assert video_queries.frames_of(session, "v1") == []


def test_one_ground_truth_masklet_per_object(catalog: Catalog) -> None:
    video, frames = make_video()
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [1, 2, 3])
        masklet_queries.add_masklet(session, make_masklet(), status="reference")
    with pytest.raises(IntegrityError):
        with catalog.write() as session:
            masklet_queries.add_masklet(session, make_masklet(), status="reference")
    # Annotated masklets of the same object may be many (one per round).
    with catalog.write() as session:
        for _ in range(2):
            masklet_queries.add_masklet(session, make_masklet(source=MaskletSource.MANUAL), status="draft")


def test_unknown_status_is_refused_by_the_database(catalog: Catalog) -> None:
    video, frames = make_video()
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [1, 2, 3])
    with pytest.raises(IntegrityError):
        with catalog.write() as session:
            masklet_queries.add_masklet(session, make_masklet(), status="approved-ish")


def test_deleting_a_video_cascades(catalog: Catalog) -> None:
    video, frames = make_video()
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [1, 2, 3])
        masklet_queries.add_masklet(session, make_masklet(), status="reference")
    with catalog.write() as session:
        video_queries.delete_video(session, "v1")
    with catalog.read() as session:
        assert video_queries.catalog_summary(session) == {
            "videos": 0, "frames": 0, "ground_truth_masklets": 0, "manual_masklets": 0, "auto_masklets": 0,
        }


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_catalog: Catalog) -> None:
    with sqlite_catalog.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_sqlite_writers_queue_instead_of_failing(sqlite_catalog: Catalog) -> None:
    """BEGIN IMMEDIATE: a second writer waits for the first rather than failing mid-transaction."""
    first_has_lock = threading.Event()
    order: list[str] = []

    def slow_writer() -> None:
        with sqlite_catalog.write() as session:
            session.add(VideoRow(**_row("a")))
            session.flush()
            first_has_lock.set()
            time.sleep(0.3)
            order.append("first")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    first_has_lock.wait(5)
    with sqlite_catalog.write() as session:
        order.append("second")
        session.add(VideoRow(**_row("b")))
    thread.join()
    assert order == ["first", "second"]
    with sqlite_catalog.read() as session:
        assert sorted(session.scalars(select(VideoRow.id))) == ["a", "b"]


def _row(video_id: str) -> dict:
    return dict(
        id=video_id, source_uri="x", content_hash=video_id, width=1, height=1, source_fps=1.0,
        source_frame_count=1, duration_s=1.0, sample_fps=1.0, frame_count=1,
    )


def test_a_fresh_catalog_gets_its_schema_on_first_use(tmp_path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path}/sub/dir/catalog.db")
    try:
        assert catalog.current_revision() == catalog.head_revision()
    finally:
        catalog.dispose()


def test_an_outdated_catalog_with_data_is_not_migrated_silently(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/catalog.db"
    catalog = Catalog(url)
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE legacy (x INTEGER)")
    with pytest.raises(CatalogError, match="dataengine db upgrade"):
        catalog.ensure_schema()
    catalog.dispose()


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    catalog = Catalog("postgresql://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(CatalogError, match="127.0.0.1"):
        catalog.current_revision()


def test_postgres_urls_use_psycopg3() -> None:
    assert Catalog("postgresql://u@h/db").url.drivername == "postgresql+psycopg"
