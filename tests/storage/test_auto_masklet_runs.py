"""Auto masklets for a catalog video: generated from stored frames, stored as candidates in verification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.auto_mask_config import AutoMaskConfig
from engine.errors import ModelNotFoundError, NotFoundError
from engine.masklets import MaskletSource
from engine.queues import IN_VERIFICATION
from engine.model_loading import build_model
from engine.segmenter_config import COMPACT
from storage import masklets as masklet_queries
from storage.auto_masklet_runs import generate_for_video, run_for_video
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from tests.engine.sam_fixtures import CPU
from tests.engine.segment_fixtures import ingest_tiny, one_torch_thread

pytestmark = pytest.mark.usefixtures("no_bundled_model")  # counts follow from the weights: pinned random ones

SMALL = AutoMaskConfig(grid_sides=(3,), min_predicted_iou=0.0, min_stability=0.0, max_candidates=2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def test_candidates_are_stored_in_verification_with_their_stability(catalog: Catalog, tmp_path: Path) -> None:
    store, video_id, video = ingest_tiny(tmp_path, catalog)
    registry = SqlModelRegistry(catalog, store, tmp_path / "model-cache")  # empty: sam2-compact, random
    ids = generate_for_video(catalog, store, registry, video_id, "sam2-compact", SMALL)
    assert len(ids) == 2
    with catalog.read() as session:
        rows = [
            (r.id, r.status, r.model_version_id, r.frame_count)
            for r in masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.AUTO])
        ]
        stored = masklet_queries.masklets_for_video(session, video_id, [MaskletSource.AUTO])
        truth = masklet_queries.ground_truth(session, video_id)
    assert [r[0] for r in rows] == ids
    assert {r[1:] for r in rows} == {(IN_VERIFICATION, None, 8)}
    assert [m.object_id for m in stored] == [0, 1]
    assert all(m.stability_scores is not None and len(m.stability_scores) == 8 for m in stored)
    assert len(truth) == len(video.masklets), "ground truth untouched"


def test_a_run_reports_the_model_and_what_was_kept(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    store, video_id, _ = ingest_tiny(tmp_path, sqlite_catalog)
    run = run_for_video(sqlite_catalog, store, None, video_id, "sam2-compact", SMALL)
    assert run.model.startswith("sam2-compact") and run.model_version_id is None and not run.pretrained
    assert run.result.stats.points == 9 and len(run.masklet_ids) == len(run.result.masklets) == 2


def test_a_registered_model_is_used_and_recorded(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    store, video_id, _ = ingest_tiny(tmp_path, sqlite_catalog)
    registry = SqlModelRegistry(sqlite_catalog, store, tmp_path / "model-cache")
    model = build_model(COMPACT, device=CPU, seed=5)
    model.module.save_pretrained(tmp_path / "weights")
    version = registry.register(COMPACT, model.module.config.to_dict(), tmp_path / "weights")
    run = run_for_video(sqlite_catalog, store, registry, video_id, COMPACT, SMALL)
    assert run.model == version.ref and run.model_version_id == version.id and run.pretrained
    with sqlite_catalog.read() as session:
        rows = masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.AUTO])
        assert {r.model_version_id for r in rows} == {version.id}


def test_unknown_videos_and_models_are_refused(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    store, video_id, _ = ingest_tiny(tmp_path, sqlite_catalog)
    registry = SqlModelRegistry(sqlite_catalog, store, tmp_path / "model-cache")
    with pytest.raises(NotFoundError, match="no video 'nope'"):
        generate_for_video(sqlite_catalog, store, registry, "nope", "sam2-compact", SMALL)
    with pytest.raises(ModelNotFoundError, match="no model named 'no-such-model'"):
        generate_for_video(sqlite_catalog, store, registry, video_id, "no-such-model", SMALL)
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache"):
        generate_for_video(sqlite_catalog, store, registry, video_id, "facebook/no-such-sam", SMALL)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        generate_for_video(sqlite_catalog, store, registry, video_id, "./no/such/folder", SMALL)
    with sqlite_catalog.read() as session:
        assert masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.AUTO]) == []
