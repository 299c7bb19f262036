"""The training loop: resuming ends exactly where an uninterrupted run ends, bad input is refused, it learns."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ConfigError, CorruptCheckpointError, NoTrainingDataError
from engine.masklets import Masklet
from engine.masks import encode
from training.checkpoints import CHECKPOINT_NAME, load_checkpoint
from training.clips import ClipSpec, make_clip
from training.losses import clip_loss
from training.loop import TrainConfig, train
from training.model import Sam2Trainer
from training.prompts import ClipPrompts, PromptKind, PromptSpec
from training.videos import TrainingVideo
from tests.training.tiny import CPU, same_parameters, small_model, tiny_video

# Two-frame clips, one correction click: every code path of a step (all three prompt kinds show
# up over a few steps, with corrections and augmentation) at a few tenths of a second.
QUICK = TrainConfig(
    steps=4,
    lr=1e-3,
    warmup_steps=2,
    checkpoint_every=2,
    log_every=3,  # not a divisor of checkpoint_every: a resume must carry the unlogged steps
    clips=ClipSpec(frames=2),
    prompts=PromptSpec(corrections_per_frame=1),
)


class Interrupted(Exception):
    """Stands for the process being killed."""


@pytest.fixture(scope="module")
def videos() -> list[TrainingVideo]:
    return [tiny_video(3), tiny_video(5, objects=2)]


def test_a_run_interrupted_after_a_checkpoint_and_resumed_ends_exactly_as_an_uninterrupted_run(videos, tmp_path: Path) -> None:
    straight = small_model()
    uninterrupted = train(straight, videos, QUICK, tmp_path / "straight", CPU)

    def killed_at_step_3(step: int, steps: int, losses: dict[str, float]) -> None:
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(small_model(), videos, QUICK, tmp_path / "resumed", CPU, progress=killed_at_step_3)
    assert load_checkpoint(tmp_path / "resumed").step == 2  # step 3 ran, but its result was lost with the process
    seconds_at_step_2 = load_checkpoint(tmp_path / "resumed").train_seconds
    assert seconds_at_step_2 > 0
    resumed_model = small_model()  # a new process: fresh weights, everything else from the checkpoint
    resumed = train(resumed_model, videos, QUICK, tmp_path / "resumed", CPU)

    assert resumed.resumed_from == 2 and uninterrupted.resumed_from == 0
    assert same_parameters(resumed_model, straight) == []
    assert resumed.history == uninterrupted.history  # step 3's entry averages steps 1-3 in both
    assert [h["step"] for h in resumed.history] == [3.0, 4.0]
    assert same_parameters(resumed_model, small_model()) != []  # and training did change the weights
    # Training time spans both processes: the killed one's time up to its checkpoint counts.
    assert resumed.total_seconds > resumed.seconds > 0
    assert resumed.total_seconds == pytest.approx(resumed.seconds + seconds_at_step_2)


def test_a_finished_run_resumed_again_changes_nothing(videos, tmp_path: Path) -> None:
    config = TrainConfig(steps=1, checkpoint_every=1, clips=ClipSpec(frames=2))
    model = small_model()
    first = train(model, videos, config, tmp_path, CPU)
    again_model = small_model()
    again = train(again_model, videos, config, tmp_path, CPU)
    assert again.resumed_from == 1 and again.history == first.history
    assert same_parameters(again_model, model) == []


@pytest.fixture(scope="module")
def one_step_run(videos, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainConfig]:
    """A run folder holding the checkpoint of a one-step run, and that run's settings."""
    config = TrainConfig(steps=1, checkpoint_every=1, clips=ClipSpec(frames=2))
    run_dir = tmp_path_factory.mktemp("one-step")
    train(small_model(), videos, config, run_dir, CPU)
    return run_dir, config


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_a_checkpoint_of_a_run_with_other_settings_is_refused(one_step_run, videos, tmp_path: Path) -> None:
    run_dir, config = one_step_run
    run = copy_run(run_dir, tmp_path)
    before = (run / CHECKPOINT_NAME).read_bytes()
    for other in (TrainConfig(**{**config.__dict__, "lr": 1e-4}), TrainConfig(**{**config.__dict__, "steps": 2})):
        with pytest.raises(ConfigError, match="other settings"):
            train(small_model(), videos, other, run, CPU)
    assert (run / CHECKPOINT_NAME).read_bytes() == before  # refused, and left as it was


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_checkpoint_is_reported_not_trained_over(one_step_run, videos, tmp_path: Path, damage: str) -> None:
    run_dir, config = one_step_run
    run = copy_run(run_dir, tmp_path)
    path = run / CHECKPOINT_NAME
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 100, "empty": b""}[damage])

    with pytest.raises(CorruptCheckpointError, match=CHECKPOINT_NAME):
        train(small_model(), videos, config, run, CPU)


