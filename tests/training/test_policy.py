"""The retrain policy: the rule on its own, and its inputs gathered from a real catalog and registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.masklets import MaskletSource
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from training.dataset import build_datasets, reserve_validation_videos
from training.policy import retrain_decision, retrain_inputs, should_retrain
from training.promotion import apply_promotion, decide_for_version
from tests.training.catalog_state import CatalogState, make_state, synthesize_videos

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
NAME = "sam2-compact"


# --- the rule ------------------------------------------------------------------------------------


def test_enough_new_masklets_trigger_a_retrain() -> None:
    decision = should_retrain(NOW, new_satisfactory=50, threshold=50, last_trained_at=NOW - DAY, schedule_every=None)
    assert decision.retrain and "50 new satisfactory masklet(s)" in decision.reason and "threshold 50" in decision.reason


def test_too_few_new_masklets_wait_and_say_for_what() -> None:
    decision = should_retrain(NOW, new_satisfactory=49, threshold=50, last_trained_at=NOW - DAY, schedule_every=7 * DAY)
    assert not decision.retrain and "fewer than the threshold 50" in decision.reason
    assert decision.due_at == NOW + 6 * DAY and "next scheduled retrain at 2026-05-07" in decision.reason


def test_a_due_schedule_retrains_on_anything_new_but_not_on_nothing() -> None:
    due = should_retrain(NOW, new_satisfactory=1, threshold=50, last_trained_at=NOW - 7 * DAY, schedule_every=7 * DAY)
    assert due.retrain and "scheduled retrain due" in due.reason
    idle = should_retrain(NOW, new_satisfactory=0, threshold=50, last_trained_at=NOW - 30 * DAY, schedule_every=7 * DAY)
    assert not idle.retrain and "nothing is new" in idle.reason
    never = should_retrain(NOW, new_satisfactory=3, threshold=50, last_trained_at=None, schedule_every=7 * DAY)
    assert never.retrain and never.due_at == NOW


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 2.5}, "threshold"),
        ({"schedule_every": timedelta(0)}, "schedule"),
        ({"last_trained_at": datetime(2026, 1, 1)}, "naive"),
        ({"new_satisfactory": -1}, "negative"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, words: str) -> None:
    arguments = {"new_satisfactory": 1, "threshold": 1, "last_trained_at": None, "schedule_every": None, **kwargs}
    with pytest.raises(ConfigError, match=words):
        should_retrain(NOW, **arguments)
    with pytest.raises(ConfigError, match="naive"):
        should_retrain(datetime(2026, 1, 1), new_satisfactory=1, threshold=1, last_trained_at=None, schedule_every=None)


# --- its inputs, from the catalog ------------------------------------------------------------------


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_videos(tmp_path_factory.mktemp("videos"), 3)


@pytest.fixture
def state(catalog: Catalog, tmp_path: Path, videos_dir: Path) -> CatalogState:
    state = make_state(catalog, tmp_path, videos_dir)
    reserve_validation_videos(state.data, state.runs, video_ids=[state.video_ids[-1]])
    state.judged(state.video_ids[-1], 0, phase=1)  # validation data: never counts as new
    return state


@pytest.fixture
def registry(state: CatalogState) -> SqlModelRegistry:
    return SqlModelRegistry(state.catalog, state.store, state.root / "cache")


def train(state: CatalogState, registry: SqlModelRegistry, *, val_jf: float | None, outcome: str = "succeeded"):
    """A training run on the catalog's data now, registered as a new version when it succeeds."""
    manifest = build_datasets(state.data, state.runs, model_name=NAME).manifest
    run = state.runs.start(NAME, {"steps": 1}, manifest.to_json())
    if outcome == "failed":
        state.runs.fail(run.id, "disk full")
    if outcome != "succeeded":
        return None
    state.runs.succeed(run.id)
    return registry.register(NAME, {"model_type": "sam2_video"}, None, training_run_id=run.id, metrics={"val_jf": val_jf})


