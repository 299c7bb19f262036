"""The bootstrap: its two-stage recipe, a run that trains, validates, resumes and registers, and
the shipped checkpoint that ``sam2-compact`` loads out of the box."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Sam2VideoModel

from engine.errors import ConfigError
from engine.mask_upsampling import GUIDED
from engine.model_loading import build_model
from engine.model_registry import CHAMPION
from engine.segmenter_config import COMPACT, sam2_compact_config
from engine.synthetic import generate_video
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from storage.objects import LocalObjectStore
from storage.training_runs import SqlTrainingRuns
from training.__main__ import main as training_main
from training.bootstrap import (
    BOOTSTRAP_LR,
    BOOTSTRAP_LR_SCALES,
    BootstrapSpec,
    bootstrap_stages,
    chain_stage_count,
    bootstrap_spec_of,
    chain_train_seconds,
    IOU_HEAD,
    VALIDATION_SEED_OFFSET,
    continue_stage,
    continues_on,
    fresh_after,
    init_for_tracking,
    iou_head_stage,
    read_bootstrap_report,
    run_bootstrap,
    ship,
    synthetic_videos,
    validate_further,
    widens,
)
from training.clips import ClipSpec
from training.loop import TrainConfig
from training.prompts import PromptKind, PromptSpec, plan_prompts
from training.register import register_bootstrap
from training.videos import synthetic_training_video
from tests.training.tiny import CPU, same_parameters, tiny_spec

# Two tiny videos to train on, one to validate on; two stages of two steps each.
SPEC = BootstrapSpec(train_videos=2, val_videos=1, seed=5, video=tiny_spec(objects=2, frames=6))
STAGES = (
    TrainConfig(steps=2, lr=1e-3, warmup_steps=0, checkpoint_every=1, clips=ClipSpec(frames=2), prompts=PromptSpec(mask_p=1.0, click_p=0.0)),
    TrainConfig(steps=2, lr=1e-3, warmup_steps=0, checkpoint_every=1, clips=ClipSpec(frames=3), prompts=PromptSpec(corrections_per_frame=1)),
)


def test_the_recipe_carries_masks_on_two_frame_clips_first_then_trains_on_sam2_clips() -> None:
    carry, track = bootstrap_stages(12_000)
    assert (carry.steps, track.steps) == (10_000, 2_000) and carry.lr == track.lr == 5e-4
    assert carry.clips.frames == 2 and carry.image_step_p == 0.0
    assert (carry.prompts.mask_p, carry.prompts.max_cond_frames, carry.prompts.corrections_per_frame) == (1.0, 1, 0)
    assert track.clips.frames == 8 and track.prompts.mask_p == 0.5 and track.image_step_p > 0
    assert carry.lr_scales == track.lr_scales == BOOTSTRAP_LR_SCALES
    assert dict(BOOTSTRAP_LR_SCALES)["vision_encoder"] < 1 < dict(BOOTSTRAP_LR_SCALES)["memory_attention"]
    assert tuple(stage.steps for stage in bootstrap_stages(2)) == (1, 1)
    with pytest.raises(ConfigError, match="at least 2 steps"):
        bootstrap_stages(1)


def test_a_bootstrap_run_trains_its_stages_in_turn_validates_and_resumes_without_retraining(tmp_path: Path) -> None:
    result = run_bootstrap(SPEC, STAGES, tmp_path / "run", CPU, command="python -m training bootstrap --steps 4")
    assert result is not None
    assert [(r.steps, r.resumed_from) for r in result.stages] == [(2, 0), (2, 0)]
    report = json.loads((result.weights_dir / "bootstrap.json").read_text())
    assert report["command"] == "python -m training bootstrap --steps 4" and report["steps"] == 4
    assert [stage["clips"]["frames"] for stage in report["train_stages"]] == [2, 3]
    assert len(report["stage_seconds"]) == 2 and report["clips_per_second"] > 0
    for protocol in ("val_jf_mask", "val_jf_click1", "val_jf_click3"):
        assert 0.0 <= report["validation"][protocol] <= 1.0
    trained = Sam2VideoModel.from_pretrained(result.weights_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(STAGES[0].seed)
        scratch = Sam2VideoModel(trained.config)
    assert same_parameters(trained, scratch) != []  # the stages did train

    # Started again on the same folder: every stage is already done, the same weights come out.
    again = run_bootstrap(SPEC, STAGES, tmp_path / "run", CPU, command="again")
    assert again is not None and [(r.steps, r.resumed_from) for r in again.stages] == [(2, 2), (2, 2)]
    assert same_parameters(trained, Sam2VideoModel.from_pretrained(again.weights_dir)) == []


def test_a_shipped_bootstrap_is_what_sam2_compact_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_bootstrap(SPEC, STAGES[:1], tmp_path / "run", CPU, command="c")
    assert result is not None
    monkeypatch.setattr("engine.bundled.WEIGHTS_ROOT", tmp_path / "weights")
    assert not build_model(COMPACT, device=CPU).pretrained  # nothing shipped: random initialisation

    shipped = ship(result.weights_dir, tmp_path / "weights" / COMPACT)
    assert sorted(p.name for p in shipped.iterdir()) == ["bootstrap.json", "config.json", "model.safetensors"]
    loaded = build_model(COMPACT, device=CPU)
    assert loaded.pretrained and "bundled bootstrap checkpoint" in loaded.origin
    assert same_parameters(loaded.module, Sam2VideoModel.from_pretrained(result.weights_dir)) == []
    assert not build_model(COMPACT, device=CPU, random_weights=True).pretrained


def test_a_registered_bootstrap_records_its_stages_and_becomes_the_first_champion(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    registry = SqlModelRegistry(sqlite_catalog, LocalObjectStore(tmp_path / "models"), tmp_path / "cache")
    runs = SqlTrainingRuns(sqlite_catalog)
    outcome = register_bootstrap(registry, runs, SPEC, STAGES, tmp_path / "run", CPU, margin=0.01)

    run = runs.get(outcome.version.training_run_id)
    assert run.status == "succeeded" and [stage["steps"] for stage in run.config["stages"]] == [2, 2]
    assert run.dataset["kind"] == "synthetic-bootstrap" and run.dataset["train_videos"] == 2
    assert outcome.decision.promote and registry.aliases(COMPACT)[CHAMPION] == outcome.version.version
    assert "4 steps" in outcome.version.note and 0.0 <= outcome.metrics["val_jf_mask"] <= 1.0


def test_memory_attention_starts_by_looking_where_the_object_was() -> None:
    """After init_for_tracking, a memory token changes the output mostly at its own position."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Sam2VideoModel(sam2_compact_config())
    side = model.backbone_feature_sizes[-1][0]

    def influence() -> torch.Tensor:
        attention = model.memory_attention.eval()
        generator = torch.Generator().manual_seed(1)  # small features and memories, as at initialisation
        current = torch.randn(side * side, 1, attention.layers[0].cross_attn_image.hidden_size, generator=generator) * 0.1
        memory = torch.randn(side * side, 1, 64, generator=generator) * 0.1
        positions = torch.zeros_like(memory)
        with torch.no_grad():
            base = attention(current_vision_features=current, memory=memory, memory_posision_embeddings=positions)
            memory[5 * side + 7] += 0.5  # one marked token at row 5, column 7
            marked = attention(current_vision_features=current, memory=memory, memory_posision_embeddings=positions)
        return (marked - base).abs().sum(dim=-1).reshape(side, side)

    before = influence()
    init_for_tracking(model)
    after = influence()
    assert divmod(int(after.argmax()), side) == (5, 7)
    share = lambda grid: float(grid[4:7, 6:9].sum() / grid.sum())  # noqa: E731 - within one token
    assert share(after) > 0.5 > share(before)


