"""One retraining round on the catalog: a new version with its lineage, metrics and gate decision,
or, when training fails, a failed run and nothing else changed."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner
from transformers import Sam2VideoModel

from engine.errors import ConfigError
from engine.mask_upsampling import BILINEAR, GUIDED
from engine.masklets import MaskletSource
from engine.model_registry import CHAMPION, ModelVersion, previous_alias
from engine.segmenter_config import COMPACT, sam2_compact_config
from flows.cli import train_cmd
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from storage.objects import LocalObjectStore
from training.bootstrap import BOOTSTRAP_LOSSES, BOOTSTRAP_LR, BOOTSTRAP_LR_SCALES, save_model
from training.clips import ClipSpec
from training.dataset import build_datasets, reserve_validation_videos
from training.evaluate import EVALUATION_PROTOCOL
from training.loop import TrainConfig
from training.promotion import CHALLENGER, PROMOTION_KEY
from training.prompts import PromptSpec
from training.retrain import _recordable, fine_tune_config, retrain
from tests.training.catalog_state import CatalogState, make_state, synthesize_videos
from tests.training.tiny import CPU

# Two steps that do move the weights (no warm-up), on three-frame clips with one correction.
TINY = TrainConfig(
    steps=2,
    lr=1e-3,
    warmup_steps=0,
    log_every=1,
    checkpoint_every=1,
    clips=ClipSpec(frames=3),
    prompts=PromptSpec(corrections_per_frame=1),
)


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize_videos(tmp_path_factory.mktemp("videos"), 2)


@pytest.fixture
def state(catalog: Catalog, tmp_path: Path, videos_dir: Path) -> CatalogState:
    """One training video with a manual and an auto satisfactory masklet; one Phase 1 validation video."""
    state = make_state(catalog, tmp_path, videos_dir)
    train_video, val_video = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val_video])
    state.judged(train_video, 0, phase=3)
    state.judged(train_video, 1, phase=None, source=MaskletSource.AUTO)
    state.judged(val_video, 0, phase=1)
    return state


def one_masklet_each(catalog: Catalog, root: Path, videos_dir: Path) -> CatalogState:
    """One training video with a Phase 3 satisfactory masklet; one Phase 1 validation video."""
    state = make_state(catalog, root, videos_dir)
    train_video, val_video = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=[val_video])
    state.judged(train_video, 0, phase=3)
    state.judged(val_video, 0, phase=1)
    return state


@pytest.fixture
def registry(catalog: Catalog, tmp_path: Path) -> SqlModelRegistry:
    return registry_in(catalog, tmp_path)


def registry_in(catalog: Catalog, root: Path) -> SqlModelRegistry:
    return SqlModelRegistry(catalog, LocalObjectStore(root / "models"), root / "cache")


def validation_digest(state: CatalogState) -> str:
    """The digest a round records for the catalog's validation set: scores recorded under it are reused."""
    return build_datasets(state.data, state.runs, model_name=COMPACT).manifest.validation_digest


