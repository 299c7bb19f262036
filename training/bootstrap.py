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
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import Sam2VideoModel

from engine.bundled import REPORT_FILE, bundled_dir
from engine.errors import ConfigError
from engine.model_loading import DeviceChoice, LoadedModel, build_model
from engine.segmenter_config import COMPACT, sam2_compact_config
from engine.synthetic import SyntheticSpec
from storage.objects.atomic_files import write_file_atomically
from training.clips import ClipSpec
from training.evaluate import PER_VIDEO_KEYS, PROTOCOLS, ModelEvaluation, evaluate_model
from training.loop import TrainConfig, TrainResult, train
from training.losses import LossWeights
from training.prompts import PromptSpec
from training.videos import TrainingVideo, rendered_training_video

BUNDLED_DIR = bundled_dir(COMPACT)
REPORT_NAME = REPORT_FILE
DEFAULT_STEPS = 8_000  # the shipped model's run (docs/training.md)
VALIDATION_SEED_OFFSET = 1_000_000  # validation videos never share a seed with training videos


@dataclass(frozen=True)
class BootstrapSpec:
    """The synthetic data the bootstrap trains and validates on.

    Training videos are ``train_videos`` consecutive seeds from the ``first_train_video``-th;
    validation videos depend only on ``seed`` and ``val_videos``, so every run of a chain,
    whichever training videos it draws, is judged on the same ones.
    """

    train_videos: int = 64
    val_videos: int = 8
    seed: int = 0
    video: SyntheticSpec = field(default_factory=SyntheticSpec)
    first_train_video: int = 0