def test_a_continuation_carries_masks_on_two_frame_clips_and_learns_prompts_on_single_frames() -> None:
    carry, track = bootstrap_stages(8_000)
    more = continue_stage(6_000, seed=2)
    assert more.steps == 6_000 and more.seed == 2 != carry.seed
    assert more.lr < BOOTSTRAP_LR and more.warmup_steps > carry.warmup_steps
    assert (more.clips, more.prompts, more.losses, more.lr_scales) == (carry.clips, carry.prompts, carry.losses, carry.lr_scales)
    assert more.image_step_p > 0 and more.image_prompts == track.prompts and more.image_prompts.click_p > 0


def test_a_continuation_can_train_refinement_clicks_on_the_tracked_frame_of_half_its_clips() -> None:
    plain, refining = continue_stage(100, seed=2), continue_stage(100, seed=2, refine_clicks=3)
    assert plain.prompts.correction_frames == 0
    assert (refining.prompts.correction_frames, refining.prompts.corrections_per_frame) == (1, 3)
    assert replace(refining, prompts=plain.prompts) == plain  # nothing else changes
    generator = torch.Generator().manual_seed(0)
    plans = [plan_prompts(2, refining.prompts, generator) for _ in range(400)]
    assert all(p.kind is PromptKind.MASK and p.cond_frames == (0,) for p in plans)
    corrected = sum(p.correction_frames == (1,) for p in plans)
    assert all(p.correction_frames in ((), (1,)) for p in plans) and 150 < corrected < 250
    with pytest.raises(ConfigError, match="refine_clicks"):
        continue_stage(100, seed=2, refine_clicks=-1)


