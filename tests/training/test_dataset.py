"""Training and validation sets from the catalog, on both backends, with masklets made the engine's way."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import (
    BadDatasetManifestError,
    ConfigError,
    EmptyValidationSetError,
    NoTrainingDataError,
    NotFoundError,
    TrainingDataError,
    ValidationOverlapError,
)
from engine.masklets import MaskletSource
from engine.masks import decode
from engine.queues import Verdict
from storage.catalog import Catalog
from training.dataset import DatasetManifest, build_datasets, reserve_validation_videos
from tests.training.catalog_state import CatalogState, make_state, synthesize_videos

MODEL = "sam2-compact"


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_videos(tmp_path_factory.mktemp("videos"), 4)


@pytest.fixture
def state(catalog: Catalog, tmp_path: Path, videos_dir: Path) -> CatalogState:
    return make_state(catalog, tmp_path, videos_dir)


def build(state: CatalogState, **kwargs):
    return build_datasets(state.data, state.runs, model_name=MODEL, **kwargs)


def masklet_ids(videos) -> dict[str, list[int]]:
    return {v.video_id: [m.masklet_id for m in v.masklets] for v in videos}


def test_training_takes_verified_satisfactory_masklets_and_validation_phase_1_ones(state: CatalogState) -> None:
    v0, v1, _, val = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    kept_manual = state.judged(v0, 0, phase=3)
    state.judged(v0, 1, phase=2, verdict=Verdict.UNSATISFACTORY)
    kept_auto = state.judged(v1, 0, phase=None, source=MaskletSource.AUTO)
    state.judged(v1, 1, phase=1, verdict=Verdict.REJECTED)
    state.draft(v1, 1)
    validating = state.judged(val, 0, phase=1)
    state.judged(val, 1, phase=3)  # on a validation video, but not Phase 1: used by neither side

    datasets = build(state)

    assert masklet_ids(datasets.manifest.training) == {v0: [kept_manual], v1: [kept_auto]}
    assert masklet_ids(datasets.manifest.validation) == {val: [validating]}
    (first, second) = datasets.training
    assert first.video_id == v0 and first.masklets[0].masks == state.truth(v0, 0).masks
    assert second.masklets[0].source is MaskletSource.AUTO
    frame = first.frames.load(0)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and first.frame_count == 8
    assert datasets.validation[0].masklets[0].masks == state.truth(val, 0).masks
    counts = datasets.manifest.counts()
    assert counts["training_by_source"] == {"auto": 1, "manual": 1} and counts["validation_masklets"] == 1
    entry = datasets.manifest.training[0].masklets[0]
    assert entry.origin == "verified" and entry.phase == 3 and entry.verification_id is not None


def test_an_object_annotated_in_several_rounds_trains_with_its_newest_satisfactory_masklet(state: CatalogState) -> None:
    v0, _, _, val = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    state.judged(val, 0)
    state.judged(v0, 0, phase=1)
    other_masks = state.truth(v0, 1)  # different masks for object 0, as a later round might draw
    newer = state.judged(v0, 0, phase=3, masklet=dataclasses.replace(other_masks, object_id=0))

    datasets = build(state)

    assert masklet_ids(datasets.manifest.training) == {v0: [newer]}
    assert datasets.training[0].masklets[0].masks == other_masks.masks


def test_imported_sav_masklets_train_only_when_asked(state: CatalogState) -> None:
    v0, v1, _, val = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    state.judged(val, 0)
    state.imported(v1, MaskletSource.MANUAL)
    state.imported(v1, MaskletSource.AUTO)  # SA-V numbers auto masklets from 0 too

    with pytest.raises(NoTrainingDataError, match="4 imported SA-V masklets .* include_sav_imports"):
        build(state)
    datasets = build(state, include_sav_imports=True)

    (video,) = datasets.training
    assert video.video_id == v1
    assert sorted(m.object_id for m in video.masklets) == [0, 1, 2, 3]  # distinct for training
    entries = datasets.manifest.training[0].masklets
    assert [(m.source, m.object_id, m.origin, m.verification_id) for m in entries] == [
        ("manual", 0, "imported", None), ("manual", 1, "imported", None),
        ("auto", 0, "imported", None), ("auto", 1, "imported", None),
    ]
    decoded = decode(video.masklets[2].masks[0])
    assert np.array_equal(decoded, decode(state.truth(v1, 0).masks[0]))

    state.judged(v0, 0, phase=2)
    assert [v.video_id for v in build(state).training] == [v0]  # verified data alone, imports left out


def test_an_empty_catalog_has_no_training_data_and_says_what_to_do(state: CatalogState) -> None:
    with pytest.raises(NoTrainingDataError, match="dataengine annotate"):
        build(state)


def test_training_without_a_validation_set_is_refused_with_the_way_to_make_one(state: CatalogState) -> None:
    v0, _, _, val = state.video_ids
    state.judged(v0, 0)
    with pytest.raises(EmptyValidationSetError, match="no video is reserved for validation"):
        build(state)
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    state.judged(val, 0, phase=3)
    with pytest.raises(EmptyValidationSetError, match="Phase 1"):
        build(state)


def test_named_validation_videos_must_be_reserved_ones(state: CatalogState) -> None:
    v0, v1, val_a, val_b = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val_a, val_b])
    state.judged(v0, 0)
    a, b = state.judged(val_a, 0), state.judged(val_b, 0)

    assert masklet_ids(build(state).manifest.validation) == {val_a: [a], val_b: [b]}
    assert masklet_ids(build(state, validation_video_ids=[val_b]).manifest.validation) == {val_b: [b]}
    with pytest.raises(ValidationOverlapError, match=f"{v1}.*training videos"):
        build(state, validation_video_ids=[val_a, v1])
    with pytest.raises(NotFoundError):
        build(state, validation_video_ids=["no-such-video"])


def test_a_video_an_earlier_run_trained_on_never_validates(state: CatalogState) -> None:
    v0, v1, _, val = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    state.judged(val, 0)
    state.judged(v0, 0)
    state.judged(v1, 0)
    run = state.runs.start(MODEL, {"steps": 10}, build(state).manifest.to_json())

    with pytest.raises(ValidationOverlapError, match=f"{v1}.*\\[{run.id}\\]"):
        reserve_validation_videos(state.data, state.runs, video_ids=[v1])
    state.set_split(v1, "val")  # moved by hand, behind the reservation's back
    state.judged(v1, 1, phase=1)
    with pytest.raises(ValidationOverlapError, match=f"{v1}"):
        build(state)


def test_the_manifest_is_exact_json_with_a_digest_that_catches_tampering(state: CatalogState) -> None:
    v0, _, _, val = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val])
    state.judged(val, 0)
    state.judged(v0, 0)
    manifest = build(state).manifest

    stored = state.runs.start(MODEL, {}, manifest.to_json())
    read_back = DatasetManifest.from_json(json.loads(json.dumps(state.runs.get(stored.id).dataset)))
    assert read_back == manifest and read_back.digest == manifest.digest
    assert build(state).manifest.digest == manifest.digest  # same catalog, same data: same digest
    assert manifest.marker.masklet_id >= max(manifest.training_masklet_ids | manifest.validation_masklet_ids)
    assert manifest.marker.verification_id >= 2

    tampered = manifest.to_json()
    tampered["training"][0]["masklets"][0]["masklet_id"] += 1000
    with pytest.raises(BadDatasetManifestError, match="digest"):
        DatasetManifest.from_json(tampered)
    with pytest.raises(BadDatasetManifestError, match="format"):
        DatasetManifest.from_json({"synthetic_videos": 64})
    broken = {**manifest.to_json(), "marker": {"masklet_id": "x"}}
    with pytest.raises(BadDatasetManifestError, match="malformed"):
        DatasetManifest.from_json(broken)

    state.judged(v0, 1)
    grown = build(state).manifest
    assert grown.digest != manifest.digest and grown.marker.masklet_id > manifest.marker.masklet_id
    assert grown.validation_digest == manifest.validation_digest  # the validation set did not change


def test_reserving_by_fraction_is_deterministic_durable_and_prefers_videos_not_yet_annotated(
    state: CatalogState,
) -> None:
    ids = state.video_ids
    state.judged(ids[0], 0)  # annotated already: chosen last
    fresh = sorted(ids[1:], key=lambda v: hashlib.sha256(v.encode()).hexdigest())

    first = reserve_validation_videos(state.data, state.runs, fraction=0.25)
    assert first.reserved == (fresh[0],) and first.validation_videos == (fresh[0],) and first.wanted == 1
    again = reserve_validation_videos(state.data, state.runs, fraction=0.25)
    assert again.reserved == () and again.validation_videos == (fresh[0],)
    more = reserve_validation_videos(state.data, state.runs, fraction=0.9)
    assert more.reserved == (fresh[1], fresh[2], ids[0])


def test_reserving_refuses_bad_requests_and_other_splits(state: CatalogState) -> None:
    v0, v1, v2, _ = state.video_ids
    for bad in (0, 1, -0.1, float("nan"), 1.5):
        with pytest.raises(ConfigError, match="fraction"):
            reserve_validation_videos(state.data, state.runs, fraction=bad)
    with pytest.raises(ConfigError, match="exactly one"):
        reserve_validation_videos(state.data, state.runs)
    with pytest.raises(ConfigError, match="exactly one"):
        reserve_validation_videos(state.data, state.runs, video_ids=[v0], fraction=0.1)
    with pytest.raises(NotFoundError):
        reserve_validation_videos(state.data, state.runs, video_ids=[v0, "nope"])
    state.set_split(v2, "test")
    with pytest.raises(TrainingDataError, match="neither"):
        reserve_validation_videos(state.data, state.runs, video_ids=[v1, v2])
    splits = {v.video_id: v.split for v in state.data.snapshot().videos.values()}
    assert (splits[v1], splits[v2]) == ("train", "test")  # the refused request changed nothing

    state.judged(v2, 0)  # a test video's masklets neither train nor validate
    with pytest.raises(NoTrainingDataError):
        build(state)
