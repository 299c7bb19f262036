"""The bootstrap model: ``sam2-compact`` trained from scratch on seeded synthetic videos.

The engine needs a model that works before anyone has annotated anything (the paper started
from SAM and SAM 2 trained on other data; we have no weights to download). Synthetic videos
(:mod:`engine.synthetic`: textured objects that move, occlude, leave and return over textured,
drifting backgrounds) give unlimited ground truth for free, so the bootstrap trains on them
with the same loop, prompts and losses as any retraining, validates on videos of other seeds,
and ships the result in the repository (:data:`BUNDLED_DIR`) with a report of how it was made.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import Sam2VideoModel

from engine.bundled import REPORT_FILE, bundled_dir
from engine.model_loading import DeviceChoice, LoadedModel, build_model
from engine.segmenter_config import COMPACT, sam2_compact_config
from engine.synthetic import SyntheticSpec, generate_video
from storage.objects.atomic_files import write_file_atomically
from training.clips import ClipSpec
from training.evaluate import ModelEvaluation, evaluate_model
from training.loop import TrainConfig, TrainResult, train
from training.losses import LossWeights
from training.prompts import PromptSpec
from training.videos import TrainingVideo, synthetic_training_video

BUNDLED_DIR = bundled_dir(COMPACT)
REPORT_NAME = REPORT_FILE
VALIDATION_SEED_OFFSET = 1_000_000  # validation videos never share a seed with training videos


@dataclass(frozen=True)
class BootstrapSpec:
    """The synthetic data the bootstrap trains and validates on."""

    train_videos: int = 64
    val_videos: int = 8
    seed: int = 0
    video: SyntheticSpec = field(default_factory=SyntheticSpec)


def bootstrap_config(steps: int = 1100) -> TrainConfig:
    """SAM 2's recipe, adjusted for training a small model from scratch on two CPU cores.

    Measured on this machine (single-image overfitting, 60 steps): at SAM 2's fine-tuning
    weights (focal 20 : dice 1) a randomly initialised decoder first learns to call every pixel
    background, and full runs collapsed to a constant output within 100 steps; with dice
    weighted like focal (20 : 20) masks take shape within 20 steps. So the bootstrap weights dice
    at 20 and uses a from-scratch learning rate (SAM 2 fine-tunes at 5e-6). Half the steps are
    image steps (one frame, as SAM 2 mixes SA-1B images into video training), which cost an
    eighth of a clip and teach segmentation from prompts; corrective clicks are capped at 3 a
    frame (SAM 2: 7), since on two cores they cost as much as the rest of the step.
    """
    return TrainConfig(
        steps=steps,
        lr=2e-3,
        warmup_steps=100,
        checkpoint_every=100,
        log_every=25,
        image_step_p=0.5,
        prompts=PromptSpec(corrections_per_frame=3),
        losses=LossWeights(dice=20.0),
    )


def curriculum_stages(steps: int = 1200) -> tuple[TrainConfig, TrainConfig]:
    """A candidate bootstrap recipe that gets the memory path used (not the default yet).

    Measured (docs/training.md): under :func:`bootstrap_config` the image encoder's features
    grow a hundredfold, memory attention's share of its output shrinks as much, and the model
    learns to ignore its memory. Here the image encoder trains at 30 % of the rate and the memory
    modules at 3x (SAM 2 also gives its image encoder a rate of its own), and two thirds of the
    steps are 2-frame clips prompted by a mask: the model's first job is to carry an object's
    mask to the next frame, which only memory can do. The last third are SAM 2's 8-frame clips
    and prompts. ``bench/bootstrap_recipes.py`` compares it with :func:`bootstrap_config`.
    """
    scales = (("vision_encoder", 0.3), ("memory_attention", 3.0), ("memory_encoder", 3.0))
    first = max(1, round(steps * 2 / 3))
    base = bootstrap_config(steps)
    carry = replace(
        base,
        steps=first,
        lr=1e-3,
        warmup_steps=min(50, first),
        image_step_p=0.0,
        clips=ClipSpec(frames=2),
        prompts=PromptSpec(mask_p=1.0, click_p=0.0, max_cond_frames=1, correction_frames=0, corrections_per_frame=0),
        lr_scales=scales,
    )
    track = replace(
        base,
        steps=max(1, steps - first),
        lr=1e-3,
        warmup_steps=min(20, max(1, steps - first)),
        image_step_p=0.3,
        lr_scales=scales,
    )
    return carry, track


def synthetic_videos(spec: BootstrapSpec) -> tuple[list[TrainingVideo], list[TrainingVideo]]:
    """Training and validation videos, rendered in memory from their seeds."""
    train_set = [
        synthetic_training_video(generate_video(f"boot-{spec.seed}-{i:04d}", spec.seed * 100_003 + i, spec.video))
        for i in range(spec.train_videos)
    ]
    val_set = [
        synthetic_training_video(
            generate_video(f"bootval-{spec.seed}-{i:04d}", VALIDATION_SEED_OFFSET + spec.seed * 100_003 + i, spec.video)
        )
        for i in range(spec.val_videos)
    ]
    return train_set, val_set


@dataclass(frozen=True)
class BootstrapResult:
    train: TrainResult
    evaluation: ModelEvaluation
    weights_dir: Path
    report: dict[str, Any]


def run_bootstrap(
    spec: BootstrapSpec,
    config: TrainConfig,
    run_dir: Path,
    device: DeviceChoice,
    *,
    command: str,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    rank: int = 0,
) -> BootstrapResult | None:
    """Train ``sam2-compact`` from scratch (resuming ``run_dir``), validate, and save it to ``run_dir/model``.

    Under torchrun every rank trains; only rank 0 saves and validates (the others return None).
    """
    began = time.perf_counter()
    train_set, val_set = synthetic_videos(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Sam2VideoModel(sam2_compact_config())
    result = train(model, train_set, config, run_dir, device, progress=progress)
    if rank != 0:
        return None
    weights_dir = run_dir / "model"
    save_model(model, weights_dir)
    loaded = load_trained(weights_dir, device)
    evaluation = evaluate_model(loaded, val_set)
    report = {
        "model": COMPACT,
        "command": command,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": {**asdict(spec), "video": asdict(spec.video)},
        "train_config": config.to_json(),
        "train_seconds": result.seconds,
        "clips_per_second": result.clips_per_second,
        "final_loss": result.final_loss,
        "validation": evaluation.metrics(),
        "validation_per_video": evaluation.per_video,
        "total_seconds": time.perf_counter() - began,
        "device": str(device.device),
        "torch_threads": torch.get_num_threads(),
    }
    _write_json(weights_dir / REPORT_NAME, report)
    return BootstrapResult(result, evaluation, weights_dir, report)


def save_model(model: Sam2VideoModel, directory: Path) -> None:
    """``save_pretrained`` into a fresh folder swapped in whole, so a reader never sees half a model."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        model.save_pretrained(staging)
        old = directory.with_name(f".{directory.name}-old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
        staging.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_trained(directory: Path, device: DeviceChoice) -> LoadedModel:
    return build_model(directory, task="video", device=device)


def ship(weights_dir: Path, destination: Path = BUNDLED_DIR) -> Path:
    """Copy a trained model (weights, config, report) into the repository as the bundled default."""
    save_dir = destination
    staging = Path(tempfile.mkdtemp(prefix=".bundled-", dir=destination.parent if destination.parent.exists() else None))
    try:
        for name in ("config.json", "model.safetensors", REPORT_NAME):
            shutil.copy2(weights_dir / name, staging / name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if save_dir.exists():
            shutil.rmtree(save_dir)
        shutil.move(str(staging), save_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return save_dir


def _write_json(path: Path, value: dict[str, Any]) -> None:
    data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
    write_file_atomically(path, lambda out: out.write(data))
