"""The training loop: clips in, AdamW steps out, a checkpoint every so often.

One loop serves the bootstrap (``sam2-compact`` from scratch on synthetic videos), retraining on
what the phases collected, and fine-tuning real SAM 2.1 checkpoints. Under ``torchrun`` each
process trains on its own clips and PyTorch's DistributedDataParallel averages the gradients
(gloo on CPU, NCCL on GPUs), so scaling out is PyTorch's engine, not ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import Sam2VideoModel

from engine.errors import ConfigError, NoTrainingDataError
from engine.model_loading import DeviceChoice
from training.checkpoints import TrainingState, load_checkpoint, save_checkpoint
from training.clips import Clip, ClipSpec, sample_clip
from training.losses import LossWeights, clip_loss
from training.model import Sam2Trainer
from training.prompts import ClipPrompts, PromptSpec, plan_prompts
from training.videos import TrainingVideo

log = logging.getLogger(__name__)

CLIP_ATTEMPTS = 20  # videos tried for one clip before deciding the data has no visible object


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run; a checkpoint resumes only under the same settings."""

    steps: int = 1000
    lr: float = 5e-4
    min_lr_ratio: float = 0.05  # the cosine schedule ends at lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 0.1  # SAM 2's max gradient norm
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 10
    clips: ClipSpec = field(default_factory=ClipSpec)
    # Share of steps trained on a single frame, as SAM 2 trains on SA-1B images as one-frame
    # videos beside its video data: cheap steps that teach segmentation from prompts.
    image_step_p: float = 0.0
    prompts: PromptSpec = field(default_factory=PromptSpec)
    # Prompts of the single-frame steps when they differ from the clips' (None: ``prompts``): a
    # curriculum that prompts its clips by mask alone still teaches clicks and boxes on images.
    image_prompts: PromptSpec | None = None
    losses: LossWeights = field(default_factory=LossWeights)
    # Learning-rate multipliers by parameter-name prefix (first match wins), as SAM 2 trains its
    # image encoder at a lower rate than the rest: (("vision_encoder", 0.1),).
    lr_scales: tuple[tuple[str, float], ...] = ()
    # Parameter-name prefixes of the only weights this run trains (empty: all of them). The rest
    # stay frozen for the run, e.g. a stage that trains the IoU head alone.
    trainable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if any(not (isinstance(prefix, str) and prefix) for prefix in self.trainable):
            problems.append(f"trainable must be non-empty parameter-name prefixes, got {list(self.trainable)}")
        if any(not (isinstance(scale, (int, float)) and scale > 0) for _, scale in self.lr_scales):
            problems.append(f"lr_scales must be positive numbers, got {dict(self.lr_scales)}")
        if self.steps < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        if not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.image_step_p <= 1.0:
            problems.append(f"image_step_p must be a probability, got {self.image_step_p}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            problems.append("checkpoint_every and log_every must be at least 1")
        if problems:
            raise ConfigError("training config: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (lists, not tuples), as run records store and return them."""
        data = dataclasses.asdict(self)
        data["lr_scales"] = [[prefix, scale] for prefix, scale in self.lr_scales]
        if self.image_prompts is None:  # as written before the field existed: those checkpoints still resume
            del data["image_prompts"]
        if self.trainable:
            data["trainable"] = list(self.trainable)
        else:  # likewise
            del data["trainable"]
        return data


@dataclass(frozen=True)
class TrainResult:
    steps: int
    resumed_from: int  # 0 for a fresh run
    seconds: float  # wall time of the steps run in this process (not those before a resume)
    clips_per_second: float  # over all processes
    history: list[dict[str, float]]
    # Wall time of all the run's steps, including those an earlier process ran before a resume.
    total_seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else math.nan


def train(
    model: Sam2VideoModel,
    videos: Sequence[TrainingVideo],
    config: TrainConfig,
    run_dir: Path,
    device: DeviceChoice,
    *,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on clips of ``videos``, resuming from ``run_dir``'s checkpoint if any.

    ``progress(step, steps, losses)`` is called at every log point. Under ``torchrun`` (the
    process group initialised by the caller) the gradients are averaged across processes and
    only rank 0 writes checkpoints.
    """
    if not videos:
        raise NoTrainingDataError("no training videos: nothing to train on")
    with _only_trainable(model, config.trainable):
        return _train(model, videos, config, run_dir, device, progress)


@contextlib.contextmanager
def _only_trainable(model: torch.nn.Module, prefixes: Sequence[str]) -> Iterator[None]:
    """Freeze every parameter outside ``prefixes`` (none when empty) for the run; restored after."""
    if not prefixes:
        yield
        return
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name, _ in model.named_parameters())]
    if unmatched:
        raise ConfigError(f"trainable: no parameter of the model starts with {', '.join(map(repr, unmatched))}")
    before = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    try:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(before[name] and name.startswith(tuple(prefixes)))
        yield
    finally:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(before[name])


def _train(
    model: Sam2VideoModel,
    videos: Sequence[TrainingVideo],
    config: TrainConfig,
    run_dir: Path,
    device: DeviceChoice,
    progress: Callable[[int, int, dict[str, float]], None] | None,
) -> TrainResult:
    rank, world = _rank_and_world()
    model.to(device.device).train()
    trainer = Sam2Trainer(model, config.prompts)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_parameter_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    history: list[dict[str, float]] = []
    window: list[dict[str, float]] = []  # losses of the steps since the last log point
    start = 0
    earlier_seconds = 0.0  # training time of the processes that ran this run before a resume
    state = load_checkpoint(run_dir)
    if state is not None:
        if state.config != config.to_json():
            raise ConfigError(
                f"{run_dir} holds a checkpoint of a run with other settings; use a new run folder "
                "or the same settings to resume"
            )
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        history, window, start = list(state.history), list(state.pending), state.step
        earlier_seconds = state.train_seconds
        log.info("resuming %s at step %d of %d", run_dir, start, config.steps)
    step_module: torch.nn.Module = _ClipLoss(trainer, config.losses)
    if world > 1:
        step_module = DistributedDataParallel(step_module, find_unused_parameters=True)
    began = time.perf_counter()
    for step in range(start, config.steps):
        clip = _clip_for_step(videos, config, rank, step, model.image_size)
        generator = torch.Generator().manual_seed(_step_seed(config.seed, rank, step))
        torch.manual_seed(_step_seed(config.seed, rank, step))  # dropout, identical after a resume
        prompts = plan_prompts(clip.frame_count, _prompt_spec(config, clip.frame_count), generator)
        pixels, masks = clip.pixels.to(device.device), clip.masks.to(device.device)
        with device.autocast():
            loss, parts = step_module(pixels, masks, prompts, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        scheduler.step()
        window.append({"loss": float(loss.detach()), **parts, "grad_norm": float(grad_norm)})
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            entry = {"step": float(done), "lr": scheduler.get_last_lr()[0], **_mean(window)}
            history.append(entry)
            window = []
            if progress is not None and rank == 0:
                progress(done, config.steps, entry)
        if done % config.checkpoint_every == 0 or done == config.steps:
            spent = earlier_seconds + time.perf_counter() - began
            _checkpoint(run_dir, done, model, optimizer, scheduler, config, history, window, spent, rank, world)
    seconds = time.perf_counter() - began
    ran = config.steps - start
    return TrainResult(
        steps=config.steps,
        resumed_from=start,
        seconds=seconds,
        clips_per_second=ran * world / seconds if seconds > 0 else math.nan,
        history=history,
        total_seconds=earlier_seconds + seconds,
    )


class _ClipLoss(torch.nn.Module):
    """The training model and its loss as one module, so that the loss is what forward returns.

    DistributedDataParallel (with ``find_unused_parameters``) waits for a gradient from every
    parameter reachable from forward's output. The predictions hold tensors that no loss term
    reads (the object pointer of a clip's last frame, or of a one-frame clip), so wrapping the
    trainer alone would leave parameters that never report and fail the next step; the loss
    reaches exactly the parameters that get gradients.
    """

    def __init__(self, trainer: Sam2Trainer, weights: LossWeights) -> None:
        super().__init__()
        self.trainer = trainer
        self.weights = weights

    def forward(
        self, pixels: torch.Tensor, masks: torch.Tensor, prompts: ClipPrompts, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return clip_loss(self.trainer(pixels, masks, prompts, generator), masks, self.weights)


def _parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning rate (``config.lr_scales``); one group when unscaled."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            scale = next((s for prefix, s in config.lr_scales if name.startswith(prefix)), 1.0)
            groups.setdefault(float(scale), []).append(parameter)
    return [{"params": params, "lr": config.lr * scale} for scale, params in groups.items()]


def _clip_for_step(videos: Sequence[TrainingVideo], config: TrainConfig, rank: int, step: int, size: int) -> Clip:
    rng = np.random.default_rng([config.seed, rank, step])
    spec = config.clips
    if config.image_step_p and rng.random() < config.image_step_p:
        spec = dataclasses.replace(spec, frames=1)
    for _ in range(CLIP_ATTEMPTS):
        video = videos[int(rng.integers(len(videos)))]
        clip = sample_clip(video, rng, size, spec)
        if clip is not None:
            return clip
    raise NoTrainingDataError(
        f"tried {CLIP_ATTEMPTS} videos for a clip and none had an object visible on any frame; "
        "the training masklets are empty"
    )


def _prompt_spec(config: TrainConfig, frame_count: int) -> PromptSpec:
    return config.image_prompts if frame_count == 1 and config.image_prompts is not None else config.prompts


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` at the last step."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _mean(window: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(entry[key] for entry in window) / len(window) for key in window[0]} if window else {}


def _checkpoint(run_dir, step, model, optimizer, scheduler, config, history, window, train_seconds, rank, world) -> None:
    if rank == 0:
        save_checkpoint(
            run_dir,
            TrainingState(
                step=step,
                model={k: v.detach().cpu() for k, v in model.state_dict().items()},
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                config=config.to_json(),
                history=history,
                pending=window,
                train_seconds=train_seconds,
            ),
        )
    if world > 1:
        dist.barrier()


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