def round_stopped_before_training(state: CatalogState, registry: SqlModelRegistry, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round that fails where training would start: what it recorded for the champion is left."""
    monkeypatch.setattr("training.retrain.train", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        retrain(registry=registry, runs=state.runs, data=state.data, config=TINY, work_dir=root / "work", device=CPU)


def scored_now(digest: str, **scores: object) -> dict:
    """A champion's ``scores`` as a round records them today: on the validation set ``digest``,
    under the current evaluation protocol and the default mask upsampling (so not scored again)."""
    return {"validation_digest": digest, "eval_protocol": EVALUATION_PROTOCOL, "eval_mask_upsampling": GUIDED.name, **scores}


def champion(registry: SqlModelRegistry, tmp_path: Path, metrics: dict | None = None) -> ModelVersion:
    """A registered sam2-compact with weights (seeded random), made champion: the parent to retrain."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = Sam2VideoModel(sam2_compact_config())
    save_model(model, tmp_path / "v1")
    version = registry.register(COMPACT, model.config.to_dict(), tmp_path / "v1", metrics=metrics, note="the first model")
    registry.set_alias(COMPACT, CHAMPION, version.version)
    return version


def test_a_retrain_registers_a_trained_child_of_the_champion_with_its_run_metrics_and_decision(
    state: CatalogState, registry: SqlModelRegistry, tmp_path: Path
) -> None:
    parent = champion(registry, tmp_path)  # never validated: the round scores it first

    outcome = retrain(registry=registry, runs=state.runs, data=state.data, config=TINY, work_dir=tmp_path / "work", device=CPU)

    version = registry.get(COMPACT, outcome.version.version)
    run = state.runs.get(outcome.training_run_id)
    assert (version.version, version.parent_id, version.training_run_id) == (2, parent.id, run.id)
    assert outcome.parent.id == parent.id and run.status == "succeeded" and run.finished_at is not None
    assert run.config == TINY.to_json()
    # The run records exactly which masklets it trained and validated on.
    trained_on = {m["masklet_id"] for v in run.dataset["training"] for m in v["masklets"]}
    validated_on = {m["masklet_id"] for v in run.dataset["validation"] for m in v["masklets"]}
    assert len(trained_on) == 2 and len(validated_on) == 1

    digest = run.dataset["validation_digest"]
    for protocol in ("val_jf", "val_jf_mask", "val_jf_click1", "val_jf_click3"):
        assert 0.0 <= version.metrics[protocol] <= 1.0
    assert version.metrics["validation_digest"] == digest and version.metrics["val_objects"] == 1
    scored_parent = registry.get(COMPACT, parent.version)  # scored on the same set, for the gate
    assert scored_parent.metrics["validation_digest"] == digest and outcome.before["val_jf"] == scored_parent.metrics["val_jf"]
    # one validation video: each side's score of it is recorded, but one pair gives no interval
    assert set(version.metrics["val_jf_per_video"]) == set(scored_parent.metrics["val_jf_per_video"]) == {state.video_ids[1]}
    assert outcome.gain is None and "val_gain" not in version.metrics and "gain" not in outcome.summary()

    decision = version.metrics[PROMOTION_KEY]
    assert decision["promoted"] is outcome.promoted and decision["champion_ref"] == parent.ref
    assert decision["candidate"] == version.metrics["val_jf"] and decision["champion"] == scored_parent.metrics["val_jf"]
    aliases = registry.aliases(COMPACT)
    if outcome.promoted:
        assert aliases[CHAMPION] == 2 and aliases[previous_alias(CHAMPION)] == 1
    else:
        assert aliases[CHAMPION] == 1 and aliases[CHALLENGER] == 2

    weights = registry.weights_dir(version)
    assert (weights / "model.safetensors").is_file()
    trained = Sam2VideoModel.from_pretrained(weights)
    start = Sam2VideoModel.from_pretrained(registry.weights_dir(parent))
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), start.state_dict().values()))


