"""The model in the loop comes from the registry before every task: champion, promotions, empty registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import ModelNotFoundError
from engine.model_loading import build_model
from engine.model_registry import promote
from engine.model_segmenters import RegistrySegmenterSource
from engine.segmenter_config import COMPACT
from engine.segmenters import DEFAULT_MODEL
from engine.settings import load_settings
from engine.simulated_annotator import Skill
from engine.synthetic import synthesize
from phases.workers import Crew, Worker, enqueue_annotation
from storage.annotation_store import SqlAnnotationStore
from storage.catalog import Catalog
from storage.ingest_sources import ingest_sources
from storage.model_registry import SqlModelRegistry
from storage.objects.local import LocalObjectStore
from storage.schema import MaskletRow
from storage.task_queue import TaskQueue
from tests.engine.sam_fixtures import CPU
from tests.phases.conftest import SHORT


@pytest.fixture
def registry(sqlite_catalog: Catalog, tmp_path: Path) -> SqlModelRegistry:
    return SqlModelRegistry(sqlite_catalog, LocalObjectStore(tmp_path / "objects"), tmp_path / "cache")


def register_random_compact(registry: SqlModelRegistry, folder: Path, seed: int):
    model = build_model(COMPACT, task="video", device=CPU, seed=seed, random_weights=True)
    model.module.save_pretrained(folder)
    return registry.register(COMPACT, model.module.config.to_dict(), folder)


def test_the_default_model_is_the_embedded_one() -> None:
    assert DEFAULT_MODEL == COMPACT


@pytest.mark.usefixtures("no_bundled_model")
def test_an_empty_registry_falls_back_to_a_random_sam2_compact_and_says_so(registry: SqlModelRegistry) -> None:
    source = RegistrySegmenterSource(registry, device=CPU)
    segmenters = source.segmenters()
    assert segmenters.model_version_id is None and source.fallback_used
    assert segmenters.description == source.fallback_description == "sam2-compact (random initialisation, not registered)"
    assert not segmenters.video.pretrained


def test_with_a_shipped_bootstrap_an_empty_registry_falls_back_to_it(
    registry: SqlModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = build_model(COMPACT, task="video", device=CPU, seed=3, random_weights=True)
    shipped.module.save_pretrained(tmp_path / "weights" / COMPACT)
    monkeypatch.setattr("engine.bundled.WEIGHTS_ROOT", tmp_path / "weights")
    source = RegistrySegmenterSource(registry, device=CPU)
    segmenters = source.segmenters()
    assert source.fallback_used and segmenters.description == "sam2-compact (bundled bootstrap checkpoint, not registered)"
    assert segmenters.video.pretrained and "bundled bootstrap checkpoint" in segmenters.video.origin


def test_another_missing_model_is_an_error_not_a_fallback(
    registry: SqlModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelNotFoundError, match="registry is empty.*not on this machine either.*hiera-tiny"):
        RegistrySegmenterSource(registry, "facebook/sam2.1-hiera-tiny", device=CPU).segmenters()
    for ref in ("my-model", "sam2-compact-large", "facebook/sam2.1-hiera-tiny@3"):  # registry names: no fallback
        with pytest.raises(ModelNotFoundError, match="registry is empty"):
            RegistrySegmenterSource(registry, ref, device=CPU).segmenters()


def test_a_hub_model_runs_from_the_local_cache_until_a_version_of_it_is_registered(
    registry: SqlModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--model facebook/sam2.1-hiera-tiny`` with its weights downloaded: the cache, then the registry."""
    name, revision = "facebook/sam2.1-hiera-tiny", "0123456789abcdef0123456789abcdef01234567"
    published = build_model(COMPACT, task="video", device=CPU, seed=5, random_weights=True)  # stands in for it
    repo = tmp_path / "hub" / ("models--" + name.replace("/", "--"))
    published.module.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))

    source = RegistrySegmenterSource(registry, name, device=CPU)
    cached = source.segmenters()
    assert cached.model_version_id is None and source.fallback_used
    assert cached.description.startswith(f"{name} (Hugging Face cache") and revision in cached.description
    assert cached.video.pretrained and cached.image_model.module is not None

    tuned = build_model(COMPACT, task="video", device=CPU, seed=6, random_weights=True)
    tuned.module.save_pretrained(tmp_path / "v1")
    version = registry.register(name, tuned.module.config.to_dict(), tmp_path / "v1")
    assert source.segmenters().model_version_id == version.id  # a retrained version takes over


@pytest.mark.slow
def test_each_task_uses_the_champion_of_the_moment(registry: SqlModelRegistry, sqlite_catalog: Catalog, tmp_path: Path) -> None:
    first = register_random_compact(registry, tmp_path / "v1", seed=1)
    promote(registry, first.ref)
    source = RegistrySegmenterSource(registry, device=CPU)

    store = registry.store
    paths = synthesize(tmp_path / "videos", 1, seed=2, spec=SHORT)
    ingest_sources([str(p) for p in paths], catalog=sqlite_catalog, store=store, settings=load_settings())
    queue, annotations = TaskQueue(sqlite_catalog), SqlAnnotationStore(sqlite_catalog, store)
    enqueue_annotation(queue, annotations, 1)
    worker = Worker("ann", queue, annotations, source, Crew(skill=Skill(click_budget=1)))
    outcome = worker.annotate_one(1)
    assert outcome is not None and outcome.ok, outcome
    with sqlite_catalog.read() as session:
        assert session.scalar(select(MaskletRow.model_version_id).where(MaskletRow.id == outcome.masklet_id)) == first.id

    assert source.segmenters() is source.segmenters()  # nothing promoted: the loaded model is kept
    second = register_random_compact(registry, tmp_path / "v2", seed=2)
    promote(registry, second.ref)
    assert source.segmenters().model_version_id == second.id  # the next task gets the new champion


def test_a_command_asking_for_a_missing_hub_model_is_told_once_where_it_looked(
    registry: SqlModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``models_for`` (segment, track, auto masklets) leaves the hub fallback to the source: one cache look, one message."""
    from engine.model_choice import models_for

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelNotFoundError) as caught:
        models_for(registry, "facebook/sam2.1-hiera-tiny", device=CPU)
    assert str(caught.value).count("not on this machine either") == 1 and "registry is empty" in str(caught.value)