def test_a_continuation_can_train_on_longer_clips_that_remember_their_own_predictions() -> None:
    plain, longer = continue_stage(100, seed=2, refine_clicks=3), continue_stage(100, seed=2, refine_clicks=3, clip_frames=4)
    assert (plain.clips.frames, longer.clips.frames) == (2, 4)
    assert replace(longer, clips=plain.clips) == plain  # nothing else changes
    generator = torch.Generator().manual_seed(0)
    plans = [plan_prompts(4, longer.prompts, generator) for _ in range(400)]
    assert all(p.kind is PromptKind.MASK and p.cond_frames == (0,) for p in plans)  # one prompt, three frames tracked
    corrected = [f for p in plans for f in p.correction_frames]
    assert set(corrected) == {1, 2, 3} and all(len(p.correction_frames) <= 1 for p in plans)
    for frames in (1, 0):
        with pytest.raises(ConfigError, match="clip_frames >= 2"):
            continue_stage(100, seed=2, clip_frames=frames)


def test_the_iou_head_stage_trains_the_iou_head_alone_on_the_continuations_clips() -> None:
    stage, refining = iou_head_stage(1_000, seed=7), continue_stage(1_000, seed=7, refine_clicks=3)
    assert stage.trainable == (IOU_HEAD,) and stage.lr_scales == ()
    assert (stage.losses.focal, stage.losses.dice, stage.losses.occlusion, stage.losses.magnitude) == (0, 0, 0, 0)
    assert stage.losses.iou > 0
    assert (stage.clips, stage.prompts, stage.image_prompts, stage.image_step_p, stage.seed, stage.steps) == (
        refining.clips, refining.prompts, refining.image_prompts, refining.image_step_p, 7, 1_000
    )
    model = Sam2VideoModel(sam2_compact_config(128))
    assert any(name.startswith(IOU_HEAD) for name, _ in model.named_parameters())


