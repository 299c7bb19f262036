"""One retraining round: the data collected so far -> a new model version -> promoted or not.

The order matters for the promotion gate and for lineage (see docs/training-data.md):
build the datasets (recording exactly which masklets), score the champion on the same
validation set if it has no score there yet, start a training-run record, fine-tune from the
champion, validate, mark the run succeeded, register the version with its run and metrics,
then let the gate decide. A run that fails at any step is marked failed and registers
nothing, so the champion is never replaced by a failed or partial run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import Sam2VideoModel

from engine.errors import ConfigError
from engine.mask_upsampling import upsampling_named
from engine.model_loading import DeviceChoice, LoadedModel, build_model
from engine.model_registry import ModelRegistry, ModelVersion
from engine.segmenter_config import COMPACT, sam2_compact_config
from engine.settings import load_settings
from engine.training_data import TrainingDataSource, TrainingRunLog
from training.bootstrap import BOOTSTRAP_LOSSES, BOOTSTRAP_LR_SCALES, BUNDLED_DIR, continue_stage, load_trained, save_model
from training.dataset import build_datasets
from training.evaluate import EVALUATION_PROTOCOL, ModelEvaluation, evaluate_model, phase3_seconds_per_frame
from training.gain import GAIN_KEYS, ValidationGain, paired_gain
from training.loop import TrainConfig, train
from training.losses import LossWeights
from training.prompts import PromptSpec
from training.promotion import DEFAULT_MARGIN, PromotionDecision, apply_promotion, champion_of, decide_for_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    """What one round did, for the flow's report and the closing note."""

    model_name: str
    version: ModelVersion
    parent: ModelVersion | None
    training_run_id: int
    decision: PromotionDecision
    before: dict[str, Any]  # the parent's validation metrics on this round's validation set
    after: dict[str, Any]  # the new version's
    train_seconds: float
    clips_per_second: float
    # The change of validation J&F with its interval over videos (training.gain); None when the
    # two were not scored video by video on at least two common videos.
    gain: ValidationGain | None = None

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def summary(self) -> str:
        before, after = self.before.get("val_jf", math.nan), self.after.get("val_jf", math.nan)
        verdict = "promoted to champion" if self.promoted else "kept as challenger"
        gain = f"; {self.gain.describe()}" if self.gain is not None else ""
        return f"{self.version.ref}: validation J&F {before:.3f} -> {after:.3f}{gain}; {verdict} ({self.decision.reason})"


# SAM 2.1's fine-tuning rate, for its checkpoints and the bootstrap model alike; its image
# encoder learns at 3e-6. A retraining round is short and starts the optimiser afresh, so
# sam2-compact fine-tunes far below the rates it was bootstrapped at. Measured with
# bench/fine_tune_rates.py --recipes sam2 (rounds trained on 8-frame clips then; 40 steps on
# synthetic clips of an unseen seed, mask J&F on 16 validation objects): on the 2026-12-04
# model (from 0.337) 2e-4 fell to 0.266, 5e-5 / 2e-5 / 1e-5 ended at 0.338 / 0.339 / 0.337;
# on the 2026-12-05 model (from 0.428) 2e-4 fell to 0.336, 2e-5 to 0.415, and 5e-6 rose to 0.439.
FINE_TUNE_LR = 5e-6
SAM2_IMAGE_ENCODER_LR_SCALE = 0.6


# A round of sam2-compact trains on what its bootstrap continuations train on (see
# training.bootstrap.continue_stage): 2-frame clips prompted by a mask, corrective clicks on the
# tracked frame of half of them (Phase 3's refinement), and 30 % single-frame steps with SAM
# 2's prompts. SAM 2's own 8-frame clips lowered this model's J&F in bootstrap and continuation
# training (docs/training.md), and a 2-frame step costs about a fifth of an 8-frame one
# (bench/fine_tune_rates.py: 20 s against 111 s for 40 steps).
ROUND_REFINE_CLICKS = 3
# ``track``: the same on 8-frame clips, what the shipped model's last bootstrap continuations
# (runs 16-17) trained on, so that its tracked frames remember its own predictions as at
# inference (runs 8-14 trained on 4-frame clips; 8 frames raised the mask protocol where 4 had
# stopped, docs/training.md). A step costs about 2.5 times a 2-frame one (runs 16-17 trained at
# 1.32-1.37 clips/s, run 4 on 2-frame clips with the same refinement clicks at 3.49).
ROUND_TRACK_FRAMES = 8
COMPACT_RECIPES = ("carry", "track")
RECIPES = (*COMPACT_RECIPES, "sam2")


