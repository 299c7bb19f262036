"""Ingestion: sampling, idempotency, ground truth beside a video, and bad input leaving nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import BadAnnotationFileError, BadVideoError, ObjectStoreError
from engine.ingest import IngestStatus, frames_prefix, ingest_file
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.sav import SavVideo, to_sav
from engine.settings import Settings
from engine.video import sample_indices
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog
from storage.ingest_sources import ingest_sources
from storage.objects import LocalObjectStore
from storage.video_catalog import SqlVideoCatalog


def write_mp4(path: Path, frames: int = 48, size: tuple[int, int] = (64, 48), fps: float = 24.0) -> Path:
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(frames):
        image = np.full((height, width, 3), 40, np.uint8)
        cv2.circle(image, (8 + i % (width - 16), height // 2), 6, (0, 200, 255), -1)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def settings() -> Settings:
    return Settings()


def ingest(path: Path, catalog: Catalog, store, settings: Settings, **kwargs):
    return ingest_file(path, store=store, catalog=SqlVideoCatalog(catalog), settings=settings, **kwargs)


def assert_nothing_left(catalog: Catalog, store) -> None:
    with catalog.read() as session:
        assert video_queries.catalog_summary(session)["videos"] == 0
        assert video_queries.catalog_summary(session)["frames"] == 0
    assert list(store.list()) == []


def test_sample_indices_follow_sav() -> None:
    assert sample_indices(24, 24.0, 6.0) == [0, 4, 8, 12, 16, 20]
    assert sample_indices(5, 3.0, 6.0) == [0, 1, 2, 3, 4]
    assert sample_indices(31, 29.97, 6.0)[:4] == [0, 5, 10, 15]
    assert sample_indices(0, 24.0, 6.0) == []


def test_ingest_samples_frames_into_store_and_catalog(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = write_mp4(tmp_path / "clip_a.mp4")
    result = ingest(path, catalog, store, settings)
    assert result.status is IngestStatus.INGESTED
    assert result.video_id == "clip_a" and result.frames == 12
    with catalog.read() as session:
        video = video_queries.get_video(session, "clip_a")
        frames = video_queries.frames_of(session, "clip_a")
    assert (video.width, video.height, video.frame_count, video.source_frame_count) == (64, 48, 12, 48)
    assert [f.source_index for f in frames] == list(range(0, 48, 4))
    image = cv2.imdecode(np.frombuffer(store.get(frames[3].object_key), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)


def test_ingesting_the_same_content_twice_adds_nothing(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = write_mp4(tmp_path / "clip_a.mp4")
    ingest(path, catalog, store, settings)
    copy = tmp_path / "copy_of_a.mp4"
    copy.write_bytes(path.read_bytes())
    again = ingest(copy, catalog, store, settings)
    assert again.status is IngestStatus.ALREADY_PRESENT and again.video_id == "clip_a"
    with catalog.read() as session:
        assert video_queries.catalog_summary(session)["videos"] == 1


def test_a_name_taken_by_other_content_gets_a_suffix(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    ingest(write_mp4(tmp_path / "clip.mp4", frames=24), catalog, store, settings)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    result = ingest(write_mp4(other_dir / "clip.mp4", frames=28), catalog, store, settings)
    assert result.video_id.startswith("clip-") and len(result.video_id) == len("clip-") + 8


def test_not_a_video(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(BadVideoError, match="notes.mp4"):
        ingest(path, catalog, store, settings)
    assert_nothing_left(catalog, store)


def test_truncated_video(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = write_mp4(tmp_path / "cut.mp4", frames=96)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadVideoError, match="cut.mp4"):
        ingest(path, catalog, store, settings)
    assert_nothing_left(catalog, store)


def test_empty_file(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(BadVideoError, match="empty"):
        ingest(path, catalog, store, settings)


def test_absurd_dimensions(tmp_path: Path, catalog: Catalog, store) -> None:
    path = write_mp4(tmp_path / "wide.mp4", size=(64, 48))
    with pytest.raises(BadVideoError, match="frame size 64x48"):
        ingest(path, catalog, store, Settings(max_frame_side=64, min_frame_side=50))
    assert_nothing_left(catalog, store)


@pytest.mark.parametrize("name", ["a..b.mp4", "..mp4", "-x.mp4", "bad name.mp4"])
def test_unsafe_names(tmp_path: Path, catalog: Catalog, store, settings, name: str) -> None:
    path = write_mp4(tmp_path / name)
    with pytest.raises(BadVideoError, match="video name"):
        ingest(path, catalog, store, settings)
    assert_nothing_left(catalog, store)


class FailingStore(LocalObjectStore):
    """A store that fails after a few writes, as a full disk or a dropped connection would."""

    def __init__(self, root: Path, fail_after: int) -> None:
        super().__init__(root)
        self.remaining = fail_after

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        if self.remaining <= 0:
            raise ObjectStoreError(f"{key}: No space left on device")
        self.remaining -= 1
        super().put(key, data, overwrite=overwrite)


def test_a_store_failure_mid_video_leaves_nothing(tmp_path: Path, catalog: Catalog, settings) -> None:
    store = FailingStore(tmp_path / "objects", fail_after=5)
    with pytest.raises(ObjectStoreError, match="No space"):
        ingest(write_mp4(tmp_path / "clip.mp4"), catalog, store, settings)
    assert list(store.list(frames_prefix("clip"))) == []
    assert_nothing_left(catalog, store)


def ground_truth_for(video_id: str, frames: int, h: int = 48, w: int = 64) -> dict:
    masks = []
    for i in range(frames):
        m = np.zeros((h, w), bool)
        m[10:20, 8 + i : 20 + i] = True
        masks.append(encode(m))
    masklet = Masklet(video_id, 0, MaskletSource.MANUAL, tuple(masks))
    return to_sav(SavVideo(video_id, 2.0, 48, h, w), [masklet])


def test_ground_truth_beside_the_video_is_recorded(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = write_mp4(tmp_path / "gt_clip.mp4")
    (tmp_path / "gt_clip.json").write_text(json.dumps(ground_truth_for("gt_clip", 12)))
    result = ingest(path, catalog, store, settings)
    assert result.ground_truth_masklets == 1
    with catalog.read() as session:
        truth = masklet_queries.ground_truth(session, "gt_clip")
    assert len(truth) == 1 and truth[0].source is MaskletSource.GROUND_TRUTH and truth[0].frame_count == 12


def test_ground_truth_that_does_not_fit_is_refused(tmp_path: Path, catalog: Catalog, store, settings) -> None:
    path = write_mp4(tmp_path / "gt_clip.mp4")
    (tmp_path / "gt_clip.json").write_text(json.dumps(ground_truth_for("gt_clip", 11)))
    with pytest.raises(BadAnnotationFileError, match="11 annotated frames"):
        ingest(path, catalog, store, settings)
    assert_nothing_left(catalog, store)


def test_a_folder_with_one_bad_file_ingests_the_others(tmp_path: Path, sqlite_catalog: Catalog, store, settings) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_mp4(folder / "one.mp4", frames=24)
    write_mp4(folder / "two.mp4", frames=32)
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    (folder / "readme.txt").write_text("not a video, not even looked at")
    results = ingest_sources([str(folder)], catalog=sqlite_catalog, store=store, settings=settings)
    by_status = {r.source.rsplit("/", 1)[-1]: r.status for r in results}
    assert by_status == {
        "broken.mp4": IngestStatus.FAILED, "one.mp4": IngestStatus.INGESTED, "two.mp4": IngestStatus.INGESTED,
    }
    assert "broken.mp4" in next(r.error for r in results if r.status is IngestStatus.FAILED)


def test_a_missing_path_is_reported(tmp_path: Path, sqlite_catalog: Catalog, store, settings) -> None:
    results = ingest_sources([str(tmp_path / "nope")], catalog=sqlite_catalog, store=store, settings=settings)
    assert results[0].status is IngestStatus.FAILED and "no such file" in results[0].error


@pytest.mark.shared_data
def test_real_720p_video(shared_videos: Path, sqlite_catalog: Catalog, store, settings) -> None:
    result = ingest(shared_videos / "bedroom.mp4", sqlite_catalog, store, settings)
    assert result.status is IngestStatus.INGESTED
    with sqlite_catalog.read() as session:
        video = video_queries.get_video(session, "bedroom")
    assert (video.width, video.height) == (960, 540)
    assert video.frame_count == len(sample_indices(200, 30.0, 6.0)) == 40