def test_a_continued_bootstrap_starts_from_the_earlier_model_and_records_the_whole_chain(tmp_path: Path) -> None:
    first = run_bootstrap(SPEC, STAGES[:1], tmp_path / "first", CPU, command="first")
    assert first is not None
    # A rate too small to move a weight (zeros move by 1e-30): what comes out is what went in, so it started from it.
    still = TrainConfig(steps=1, lr=1e-30, warmup_steps=0, clips=ClipSpec(frames=2), seed=1)
    second = run_bootstrap(SPEC, (still,), tmp_path / "second", CPU, command="second", start_from=first.weights_dir)
    assert second is not None
    before = Sam2VideoModel.from_pretrained(first.weights_dir).state_dict()
    after = Sam2VideoModel.from_pretrained(second.weights_dir).state_dict()
    assert all(torch.allclose(after[name], value, rtol=0, atol=1e-20) for name, value in before.items())

    report = read_bootstrap_report(second.weights_dir)
    assert report["continues"] == json.loads((first.weights_dir / "bootstrap.json").read_text())
    assert report["init"] == {"continues": str(first.weights_dir)} and report["steps"] == 1
    assert report["chain_train_seconds"] == pytest.approx(first.report["train_seconds"] + report["train_seconds"])
    assert chain_train_seconds(report) == report["chain_train_seconds"] and chain_stage_count(report) == 2

    for other_data in (
        BootstrapSpec(train_videos=2, val_videos=1, seed=6, video=SPEC.video),
        BootstrapSpec(train_videos=1, val_videos=1, seed=5, video=SPEC.video),  # fewer training videos
        BootstrapSpec(train_videos=3, val_videos=2, seed=5, video=SPEC.video),  # other validation videos
    ):
        with pytest.raises(ConfigError, match="other synthetic data"):
            run_bootstrap(other_data, (still,), tmp_path / "third", CPU, command="x", start_from=first.weights_dir)
    assert not (tmp_path / "third").exists()

    # More training videos: the same ones and further seeds, validated on the same videos; the report says so.
    wider = BootstrapSpec(train_videos=3, val_videos=1, seed=5, video=SPEC.video)
    assert widens(SPEC, wider) and not widens(wider, SPEC)
    assert [v.video_id for v in synthetic_videos(wider)[0][:2]] == [v.video_id for v in synthetic_videos(SPEC)[0]]
    assert synthetic_videos(wider)[1][0].video_id == synthetic_videos(SPEC)[1][0].video_id
    fourth = run_bootstrap(wider, (still,), tmp_path / "fourth", CPU, command="fourth", start_from=first.weights_dir)
    assert fourth is not None and fourth.report["data"]["train_videos"] == 3
    assert fourth.report["continues"]["data"]["train_videos"] == 2

    # Fresh training videos: the seeds after every one the chain trained on, validated on the same videos.
    fresh = fresh_after(wider, 2)
    assert continues_on(wider, fresh) and not widens(wider, fresh) and not continues_on(SPEC, fresh)
    assert not continues_on(wider, replace(fresh, train_videos=0))  # no videos is no data, not an error
    fresh_train, fresh_val = synthetic_videos(fresh)
    assert [v.video_id for v in fresh_train] == ["boot-5-0003", "boot-5-0004"]
    assert fresh_val[0].video_id == synthetic_videos(SPEC)[1][0].video_id
    assert {v.video_id for v in fresh_train}.isdisjoint(v.video_id for v in synthetic_videos(wider)[0])
    fifth = run_bootstrap(fresh, (still,), tmp_path / "fifth", CPU, command="fifth", start_from=fourth.weights_dir)
    assert fifth is not None and fifth.report["data"]["first_train_video"] == 3
    assert bootstrap_spec_of(fifth.report) == fresh and fresh_after(fresh, 1).first_train_video == 5
    with pytest.raises(ConfigError, match="other synthetic data"):  # a window that skips seeds is neither
        run_bootstrap(replace(fresh, first_train_video=4), (still,), tmp_path / "sixth", CPU, command="x", start_from=fourth.weights_dir)
    with pytest.raises(ConfigError, match="at least one"):
        fresh_after(wider, 0)


def test_the_bootstrap_trains_on_exactly_the_pixels_and_masklets_its_seeds_render() -> None:
    """Videos are held as PNG and only their sampled frames rendered: nothing may change for the models trained before."""
    train_set, val_set = synthetic_videos(SPEC)
    seeds = [SPEC.seed * 100_003 + i for i in range(SPEC.train_videos)] + [VALIDATION_SEED_OFFSET + SPEC.seed * 100_003]
    for video, seed in zip(train_set + val_set, seeds, strict=True):
        expected = synthetic_training_video(generate_video(video.video_id, seed, SPEC.video))
        assert video.masklets == expected.masklets
        assert all(np.array_equal(video.frames.load(i), expected.frames.load(i)) for i in range(expected.frame_count))