def inputs(state: CatalogState, registry: SqlModelRegistry, **kwargs):
    return retrain_inputs(registry, state.runs, state.data, NAME, **kwargs)


def test_masklets_are_new_until_a_training_run_has_them(state: CatalogState, registry: SqlModelRegistry) -> None:
    a, b, _ = state.video_ids
    state.judged(a, 0)
    state.judged(a, 1)
    state.judged(b, 0, phase=None, source=MaskletSource.AUTO)
    first = inputs(state, registry)
    assert (first.new_satisfactory, first.last_trained_at, first.champion_ref) == (3, None, None)
    assert "no training run yet" in first.reference

    version = train(state, registry, val_jf=0.5)
    apply_promotion(registry, version, decide_for_version(registry, version, runs=state.runs))
    after = inputs(state, registry)
    assert after.new_satisfactory == 0 and after.champion_ref == version.ref and "the champion's" in after.reference
    assert after.last_trained_at == state.runs.get(version.training_run_id).started_at

    state.judged(b, 1)
    state.judged(a, 0, phase=3)  # a newer masklet of an object already trained on replaces it: new
    state.imported(b)  # imports count only when training would use them
    assert inputs(state, registry).new_satisfactory == 2
    # With imports: a's newer masklet, and b's imported objects 0 and 1 (newer than b's verified 1).
    assert inputs(state, registry, include_sav_imports=True).new_satisfactory == 3


def test_a_refused_challenger_or_a_run_in_progress_is_the_last_training(state: CatalogState, registry: SqlModelRegistry) -> None:
    a, b, _ = state.video_ids
    state.judged(a, 0)
    champion = train(state, registry, val_jf=0.7)
    apply_promotion(registry, champion, decide_for_version(registry, champion, runs=state.runs))
    state.judged(a, 1)
    state.judged(b, 0)
    assert inputs(state, registry).new_satisfactory == 2

    challenger = train(state, registry, val_jf=0.4)
    apply_promotion(registry, challenger, decide_for_version(registry, challenger, runs=state.runs))
    assert registry.aliases(NAME)["champion"] == champion.version
    refused = inputs(state, registry)
    assert refused.new_satisfactory == 0 and "newer than the champion's" in refused.reference

    state.judged(b, 1)
    train(state, registry, val_jf=None, outcome="failed")  # a failed run does not count
    assert inputs(state, registry).new_satisfactory == 1
    train(state, registry, val_jf=None, outcome="running")
    running = inputs(state, registry)
    assert running.new_satisfactory == 0 and "still running" in running.reference

    decision = retrain_decision(NOW, registry, state.runs, state.data, NAME, threshold=1)
    assert not decision.retrain and "still running" in decision.reason


def test_a_champion_trained_outside_the_catalog_leaves_every_masklet_new(state: CatalogState, registry: SqlModelRegistry) -> None:
    a, _, _ = state.video_ids
    state.judged(a, 0)
    bootstrap_run = state.runs.start(NAME, {"bootstrap": True}, {"synthetic_videos": 64, "seed": 0})
    state.runs.succeed(bootstrap_run.id)
    bootstrap = registry.register(NAME, {}, None, training_run_id=bootstrap_run.id, metrics={"val_jf": 0.9})
    registry.set_alias(NAME, "champion", bootstrap.version)

    found = inputs(state, registry)
    assert found.new_satisfactory == 1 and "not on catalog data" in found.reference

    hub = registry.register(NAME, {}, None, metrics={"val_jf": 0.9})  # registered from a checkpoint, no run
    registry.set_alias(NAME, "champion", hub.version)
    outside = inputs(state, registry)
    assert outside.new_satisfactory == 1 and "trained outside the catalog" in outside.reference
    assert outside.last_trained_at == hub.created_at

    decision = retrain_decision(NOW, registry, state.runs, state.data, NAME, threshold=1)
    assert decision.retrain and "1 new satisfactory masklet(s)" in decision.reason