def test_no_videos_or_no_visible_object_is_no_training_data(tmp_path: Path) -> None:
    with pytest.raises(NoTrainingDataError, match="no training videos"):
        train(small_model(), [], QUICK, tmp_path / "a", CPU)
    video = tiny_video(3, frames=3)
    nothing = encode(np.zeros(video.frames.size, dtype=bool))
    blank = tuple(Masklet(m.video_id, m.object_id, m.source, (nothing,) * len(m.masks)) for m in video.masklets)
    empty = TrainingVideo(video.video_id, video.frames, blank)
    with pytest.raises(NoTrainingDataError, match="none had an object visible"):
        train(small_model(), [empty], QUICK, tmp_path / "b", CPU)
    assert load_checkpoint(tmp_path / "b") is None


def test_bad_settings_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="steps must be at least 1.*lr must be positive"):
        TrainConfig(steps=0, lr=0)


def test_the_loss_falls_on_a_video_it_trains_on(tmp_path: Path) -> None:
    video = tiny_video(3)
    model = small_model()
    # Mask prompts only and no augmentation: the loss of one step is comparable with another's.
    config = TrainConfig(
        steps=16,
        lr=2e-3,
        warmup_steps=0,
        checkpoint_every=100,
        log_every=4,
        clips=ClipSpec(frames=2, augment=False),
        prompts=PromptSpec(mask_p=1.0, correction_frames=0),
    )
    probe = make_clip(video, [0, 1, 2], [video.masklets[0].object_id], model.image_size)

    def probe_loss() -> float:
        trainer = Sam2Trainer(model).eval()
        with torch.no_grad():
            predictions = trainer(probe.pixels, probe.masks, ClipPrompts(PromptKind.MASK, (0,), (), 0), torch.Generator())
            return clip_loss(predictions, probe.masks)[0].item()

    before = probe_loss()
    result = train(model, [video], config, tmp_path, CPU)
    after = probe_loss()

    losses = [h["loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0], losses
    assert after < 0.5 * before, (before, after)
    assert result.clips_per_second > 0 and result.final_loss == losses[-1]


def test_lr_scales_move_a_frozen_rate_module_not_at_all_and_the_rest_as_usual(videos, tmp_path: Path) -> None:
    """A module's learning-rate multiplier reaches its parameters: at a tiny scale the image encoder
    barely moves while the rest trains; non-positive scales are refused."""
    with pytest.raises(ConfigError, match="lr_scales must be positive"):
        TrainConfig(lr_scales=(("vision_encoder", 0.0),))
    model = small_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(**{**QUICK.__dict__, "lr_scales": (("vision_encoder", 1e-9),)})
    train(model, videos, config, tmp_path / "run", CPU)
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    assert max(v for n, v in moved.items() if n.startswith("vision_encoder")) < 1e-6
    assert max(v for n, v in moved.items() if n.startswith("mask_decoder")) > 1e-5


def test_single_frame_steps_take_their_own_prompts_when_the_config_gives_them(
    videos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.loop as loop

    seen: list[tuple[int, PromptSpec]] = []
    real = loop.plan_prompts
    monkeypatch.setattr(loop, "plan_prompts", lambda frames, spec, gen: seen.append((frames, spec)) or real(frames, spec, gen))
    clips, images = PromptSpec(mask_p=1.0, click_p=0.0, correction_frames=0), PromptSpec(corrections_per_frame=1)
    config = TrainConfig(steps=6, warmup_steps=0, image_step_p=0.5, clips=ClipSpec(frames=2), prompts=clips, image_prompts=images)
    train(small_model(), videos, config, tmp_path, CPU)
    assert {frames for frames, _ in seen} == {1, 2}  # both kinds of step ran
    assert all(spec == (images if frames == 1 else clips) for frames, spec in seen)
    # Unset, it is not written, so checkpoints from before the field existed still resume.
    assert "image_prompts" not in TrainConfig().to_json() and config.to_json()["image_prompts"]["corrections_per_frame"] == 1


def test_a_run_with_trainable_prefixes_moves_those_weights_alone_and_leaves_the_model_trainable(
    videos, tmp_path: Path
) -> None:
    """Only the named weights train (the IoU head here); afterwards every weight is trainable again,
    and the setting is part of the checkpoint's settings (a resume needs the same)."""
    model = small_model()
    head = "mask_decoder.iou_prediction_head"
    config = TrainConfig(**{**QUICK.__dict__, "trainable": (head,)})
    train(model, videos, config, tmp_path / "run", CPU)
    moved = same_parameters(model, small_model())
    assert moved and all(name.startswith(head) for name in moved)
    assert all(p.requires_grad for p in model.parameters())
    assert load_checkpoint(tmp_path / "run").config["trainable"] == [head]
    # Unset, it is not written, so checkpoints from before the field existed still resume.
    assert "trainable" not in QUICK.to_json()
    with pytest.raises(ConfigError, match="refused|other settings"):
        train(small_model(), videos, QUICK, tmp_path / "run", CPU)


def test_trainable_prefixes_that_name_no_weight_are_refused_before_anything_is_trained(videos, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no parameter of the model starts with 'mask_decoder.iou_head'"):
        train(small_model(), videos, TrainConfig(**{**QUICK.__dict__, "trainable": ("mask_decoder.iou_head",)}), tmp_path, CPU)
    assert load_checkpoint(tmp_path) is None
    with pytest.raises(ConfigError, match="trainable must be non-empty"):
        TrainConfig(trainable=("",))