def test_a_model_is_scored_on_its_own_validation_videos_and_on_further_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_bootstrap(SPEC, STAGES[:1], tmp_path / "run", CPU, command="c")
    assert result is not None
    scores = validate_further(result.weights_dir, 2, CPU)
    own, further, both = scores["own"], scores["further"], scores["all"]
    assert (own["videos"], further["videos"], both["videos"]) == (1, 1, 2)
    assert both["objects"] == own["objects"] + further["objects"] and own["objects"] > 0 and further["objects"] > 0
    for protocol in ("mask", "click1", "click3"):
        # The run's own videos reproduce its report; all of them pool every object.
        assert own[protocol] == pytest.approx(result.report["validation"][f"val_jf_{protocol}"], abs=1e-6)
        pooled = (own[protocol] * own["objects"] + further[protocol] * further["objects"]) / both["objects"]
        assert both[protocol] == pytest.approx(pooled)
    # The further video is the next validation seed: a wider spec's second validation video.
    wider_val = synthetic_videos(replace(SPEC, val_videos=2))[1]
    assert [v.video_id for v in wider_val] == [v.video_id for v in synthetic_videos(SPEC)[1]] + [wider_val[1].video_id]
    assert set(validate_further(result.weights_dir, 1, CPU)) == {"own", "all", "mask_upsampling"}
    assert scores["mask_upsampling"] == GUIDED.name  # what the scores depend on, named as evaluations record it
    with pytest.raises(ConfigError, match="fewer than one video"):
        validate_further(result.weights_dir, 0, CPU)

    assert training_main(["validate", str(result.weights_dir), "--val-videos", "2", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["model"] == str(result.weights_dir) and printed["all"] == pytest.approx(both)
    assert printed["mask_upsampling"] == GUIDED.name
    # A folder that is not a bootstrap model is refused before any model is scored.
    assert training_main(["validate", str(result.weights_dir), str(tmp_path), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert "is not a bootstrap model" in captured.err and captured.out == ""


def test_the_chain_counts_the_training_time_of_reports_written_before_it_was_recorded() -> None:
    shipped_first_run = {"train_seconds": 1328.0, "stage0_seconds_earlier_process": 2154, "train_stages": [{}, {}]}
    assert chain_train_seconds(shipped_first_run) == 3482.0
    continued = {"train_seconds": 100.0, "train_stages": [{}], "continues": shipped_first_run}
    assert chain_train_seconds(continued) == 3582.0 and chain_stage_count(continued) == 3


def test_only_a_bootstrap_model_can_be_continued(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no bootstrap.json"):
        read_bootstrap_report(tmp_path)
    (tmp_path / "bootstrap.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_bootstrap_report(tmp_path)
    (tmp_path / "bootstrap.json").write_text(json.dumps({"model": "sam2.1-hiera-tiny", "data": {}}))
    with pytest.raises(ConfigError, match="does not describe"):
        read_bootstrap_report(tmp_path)


def test_the_command_refuses_data_flags_and_a_missing_step_count_when_continuing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--continue-from", str(tmp_path), "--device", "cpu"]
    assert training_main([*base, "--steps", "3", "--val-videos", "4", "--seed", "1"]) == 2
    assert "--val-videos, --seed: a continued bootstrap trains on the data of the model it continues" in capsys.readouterr().err
    assert training_main(base) == 2
    assert "needs --steps" in capsys.readouterr().err
    assert training_main([*base, "--steps", "3"]) == 2
    assert "is not a bootstrap model" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    fresh = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--steps", "3", "--refine-clicks", "3"]
    assert training_main(fresh) == 2
    assert "--refine-clicks is for --continue-from" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _continuations_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list[tuple], list[str]]:
    """The command's continuations, recorded instead of run: (spec, stages) per call, and the base arguments.

    The continued model reads as SPEC's data after 3 stages.
    """
    import training.bootstrap as bootstrap

    ran: list[tuple] = []
    monkeypatch.setattr(bootstrap, "read_bootstrap_report", lambda path: {"model": COMPACT, "data": {}})
    monkeypatch.setattr(bootstrap, "bootstrap_spec_of", lambda report: SPEC)
    monkeypatch.setattr(bootstrap, "chain_stage_count", lambda report: 3)
    monkeypatch.setattr(bootstrap, "run_bootstrap", lambda spec, stages, *a, **kw: ran.append((spec, stages)))
    base = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--continue-from", str(tmp_path), "--device", "cpu", "--steps", "5"]
    return ran, base


def test_the_command_passes_refine_clicks_to_the_continuation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran, base = _continuations_recorded(monkeypatch, tmp_path)
    assert training_main([*base, "--refine-clicks", "2"]) == 0
    assert training_main(base) == 0
    assert training_main([*base, "--iou-head"]) == 0
    assert training_main([*base, "--refine-clicks", "3", "--clip-frames", "4"]) == 0
    (refining,), (plain,), (head,), (longer,) = [stages for _, stages in ran]
    assert refining == continue_stage(5, seed=3, refine_clicks=2) and plain == continue_stage(5, seed=3)
    assert head == iou_head_stage(5, seed=3)
    assert longer == continue_stage(5, seed=3, refine_clicks=3, clip_frames=4)


def test_the_command_widens_a_continuation_to_more_training_videos_and_never_to_fewer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran, base = _continuations_recorded(monkeypatch, tmp_path)
    assert training_main([*base, "--train-videos", "7"]) == 0
    assert training_main(base) == 0
    assert [spec for spec, _ in ran] == [BootstrapSpec(train_videos=7, val_videos=1, seed=5, video=SPEC.video), SPEC]
    assert training_main([*base, "--train-videos", "1"]) == 2
    assert "--train-videos 1: " in capsys.readouterr().err and len(ran) == 2
    assert not (tmp_path / "run").exists()


def test_the_command_draws_fresh_videos_for_a_continuation_and_only_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran, base = _continuations_recorded(monkeypatch, tmp_path)
    assert training_main([*base, "--fresh-videos", "7"]) == 0
    assert [spec for spec, _ in ran] == [replace(SPEC, train_videos=7, first_train_video=SPEC.train_videos)]
    assert training_main([*base, "--fresh-videos", "7", "--train-videos", "9"]) == 2
    assert "either widens its videos or draws fresh ones" in capsys.readouterr().err
    assert training_main([*base, "--fresh-videos", "0"]) == 2
    assert "at least one" in capsys.readouterr().err
    first = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--steps", "3", "--fresh-videos", "4"]
    assert training_main(first) == 2
    assert "--fresh-videos is for --continue-from" in capsys.readouterr().err
    assert len(ran) == 1 and not (tmp_path / "run").exists()


def test_the_iou_head_stage_is_refused_without_a_model_to_continue_or_with_refine_clicks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.bootstrap as bootstrap

    monkeypatch.setattr(bootstrap, "read_bootstrap_report", lambda path: {"model": COMPACT, "data": {}})
    monkeypatch.setattr(bootstrap, "bootstrap_spec_of", lambda report: SPEC)
    fresh = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--steps", "3", "--iou-head"]
    assert training_main(fresh) == 2
    assert "--iou-head is for --continue-from" in capsys.readouterr().err
    assert training_main([*fresh, "--continue-from", str(tmp_path), "--refine-clicks", "3"]) == 2
    assert "leave out --refine-clicks" in capsys.readouterr().err
    assert training_main([*fresh, "--continue-from", str(tmp_path), "--clip-frames", "4"]) == 2
    assert "leave out --refine-clicks and --clip-frames" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_longer_clips_are_refused_for_a_fresh_bootstrap_and_below_two_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.bootstrap as bootstrap

    monkeypatch.setattr(bootstrap, "read_bootstrap_report", lambda path: {"model": COMPACT, "data": {}})
    monkeypatch.setattr(bootstrap, "bootstrap_spec_of", lambda report: SPEC)
    monkeypatch.setattr(bootstrap, "chain_stage_count", lambda report: 3)
    fresh = ["bootstrap", "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--steps", "3", "--clip-frames", "4"]
    assert training_main(fresh) == 2
    assert "--clip-frames is for --continue-from" in capsys.readouterr().err
    continued = [*fresh[:-1], "1", "--continue-from", str(tmp_path)]
    assert training_main(continued) == 2
    assert "clip_frames >= 2, got 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