def fine_tune_config(model_name: str, steps: int, lr: float | None = None, recipe: str | None = None) -> TrainConfig:
    """The settings of one retraining round of ``model_name``: the recipe it was trained under.

    ``sam2-compact`` was bootstrapped with dice weighted like focal, bounded feature magnitudes
    and its image encoder at a lower rate than its memory modules (:mod:`training.bootstrap`);
    fine-tuning it under SAM 2's 20 : 1 weights at one rate would pull it away from what it learnt (a focal-dominated loss
    shrinks masks; a fast image encoder drowns the memory, docs/training.md). Its rounds use the
    continuation's clips (``recipe="carry"``, the default for it); ``recipe="sam2"`` gives it SAM
    2's 8-frame clips and prompts instead. Real SAM 2.1 checkpoints get SAM 2's own recipe,
    losses and rates. The rate is :data:`FINE_TUNE_LR` unless ``lr`` is given: a fresh AdamW's
    first steps move every weight by about the rate, which at the bootstrap's own rates undoes
    more than a short round teaches.
    """
    if recipe is not None and recipe not in RECIPES:
        raise ConfigError(f"unknown retraining recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    sam2 = TrainConfig(
        steps=steps,
        lr=lr if lr is not None else FINE_TUNE_LR,
        warmup_steps=min(20, steps // 5 + 1),
        checkpoint_every=50,
        log_every=10,
        losses=LossWeights(),
        lr_scales=(("vision_encoder", SAM2_IMAGE_ENCODER_LR_SCALE),),
    )
    if model_name != COMPACT:
        if recipe in COMPACT_RECIPES:
            raise ConfigError(f"the {recipe!r} recipe is sam2-compact's; real SAM 2.1 checkpoints fine-tune on SAM 2's own")
        return sam2
    compact = replace(sam2, losses=BOOTSTRAP_LOSSES, lr_scales=BOOTSTRAP_LR_SCALES)
    if recipe == "sam2":
        return replace(compact, prompts=PromptSpec(corrections_per_frame=3))
    frames = ROUND_TRACK_FRAMES if recipe == "track" else None
    carry = continue_stage(steps, seed=compact.seed, refine_clicks=ROUND_REFINE_CLICKS, clip_frames=frames)
    return replace(carry, lr=compact.lr, warmup_steps=compact.warmup_steps, checkpoint_every=50, log_every=10)


def retrain(
    *,
    registry: ModelRegistry,
    runs: TrainingRunLog,
    data: TrainingDataSource,
    model_name: str = COMPACT,
    config: TrainConfig,
    work_dir: Path,
    device: DeviceChoice,
    include_sav_imports: bool = False,
    margin: float = DEFAULT_MARGIN,
    with_phase3: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> RetrainOutcome:
    """Fine-tune ``model_name``'s champion on the catalog's training set and submit it to the gate."""
    datasets = build_datasets(data, runs, model_name=model_name, include_sav_imports=include_sav_imports)
    manifest = datasets.manifest
    parent = champion_of(registry, model_name)
    phase3 = phase3_seconds_per_frame if with_phase3 else None
    before = _parent_metrics(registry, parent, model_name, datasets.validation, manifest.validation_digest, device, phase3)
    run = runs.start(model_name, config.to_json(), manifest.to_json())
    try:
        model = _starting_point(registry, parent, model_name, device)
        began = time.perf_counter()
        result = train(model, list(datasets.training), config, work_dir / f"run-{run.id}", device, progress=progress)
        weights_dir = work_dir / f"run-{run.id}" / "model"
        save_model(model, weights_dir)
        evaluation = evaluate_model(load_trained(weights_dir, device), datasets.validation, phase3=phase3)
        train_seconds = time.perf_counter() - began
        after = _recordable({**evaluation.metrics(), "validation_digest": manifest.validation_digest})
        gain = paired_gain(before.get("val_jf_per_video") or {}, after["val_jf_per_video"], after["val_objects_per_video"])
        if gain is not None:
            after.update(gain.metrics())
        # Registered before the run is marked succeeded: a run that succeeded always has its version.
        version = registry.register(
            model_name,
            model.config.to_dict(),
            weights_dir,
            parent=parent,
            training_run_id=run.id,
            metrics=after,
            note=f"retrained on {manifest.counts()} (run {run.id})",
        )
        runs.succeed(run.id)
    except BaseException as err:
        runs.fail(run.id, f"{type(err).__name__}: {err}"[:2000])
        raise
    decision = decide_for_version(
        registry, version, runs=runs, margin=margin,
        # No champion yet: the starting point (bundled or embedded) is what the engine runs now.
        baseline=before if parent is None else None,
        baseline_ref=f"{model_name} unregistered starting point",
    )
    version = apply_promotion(registry, version, decision)
    outcome = RetrainOutcome(
        model_name, version, parent, run.id, decision, before, after, train_seconds, result.clips_per_second, gain
    )
    log.info(outcome.summary())
    return outcome


def load_version(registry: ModelRegistry, version: ModelVersion | None, model_name: str, device: DeviceChoice) -> LoadedModel:
    """The inference model of a registered version, or of the model's starting point when there is none."""
    if version is not None and version.has_weights:
        return build_model(registry.weights_dir(version), task="video", device=device)
    return build_model(model_name, task="video", device=device)


def _starting_point(registry: ModelRegistry, parent: ModelVersion | None, model_name: str, device: DeviceChoice) -> Sam2VideoModel:
    """Weights to fine-tune: the champion's, else the bundled or hub checkpoint, else (compact only) scratch."""
    if parent is not None and parent.has_weights:
        return load_version(registry, parent, model_name, device).module
    if model_name == COMPACT and not (BUNDLED_DIR / "model.safetensors").exists():
        with torch.random.fork_rng(devices=[]):  # a fixed start without disturbing the caller's generator
            torch.manual_seed(0)
            return Sam2VideoModel(sam2_compact_config())
    return build_model(model_name, task="video", device=device).module


def _parent_metrics(
    registry: ModelRegistry,
    parent: ModelVersion | None,
    model_name: str,
    validation: Any,
    digest: str,
    device: DeviceChoice,
    phase3: Any,
) -> dict[str, Any]:
    """The champion's scores on this validation set, measured now if not recorded for it yet.

    Recorded with the set's digest and the evaluation protocol, so the round compares like with
    like (scores from before :data:`~training.evaluate.EVALUATION_PROTOCOL` 2 carry no protocol
    and are measured again, as are scores taken with another mask upsampling), and with each video's score, which the round's gain pairs with its
    own (scores recorded without them are measured again too). Measured again, the champion's
    own round gain is cleared: it paired the scores this measurement replaces.
    """
    recorded = parent.metrics if parent is not None else {}
    if (
        recorded.get("validation_digest") == digest
        and recorded.get("eval_protocol") == EVALUATION_PROTOCOL
        and recorded.get("eval_mask_upsampling") == upsampling_named(load_settings().mask_upsampling).name
        and "val_jf_per_video" in recorded
    ):
        return dict(recorded)
    evaluation: ModelEvaluation = evaluate_model(load_version(registry, parent, model_name, device), validation, phase3=phase3)
    metrics = _recordable({**evaluation.metrics(), "validation_digest": digest})
    if parent is not None:
        metrics.update(dict.fromkeys(k for k in GAIN_KEYS if k in recorded))
        registry.record_metrics(parent.id, metrics)
    return metrics


def _recordable(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: a score that could not be computed is recorded as missing (None), nested ones too."""
    return {key: _recordable_value(value) for key, value in metrics.items()}


def _recordable_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _recordable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
