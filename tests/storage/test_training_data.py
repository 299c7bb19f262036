"""The catalog queries behind dataset building, on both backends."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

from engine.errors import NotFoundError, TrainingDataError
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.training_data import CatalogMarker, MaskletOrigin
from storage import masklets as masklet_queries
from storage import training_data
from storage.catalog import Catalog
from storage.objects import LocalObjectStore
from storage.schema import MaskletFrameRow, VideoRow
from storage.training_data import SqlTrainingData


def add_video(catalog: Catalog, video_id: str, split: str = "train", frames: int = 3) -> None:
    with catalog.write() as session:
        session.add(
            VideoRow(
                id=video_id, source_uri=f"{video_id}.mp4", content_hash=video_id, width=6, height=4,
                source_fps=6.0, source_frame_count=frames, duration_s=0.5, sample_fps=6.0, frame_count=frames,
                split=split,
            )
        )


def masklet(video_id: str, object_id: int, frames: int = 3, *, scores: bool = False) -> Masklet:
    rng = np.random.default_rng(object_id)
    masks = tuple(encode(rng.random((4, 6)) > 0.5) for _ in range(frames))
    return Masklet(video_id, object_id, MaskletSource.MANUAL, masks, stability_scores=(0.9,) * frames if scores else None)


def add(catalog: Catalog, m: Masklet, status: str = "satisfactory", phase: int | None = None) -> int:
    with catalog.write() as session:
        return masklet_queries.add_masklet(session, m, status=status, phase=phase)


@pytest.fixture
def data(catalog: Catalog, tmp_path: Path) -> SqlTrainingData:
    return SqlTrainingData(catalog, LocalObjectStore(tmp_path / "objects"))


def test_an_empty_catalog_has_a_zero_marker_and_no_candidates(data: SqlTrainingData) -> None:
    snapshot = data.snapshot()
    assert snapshot.marker == CatalogMarker(0, 0, 0) and snapshot.candidates == () and dict(snapshot.videos) == {}


def test_candidates_are_the_satisfactory_manual_and_auto_masklets_with_their_origin(
    catalog: Catalog, data: SqlTrainingData
) -> None:
    add_video(catalog, "v1")
    add_video(catalog, "v2", split="val", frames=3)
    imported = add(catalog, masklet("v1", 0))  # satisfactory without a verdict: an SA-V import
    add(catalog, masklet("v1", 1), status="draft")
    add(catalog, masklet("v1", 2), status="in_verification")
    add(catalog, dataclasses.replace(masklet("v1", 3), source=MaskletSource.GROUND_TRUTH), status="reference")
    auto = add(catalog, dataclasses.replace(masklet("v2", 4), source=MaskletSource.AUTO))

    snapshot = data.snapshot()
    assert [(c.masklet_id, c.origin, c.verification_id) for c in snapshot.candidates] == [
        (imported, MaskletOrigin.IMPORTED, None),
        (auto, MaskletOrigin.IMPORTED, None),
    ]
    assert snapshot.videos["v2"].split == "val" and snapshot.videos["v1"].frame_count == 3
    assert snapshot.marker.masklet_id == auto


def test_masklets_load_in_bulk_exactly_as_stored(catalog: Catalog, data: SqlTrainingData, monkeypatch) -> None:
    monkeypatch.setattr(training_data, "ID_CHUNK", 2)  # several chunks from a handful of masklets
    add_video(catalog, "v1")
    stored = {add(catalog, masklet("v1", i, scores=i % 2 == 0)): masklet("v1", i, scores=i % 2 == 0) for i in range(5)}

    loaded = data.masklets(list(stored)[::-1])

    assert set(loaded) == set(stored)
    for masklet_id, original in stored.items():
        assert loaded[masklet_id] == original and loaded[masklet_id].areas == original.areas
        with catalog.read() as session:
            assert loaded[masklet_id] == masklet_queries.get_masklet(session, masklet_id)


def test_a_missing_or_damaged_masklet_is_named(catalog: Catalog, data: SqlTrainingData) -> None:
    add_video(catalog, "v1")
    good = add(catalog, masklet("v1", 0))
    damaged = add(catalog, masklet("v1", 1))
    with catalog.write() as session:
        session.execute(delete(MaskletFrameRow).where(MaskletFrameRow.masklet_id == damaged, MaskletFrameRow.frame_index == 2))
    with pytest.raises(NotFoundError, match="12345"):
        data.masklets([good, 12345])
    with pytest.raises(TrainingDataError, match=f"masklet {damaged} .* 2 stored masks for 3 frames"):
        data.masklets([good, damaged])


def test_reserving_moves_train_videos_only_all_or_none(catalog: Catalog, data: SqlTrainingData) -> None:
    add_video(catalog, "a")
    add_video(catalog, "b", split="val")
    add_video(catalog, "c", split="test")
    with pytest.raises(TrainingDataError):
        data.reserve_for_validation(["a", "c"])
    assert data.snapshot().videos["a"].split == "train"
    assert data.reserve_for_validation(["a", "b", "a"]) == ["a"]
    assert {v.video_id: v.split for v in data.snapshot().videos.values()} == {"a": "val", "b": "val", "c": "test"}