def single_stage_config(steps: int = 1100) -> TrainConfig:
    """The first bootstrap recipe: SAM 2's clips and prompts from the first step (the baseline).

    Measured on this machine (single-image overfitting, 60 steps): at SAM 2's fine-tuning
    weights (focal 20 : dice 1) a randomly initialised decoder first learns to call every pixel
    background, and full runs collapsed to a constant output within 100 steps; with dice
    weighted like focal (20 : 20) masks take shape within 20 steps. So the bootstrap weights dice
    at 20 and uses a from-scratch learning rate (SAM 2 fine-tunes at 5e-6). Half the steps are
    image steps (one frame, as SAM 2 mixes SA-1B images into video training), which cost an
    eighth of a clip and teach segmentation from prompts; corrective clicks are capped at 3 a
    frame (SAM 2: 7), since on two cores they cost as much as the rest of the step.

    Trained alone it does not track (docs/training.md): the model learns to ignore its memory.
    :func:`bootstrap_stages` is the recipe the bootstrap uses; this one is its last stage's base
    and ``bench/bootstrap_recipes.py``'s baseline.
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


# The image encoder learns at 30 % of the rate and the memory modules at 3x: trained at one rate,
# the image encoder's features grow a hundredfold, memory attention's share of its output
# shrinks as much and the model learns to ignore its memory (docs/training.md).
BOOTSTRAP_LR_SCALES = (("vision_encoder", 0.3), ("memory_attention", 3.0), ("memory_encoder", 3.0))
# Dice weighted like focal (see single_stage_config), and image features and memories kept
# within a root-mean-square of 1: without the bound they grow until an object's mask is a
# vanishing share of its memory and the model stops using memory (docs/training.md).
BOOTSTRAP_LOSSES = LossWeights(dice=20.0, magnitude=1.0)
# At 1e-3 (memory modules at 3e-3) whether the memory path takes off within the first few hundred
# steps depended on the draw of clips: one run did, another with other training videos did not;
# at 5e-4 it did (docs/training.md).
BOOTSTRAP_LR = 5e-4
# How sharply memory attention starts out looking at the same place in memory (init_for_tracking).
LOCALITY = 2.0


def init_for_tracking(model: Sam2VideoModel, locality: float = LOCALITY) -> None:
    """Start memory attention as "look where the object was": the bootstrap's initialisation.

    Randomly initialised, memory attention attends almost uniformly over a memory frame's 256
    positions, so the one to four tokens that carry a small object's mask are averaged away;
    the decoder then learns a memory-free salient-object segmentation and the memory path never
    recovers (docs/training.md). Here each cross-attention's query and key projections get one
    constant bias vector (``locality`` in every channel) and weights shrunk tenfold, so at first
    a query-key score is the rotary position encoding's kernel alone: a position attends to the
    same position of every memory frame and its neighbours (at 2.0, 83 % of the weight within
    one token). The previous masks are carried to where the object was from the first step, and
    training learns motion and appearance on top. The weights stay loadable by any SAM 2 code:
    only values change, not the architecture.
    """
    with torch.no_grad():
        for layer in model.memory_attention.layers:
            attention = layer.cross_attn_image
            for projection in (attention.q_proj, attention.k_proj):
                projection.weight.mul_(0.1)
                projection.bias.fill_(locality)


def bootstrap_stages(steps: int = DEFAULT_STEPS) -> tuple[TrainConfig, TrainConfig]:
    """The bootstrap recipe: a curriculum of two stages, ``steps`` in all.

    The model starts from :func:`init_for_tracking` and trains under :data:`BOOTSTRAP_LOSSES`.
    Five sixths of the steps are 2-frame clips prompted by a mask on the first frame: the model's
    first job is to carry each object's mask to the next frame, which only memory can do, so the
    memory path is learnt before a memory-free salient-object shortcut can take hold. The last
    sixth (about as long in time: a step costs four to five times as much on two cores) are SAM
    2's 8-frame clips and prompts (mask, click or box, corrective clicks), with a
    share of single-frame steps for prompted segmentation. Both stages use
    :data:`BOOTSTRAP_LR_SCALES`. ``bench/bootstrap_recipes.py`` compares it with
    :func:`single_stage_config` for the same number of steps.
    """
    if steps < 2:
        raise ConfigError(f"the bootstrap trains in two stages and needs at least 2 steps, got {steps}")
    first = min(steps - 1, max(1, round(steps * 5 / 6)))
    base = replace(single_stage_config(steps), lr=BOOTSTRAP_LR, losses=BOOTSTRAP_LOSSES, lr_scales=BOOTSTRAP_LR_SCALES)
    carry = replace(
        base,
        steps=first,
        warmup_steps=min(50, first),
        image_step_p=0.0,
        clips=ClipSpec(frames=2),
        prompts=PromptSpec(mask_p=1.0, click_p=0.0, max_cond_frames=1, correction_frames=0, corrections_per_frame=0),
    )
    track = replace(base, steps=steps - first, warmup_steps=min(20, steps - first), image_step_p=0.3)
    return carry, track


# Continuing a bootstrap model restarts the schedule from a warm-up over 200 steps: a fresh AdamW
# warmed up to 2e-4 in four steps took validation J&F from 0.420 to 0.324 (docs/training.md).
CONTINUE_LR = 2e-4


def continue_stage(steps: int, seed: int, refine_clicks: int = 0, clip_frames: int | None = None) -> TrainConfig:
    """More training for a bootstrap model that already tracks: the carrying stage, plus prompted images.

    Measured on the shipped model (mask J&F on 2 validation videos, docs/training.md): the first
    stage's 2-frame mask-prompted clips were what raised J&F (0.08 to 0.48 over 6,667 steps),
    while SAM 2's 8-frame clips lowered it, both in the recipe's last stage (0.48 to 0.43) and
    continued at 2e-4 (0.43 to 0.34 in 1,000 steps). So a continuation trains on 2-frame clips
    prompted by a mask, at a third of the cost of an 8-frame step, and 30 % single-frame steps
    with SAM 2's prompts (click, box, corrective clicks) keep teaching the first frame of the
    click protocols. ``seed`` must differ from the earlier stages' so that it draws other clips.

    ``refine_clicks``: half the clips then also get that many corrective clicks on their tracked
    frame, each drawn from the error of the prediction before it, and every prediction is in the
    loss (the tracked one first). That is Phase 3's refinement, a click on a frame the model
    tracked wrong, which the continuation otherwise never trains: in the demo a clicked Phase 3
    frame took 6.6 clicks (the paper's SAM 2: 2.68).

    ``clip_frames``: frames a clip holds, the first prompted by its mask (None: the carrying
    stage's 2). With 2 the tracked frame only ever remembers the prompt, while at inference
    every frame after the next remembers the model's own earlier predictions; longer clips train
    that, at a higher cost a step (4 frames: about twice a 2-frame step). Measured (run 8,
    docs/training.md): 4,000 steps on 4-frame clips raised validation J&F by +0.034 / +0.083 /
    +0.077 (mask / 1 / 3 clicks) where the 24,000 2-frame steps before them had moved the mask
    protocol by -0.001; and again at 8 frames (run 16, 128 validation objects): +0.017 with the
    mask after 11,000 more 4-frame steps on fresh videos had moved it by -0.006 (run 15). Eight
    frames fill the memory bank (the prompted frame and six recent ones) with the model's own
    predictions, as every validation video does from its eighth frame on.
    """
    if refine_clicks < 0:
        raise ConfigError(f"refine_clicks must be 0 or more, got {refine_clicks}")
    if clip_frames is not None and clip_frames < 2:
        raise ConfigError(f"a continuation clip needs a prompted frame and a tracked one: clip_frames >= 2, got {clip_frames}")
    carry, track = bootstrap_stages(2)
    prompts = replace(carry.prompts, correction_frames=1 if refine_clicks else 0, corrections_per_frame=refine_clicks)
    return replace(
        carry,
        clips=carry.clips if clip_frames is None else replace(carry.clips, frames=clip_frames),
        prompts=prompts,
        steps=steps,
        lr=CONTINUE_LR,
        warmup_steps=min(200, steps),
        image_step_p=0.3,
        image_prompts=track.prompts,
        seed=seed,
    )


IOU_HEAD = "mask_decoder.iou_prediction_head"
IOU_HEAD_LR = 1e-3


def iou_head_stage(steps: int, seed: int) -> TrainConfig:
    """Train the IoU head alone, every other weight frozen: how the model chooses among its masks.

    The decoder proposes three masks for a single click and for every tracked frame, and keeps
    the one its IoU head scores highest. Measured on the runs 1-5 model (a scratch script, the
    8 validation videos): for one click on an object's first frame the kept mask had a mean IoU
    of 0.649 where the best of the three had 0.840, and on tracked frames 0.822 against 0.858;
    the bootstrap's losses weight dice like focal (20 each), so the IoU regression (1) is a
    small share of what shapes the decoder. 1,000 steps of this stage (seed 99) raised
    validation J&F from 0.730 / 0.568 / 0.661 (mask / 1 / 3 clicks) to 0.748 / 0.589 / 0.666;
    on the runs 1-6 model it lowered them (0.729 / 0.576 / 0.687 -> 0.723 / 0.573 / 0.646), so
    whether it helps depends on the model: measure before shipping its result.
    The masks themselves cannot change, so the stage cannot make a candidate worse, only the
    choice; it trains on the continuation's clips (2-frame mask-prompted clips with corrective
    clicks on half the tracked frames, 30 % prompted single frames).
    """
    return replace(
        continue_stage(steps, seed, refine_clicks=3),
        lr=IOU_HEAD_LR,
        warmup_steps=min(50, steps),
        losses=LossWeights(focal=0.0, dice=0.0, iou=1.0, occlusion=0.0),
        lr_scales=(),
        trainable=(IOU_HEAD,),
    )


def read_bootstrap_report(weights_dir: Path) -> dict[str, Any]:
    """The report a bootstrap run left beside its weights; a clear error when it is not one."""
    path = weights_dir / REPORT_NAME
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{weights_dir} is not a bootstrap model: it has no {REPORT_NAME}") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if report.get("model") != COMPACT or not isinstance(report.get("data"), dict):
        raise ConfigError(f"{path} does not describe a {COMPACT} bootstrap run")
    return report


def bootstrap_spec_of(report: dict[str, Any]) -> BootstrapSpec:
    """The synthetic data a bootstrap report says its model was trained and validated on."""
    data = dict(report["data"])
    try:
        video = SyntheticSpec(**data.pop("video"))
        return BootstrapSpec(video=video, **data)
    except (TypeError, KeyError) as err:
        raise ConfigError(f"the bootstrap report's data settings are not understood: {err}") from err


def widens(parent: BootstrapSpec, spec: BootstrapSpec) -> bool:
    """Whether ``spec`` trains on ``parent``'s data or a superset of it, validating on the same videos.

    Training videos are rendered from consecutive seeds, so more of them keeps the earlier ones
    and adds new ones; the validation videos depend only on the seed and their count. A model
    that has seen its few training videos many times starts to fit them (run 9 in
    docs/training.md); widening, or a fresh window (:func:`fresh_after`), is how a continuation
    gets new data.
    """
    return spec.train_videos >= parent.train_videos and replace(spec, train_videos=parent.train_videos) == parent


def fresh_after(parent: BootstrapSpec, train_videos: int) -> BootstrapSpec:
    """``train_videos`` training videos that no run of ``parent``'s chain has seen: the seeds after its last.

    Widening keeps every earlier video in memory (about 3.6 MB each as PNG, so some 5,000 fit
    this machine's 23 GB); a fresh window gives a continuation as many new videos as it holds
    while validating on the same ones. Every run of a chain either widens or starts a fresh
    window at its parent's end, so the seeds a chain has trained on end where its last run's do.
    """
    if train_videos < 1:
        raise ConfigError(f"{train_videos} fresh videos: a continuation trains on at least one")
    return replace(parent, train_videos=train_videos, first_train_video=parent.first_train_video + parent.train_videos)


def continues_on(parent: BootstrapSpec, spec: BootstrapSpec) -> bool:
    """Whether a continuation of a model trained on ``parent`` may train on ``spec``: wider or fresh, same validation."""
    return widens(parent, spec) or (spec.train_videos >= 1 and spec == fresh_after(parent, spec.train_videos))


def bootstrap_chain(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a bootstrap model, first run first: a continued model's report embeds the one it continued."""
    parent = report.get("continues")
    return (bootstrap_chain(parent) if isinstance(parent, dict) else []) + [report]


def run_train_seconds(report: dict[str, Any]) -> float:
    """Training seconds of one run of the chain, counting steps an earlier process ran before a resume.

    The shipped model's first run predates checkpoints that carry their training time; its
    first stage ran in an earlier process whose time the report records as
    ``stage0_seconds_earlier_process``.
    """
    return float(report.get("train_seconds") or 0) + float(report.get("stage0_seconds_earlier_process") or 0)


def chain_train_seconds(report: dict[str, Any]) -> float:
    """Training seconds behind a bootstrap model, over every run it continues."""
    return sum(run_train_seconds(run) for run in bootstrap_chain(report))


def chain_stage_count(report: dict[str, Any]) -> int:
    """Training stages behind a bootstrap model, over every run it continues (a continuation's seed)."""
    return sum(len(run.get("train_stages", [])) for run in bootstrap_chain(report))


def synthetic_videos(spec: BootstrapSpec) -> tuple[list[TrainingVideo], list[TrainingVideo]]:
    """Training and validation videos, rendered in memory from their seeds (sampled frames only, as PNG)."""
    first = spec.first_train_video
    train = [(f"boot-{spec.seed}-{i:04d}", spec.seed * 100_003 + i) for i in range(first, first + spec.train_videos)]
    val = [
        (f"bootval-{spec.seed}-{i:04d}", VALIDATION_SEED_OFFSET + spec.seed * 100_003 + i) for i in range(spec.val_videos)
    ]
    # Rendering and PNG encoding run in OpenCV and numpy with the GIL released, so threads render
    # thousands of videos about twice as fast on two cores; map keeps the seeds' order.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rendered = list(pool.map(lambda named: rendered_training_video(*named, spec.video), train + val))
    return rendered[: len(train)], rendered[len(train) :]


def validate_further(weights_dir: Path, val_videos: int, device: DeviceChoice) -> dict[str, dict[str, float]]:
    """A bootstrap model's J&F on its own validation videos, on further ones, and on all together.

    A run validates on few videos (8 by default, 32 objects), and between two models their J&F
    moves by a few hundredths from the draw of videos alone: run 12 scored 0.025 below run 11 on
    its 8 and 0.033 above on 24 further ones (docs/training.md). Further videos are the next
    validation seeds of the same spec, so no run, however far it widens its training videos,
    has trained on them. Returns ``{"own": ..., "further": ..., "all": ...}`` (``further`` only
    when ``val_videos`` exceeds the run's own count), each protocol's J&F pooled over objects
    as :func:`~training.evaluate.evaluate_model` pools them, with ``objects`` and ``videos``;
    and ``mask_upsampling``, which the scores depend on.
    """
    spec = bootstrap_spec_of(read_bootstrap_report(weights_dir))
    if val_videos < 1:
        raise ConfigError(f"--val-videos {val_videos}: a model cannot be judged on fewer than one video")
    _, videos = synthetic_videos(replace(spec, train_videos=0, val_videos=val_videos))
    model = load_trained(weights_dir, device)
    parts = {"own": videos[: min(val_videos, spec.val_videos)], "further": videos[spec.val_videos : val_videos]}
    scores: dict[str, dict[str, float]] = {}
    for name, part in parts.items():
        if part:
            evaluation = evaluate_model(model, part)
            scores[name] = {**evaluation.jf, "objects": evaluation.objects, "videos": evaluation.videos}
    counted = [part for part in scores.values() if part["objects"]]
    objects = sum(part["objects"] for part in counted)
    pooled = {
        protocol: sum(part[protocol] * part["objects"] for part in counted) / objects if objects else math.nan
        for protocol in PROTOCOLS
    }
    scores["all"] = {**pooled, "objects": objects, "videos": len(videos)}
    scores["mask_upsampling"] = model.mask_upsampling.name  # as evaluations record it (eval_mask_upsampling)
    return scores


@dataclass(frozen=True)
class BootstrapResult:
    stages: tuple[TrainResult, ...]
    evaluation: ModelEvaluation
    weights_dir: Path
    report: dict[str, Any]


def run_bootstrap(
    spec: BootstrapSpec,
    stages: Sequence[TrainConfig],
    run_dir: Path,
    device: DeviceChoice,
    *,
    command: str,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    rank: int = 0,
    start_from: Path | None = None,
) -> BootstrapResult | None:
    """Train ``sam2-compact`` through ``stages`` in turn, validate, and save it to ``run_dir/model``.

    From scratch (:func:`init_for_tracking`), or, with ``start_from``, from an earlier bootstrap
    model, whose report the new one embeds as ``continues`` (the lineage, and the commands that
    reproduce it in order). Each stage keeps its checkpoints in ``run_dir/stage-N``; started
    again after a kill, finished stages only reload their last weights and the interrupted one
    resumes. Under torchrun every rank trains; only rank 0 saves and validates (the others
    return None).
    """
    if not stages:
        raise ConfigError("the bootstrap needs at least one training stage")
    began = time.perf_counter()
    parent = read_bootstrap_report(start_from) if start_from is not None else None
    if parent is not None and not continues_on(bootstrap_spec_of(parent), spec):
        raise ConfigError(
            f"{start_from} was trained on other synthetic data ({parent['data']}); continue it on the same videos"
            " (or on more training videos: the same ones and further seeds, or fresh ones: the seeds after its last)"
        )
    train_set, val_set = synthetic_videos(spec)
    if start_from is not None:
        model = Sam2VideoModel.from_pretrained(start_from)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stages[0].seed)
            model = Sam2VideoModel(sam2_compact_config())
        init_for_tracking(model)
    results = [
        train(model, train_set, config, run_dir / f"stage-{i}", device, progress=progress) for i, config in enumerate(stages)
    ]
    if rank != 0:
        return None
    weights_dir = run_dir / "model"
    save_model(model, weights_dir)
    loaded = load_trained(weights_dir, device)
    evaluation = evaluate_model(loaded, val_set)
    seconds = sum(r.total_seconds for r in results)  # including steps run before a resume
    ran = sum(r.seconds for r in results)
    clips = sum(r.clips_per_second * r.seconds for r in results if r.seconds > 0)
    report = {
        "model": COMPACT,
        "command": command,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": {**asdict(spec), "video": asdict(spec.video)},
        "init": {"memory_attention_locality": LOCALITY} if parent is None else {"continues": str(start_from)},
        "train_stages": [config.to_json() for config in stages],
        "steps": sum(config.steps for config in stages),
        "train_seconds": seconds,
        "clips_per_second": clips / ran if ran > 0 else None,  # of the steps this process ran
        "stage_seconds": [r.total_seconds for r in results],
        "stage_clips_per_second": [r.clips_per_second for r in results],
        "final_loss": results[-1].final_loss,
        "validation": {k: v for k, v in evaluation.metrics().items() if k not in PER_VIDEO_KEYS},
        "validation_per_video": evaluation.per_video,
        "total_seconds": time.perf_counter() - began,
        "device": str(device.device),
        "torch_threads": torch.get_num_threads(),
    }
    if parent is not None:
        report["continues"] = parent
    report["chain_train_seconds"] = chain_train_seconds(report)  # for readers of the report alone
    _write_json(weights_dir / REPORT_NAME, report)
    return BootstrapResult(tuple(results), evaluation, weights_dir, report)


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