def test_a_run_that_fails_is_recorded_as_failed_and_registers_nothing(
    sqlite_catalog: Catalog, tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = one_masklet_each(sqlite_catalog, tmp_path, videos_dir)
    registry = registry_in(sqlite_catalog, tmp_path)
    # The champion was already scored on this validation set: the round goes straight to training.
    digest = validation_digest(state)
    scored = scored_now(digest, val_jf=0.5, val_jf_per_video={state.video_ids[1]: 0.5})
    parent = champion(registry, tmp_path, metrics=scored)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("training.retrain.train", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        retrain(registry=registry, runs=state.runs, data=state.data, config=TINY, work_dir=tmp_path / "work", device=CPU)

    (run,) = state.runs.list(COMPACT)
    assert run.status == "failed" and "RuntimeError: CUDA out of memory" in run.error and run.finished_at is not None
    assert [v.version for v in registry.list(COMPACT)] == [parent.version]
    assert registry.aliases(COMPACT) == {CHAMPION: parent.version}
    assert registry.get(COMPACT, parent.version).metrics == scored


def test_a_champion_scored_under_an_older_evaluation_protocol_is_scored_again(
    sqlite_catalog: Catalog, tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same validation set, but its clicks decoded the old way: the round measures it afresh."""
    state = one_masklet_each(sqlite_catalog, tmp_path, videos_dir)
    registry = registry_in(sqlite_catalog, tmp_path)
    digest = validation_digest(state)
    parent = champion(registry, tmp_path, metrics={"val_jf": 0.5, "val_jf_click3": 0.9, "validation_digest": digest})
    round_stopped_before_training(state, registry, tmp_path, monkeypatch)
    rescored = registry.get(COMPACT, parent.version).metrics
    assert rescored["eval_protocol"] == EVALUATION_PROTOCOL and rescored["validation_digest"] == digest
    assert rescored["val_jf_click3"] != 0.9 and 0.0 <= rescored["val_jf"] <= 1.0


def test_a_champion_scored_with_another_mask_upsampling_is_scored_again(
    sqlite_catalog: Catalog, tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same set, same protocol, but bilinear masks: guided ones score differently, so measure afresh."""
    state = one_masklet_each(sqlite_catalog, tmp_path, videos_dir)
    registry = registry_in(sqlite_catalog, tmp_path)
    digest = validation_digest(state)
    recorded = {**scored_now(digest, val_jf=0.5, val_jf_per_video={state.video_ids[1]: 0.5}), "eval_mask_upsampling": BILINEAR.name}
    parent = champion(registry, tmp_path, metrics=recorded)
    round_stopped_before_training(state, registry, tmp_path, monkeypatch)
    rescored = registry.get(COMPACT, parent.version).metrics
    assert rescored["eval_mask_upsampling"] == GUIDED.name and rescored["val_jf"] != 0.5


def test_a_round_pairs_its_per_video_scores_with_the_champions_to_say_whether_it_gained(
    catalog: Catalog, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Three validation videos: the gain is the mean per-video change, with its interval, recorded."""
    state = make_state(catalog, tmp_path, synthesize_videos(tmp_path_factory.mktemp("four"), 4))
    train_video, *val_videos = state.video_ids
    reserve_validation_videos(state.data, state.runs, video_ids=val_videos)
    state.judged(train_video, 0, phase=3)
    for video in val_videos:
        state.judged(video, 0, phase=1)
    registry = registry_in(catalog, tmp_path)
    digest = validation_digest(state)
    per_video = {video: 0.25 * i for i, video in enumerate(val_videos)}  # recorded: the round pairs with these
    recorded = scored_now(digest, val_jf=0.25, val_jf_per_video=per_video)
    champion(registry, tmp_path, metrics=recorded)

    outcome = retrain(registry=registry, runs=state.runs, data=state.data, config=TINY, work_dir=tmp_path / "work", device=CPU)

    after = outcome.after["val_jf_per_video"]
    assert set(after) == set(val_videos) and outcome.before["val_jf_per_video"] == per_video
    gain = outcome.gain
    assert gain is not None and gain.videos == 3
    assert outcome.after["val_objects_per_video"] == dict.fromkeys(val_videos, 1)  # equal weights here
    assert gain.mean == pytest.approx(sum(after[v] - per_video[v] for v in val_videos) / 3)
    assert gain.low <= gain.mean <= gain.high
    stored = registry.get(COMPACT, outcome.version.version).metrics
    assert (stored["val_gain"], stored["val_gain_low"], stored["val_gain_high"], stored["val_gain_videos"]) == (
        gain.mean, gain.low, gain.high, 3
    )
    assert gain.describe() in outcome.summary()


def test_a_champion_recorded_without_per_video_scores_is_scored_again_and_its_old_gain_cleared(
    sqlite_catalog: Catalog, tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same set and protocol, but no video-by-video scores to pair with: the round measures them."""
    state = one_masklet_each(sqlite_catalog, tmp_path, videos_dir)
    registry = registry_in(sqlite_catalog, tmp_path)
    digest = validation_digest(state)
    own_round = {"val_gain": 0.02, "val_gain_low": 0.01, "val_gain_high": 0.03, "val_gain_videos": 40}
    recorded = scored_now(digest, val_jf=0.5, **own_round)
    parent = champion(registry, tmp_path, metrics=recorded)
    round_stopped_before_training(state, registry, tmp_path, monkeypatch)
    rescored = registry.get(COMPACT, parent.version).metrics
    assert set(rescored["val_jf_per_video"]) == set(rescored["val_objects_per_video"]) == {state.video_ids[1]}
    assert rescored["val_jf"] != 0.5 and rescored["val_objects_per_video"][state.video_ids[1]] == 1
    # its own round's gain paired the scores just replaced: kept, it would sit beside the new ones
    assert all(rescored[key] is None for key in own_round)


def test_a_score_that_could_not_be_computed_is_recorded_as_missing_at_any_depth() -> None:
    recorded = _recordable({"val_jf": math.nan, "val_jf_per_video": {"a": math.nan, "b": 0.5}, "n": 3, "inf": math.inf})
    assert recorded == {"val_jf": None, "val_jf_per_video": {"a": None, "b": 0.5}, "n": 3, "inf": None}
    json.dumps(recorded, allow_nan=False)


def test_a_round_fine_tunes_under_the_recipe_its_model_was_trained_with() -> None:
    compact = fine_tune_config(COMPACT, 40)
    assert compact.losses.dice == 20.0 and compact.lr_scales == BOOTSTRAP_LR_SCALES and compact.steps == 40
    real = fine_tune_config("facebook/sam2.1-hiera-tiny", 40)
    assert (real.losses.focal, real.losses.dice) == (20.0, 1.0) and real.lr == 5e-6  # SAM 2.1's fine-tuning rate
    assert dict(real.lr_scales)["vision_encoder"] < 1
    # A round fine-tunes well below the rate the bootstrap trained at (a fresh optimiser's first
    # steps at that rate undo more than a short round teaches); an explicit rate wins.
    assert compact.lr < BOOTSTRAP_LR / 10 and fine_tune_config(COMPACT, 40, lr=1e-4).lr == 1e-4


def test_a_compact_round_trains_on_the_continuations_clips_unless_sam2s_recipe_is_asked_for() -> None:
    carry, sam2 = fine_tune_config(COMPACT, 40), fine_tune_config(COMPACT, 40, recipe="sam2")
    track = fine_tune_config(COMPACT, 40, recipe="track")
    assert carry == fine_tune_config(COMPACT, 40, recipe="carry")
    assert carry.clips.frames == 2 and carry.image_step_p > 0
    assert carry.prompts.mask_p == 1.0 and carry.prompts.correction_frames == 1 and carry.prompts.corrections_per_frame == 3
    # track: the same clips and prompts, 8 frames long (the shipped model's last continuations)
    assert track.clips.frames == 8 and replace(track, clips=carry.clips) == carry
    assert sam2.clips.frames == 8 and sam2.prompts.mask_p == 0.5
    for config in (carry, track, sam2):  # the round's rate, schedule and losses, whichever clips
        assert (config.lr, config.warmup_steps, config.steps, config.losses, config.lr_scales) == (
            5e-6, 9, 40, BOOTSTRAP_LOSSES, BOOTSTRAP_LR_SCALES
        )
    with pytest.raises(ConfigError, match="unknown retraining recipe 'fast'"):
        fine_tune_config(COMPACT, 40, recipe="fast")
    with pytest.raises(ConfigError, match="sam2-compact's"):
        fine_tune_config("facebook/sam2.1-hiera-tiny", 40, recipe="carry")
    with pytest.raises(ConfigError, match="'track' recipe is sam2-compact's"):
        fine_tune_config("facebook/sam2.1-hiera-tiny", 40, recipe="track")


# --- the command line: `dataengine train` and `dataengine evaluate-model` ----------------------


@pytest.fixture
def cli_state(sqlite_catalog: Catalog, sqlite_url: str, tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The ``state`` catalog on SQLite, with the CLI pointed at it and a seeded champion registered."""
    state = one_masklet_each(sqlite_catalog, tmp_path, videos_dir)
    registry = SqlModelRegistry(sqlite_catalog, state.store, tmp_path / "cache")
    champion(registry, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", sqlite_url)
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'objects'}")
    return state, registry


def _cli() -> typer.Typer:
    app = typer.Typer()
    train_cmd.register(app)
    return app


def test_train_on_the_command_line_runs_a_round_under_the_asked_recipe_and_rate(cli_state, tmp_path: Path) -> None:
    state, registry = cli_state
    runner = CliRunner()

    trained = runner.invoke(_cli(), ["train", "--steps", "1", "--recipe", "sam2", "--lr", "2e-5", "--run-dir", str(tmp_path / "work")])

    assert trained.exit_code == 0, trained.output
    assert trained.stdout.strip().startswith("sam2-compact@2: validation J&F")
    (run,) = state.runs.list(COMPACT)
    assert run.status == "succeeded" and run.config["lr"] == 2e-5 and run.config["steps"] == 1
    assert run.config == fine_tune_config(COMPACT, 1, 2e-5, "sam2").to_json()  # SAM 2's 8-frame clips
    assert run.config["clips"]["frames"] == 8 and fine_tune_config(COMPACT, 1).clips.frames == 2
    assert registry.get(COMPACT, 2).training_run_id == run.id

    scored = runner.invoke(_cli(), ["evaluate-model", "sam2-compact@2"])
    assert scored.exit_code == 0, scored.output
    metrics = json.loads(scored.stdout)
    assert {"val_jf", "val_jf_mask", "val_jf_click1", "val_jf_click3"} <= set(metrics)
    assert metrics["val_jf"] == pytest.approx(registry.get(COMPACT, 2).metrics["val_jf"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "fast"], "unknown retraining recipe 'fast'"),
        (["--bootstrap", "--recipe", "carry"], "--lr and --recipe set a retraining round"),
        (["--bootstrap", "--lr", "1e-4"], "--lr and --recipe set a retraining round"),
    ],
)
def test_train_refuses_a_bad_recipe_before_anything_is_recorded(cli_state, tmp_path: Path, args: list[str], message: str) -> None:
    state, registry = cli_state
    result = CliRunner().invoke(_cli(), ["train", "--steps", "1", "--run-dir", str(tmp_path / "work"), *args])
    assert result.exit_code == 2 and message in result.output
    assert state.runs.list(COMPACT) == [] and [v.version for v in registry.list(COMPACT)] == [1]
    assert not (tmp_path / "work").exists()
