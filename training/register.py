"""Bootstrap runs and evaluations, recorded in the registry the way retraining records its own.

A bootstrap run gets a training-run record (its dataset is the synthetic specification, not a
catalog manifest), its version is registered with its validation metrics and goes through the
same promotion gate. Its validation set is synthetic, so its scores carry the digest of that
set; a champion measured on the catalog's validation videos is not comparable, and the gate
says so rather than guessing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.model_loading import DeviceChoice, build_model
from engine.model_registry import ModelRegistry, ModelVersion
from engine.segmenter_config import COMPACT
from engine.training_data import TrainingDataSource, TrainingRunLog
from training.bootstrap import BootstrapSpec, run_bootstrap, synthetic_videos
from training.dataset import build_datasets
from training.evaluate import evaluate_model, phase3_seconds_per_frame
from training.loop import TrainConfig
from training.promotion import VALIDATION_SET_KEY, PromotionDecision, apply_promotion, decide_for_version
from training.retrain import _recordable


@dataclass(frozen=True)
class BootstrapOutcome:
    version: ModelVersion
    decision: PromotionDecision
    metrics: dict[str, Any]
    weights_dir: Path
    report: dict[str, Any]

    def summary(self) -> str:
        verdict = "promoted to champion" if self.decision.promote else "kept as challenger"
        jf = {k: self.metrics.get(k) for k in ("val_jf_mask", "val_jf_click1", "val_jf_click3")}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in jf.items() if isinstance(v, float))
        return f"{self.version.ref} (bootstrap): {shown}; {verdict} ({self.decision.reason})"


def synthetic_validation_digest(spec: BootstrapSpec) -> str:
    """Identifies the synthetic validation set: its videos follow from the spec alone."""
    described = {"kind": "synthetic", "val_videos": spec.val_videos, "seed": spec.seed, "video": asdict(spec.video)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def register_bootstrap(
    registry: ModelRegistry,
    runs: TrainingRunLog,
    spec: BootstrapSpec,
    stages: Sequence[TrainConfig],
    run_dir: Path,
    device: DeviceChoice,
    *,
    margin: float,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> BootstrapOutcome:
    """Train the bootstrap model (resuming ``run_dir``), record the run, register and gate the version."""
    dataset = {"kind": "synthetic-bootstrap", **asdict(spec), "video": asdict(spec.video)}
    steps = sum(config.steps for config in stages)
    run = runs.start(COMPACT, {"stages": [config.to_json() for config in stages]}, dataset)
    try:
        result = run_bootstrap(spec, stages, run_dir, device, command=f"dataengine train --bootstrap --steps {steps}", progress=progress)
        if result is None:
            raise RuntimeError("run_bootstrap returned nothing in a single-process run")
        metrics = _recordable({**result.evaluation.metrics(), VALIDATION_SET_KEY: synthetic_validation_digest(spec)})
        # Registered before the run is marked succeeded: a run that succeeded always has its version.
        version = registry.register(
            COMPACT,
            json.loads((result.weights_dir / "config.json").read_text()),
            result.weights_dir,
            training_run_id=run.id,
            metrics=metrics,
            note=f"bootstrap: {steps} steps on {spec.train_videos} synthetic videos",
        )
        runs.succeed(run.id)
    except BaseException as err:
        runs.fail(run.id, f"{type(err).__name__}: {err}"[:2000])
        raise
    decision = decide_for_version(registry, version, runs=runs, margin=margin)
    version = apply_promotion(registry, version, decision)
    return BootstrapOutcome(version, decision, metrics, result.weights_dir, result.report)


def evaluate_version(
    registry: ModelRegistry,
    runs: TrainingRunLog,
    data: TrainingDataSource,
    ref: str,
    device: DeviceChoice,
    *,
    synthetic_videos: int = 0,
    with_phase3: bool = False,
) -> dict[str, Any]:
    """Score a registered version on the catalog's validation videos (or N synthetic ones) and record it."""
    version = registry.resolve(ref)
    if synthetic_videos:
        spec = BootstrapSpec(train_videos=0, val_videos=synthetic_videos)
        _, videos = synthetic_videos_of(spec)
        digest = synthetic_validation_digest(spec)
    else:
        datasets = build_datasets(data, runs, model_name=version.name)
        videos, digest = list(datasets.validation), datasets.manifest.validation_digest
    model = build_model(registry.weights_dir(version), task="video", device=device) if version.has_weights else build_model(version.name, device=device)
    evaluation = evaluate_model(model, videos, phase3=phase3_seconds_per_frame if with_phase3 else None)
    metrics = _recordable({**evaluation.metrics(), VALIDATION_SET_KEY: digest})
    registry.record_metrics(version.id, metrics)
    return metrics


def synthetic_videos_of(spec: BootstrapSpec):  # noqa: ANN201 - re-exported for the command
    return synthetic_videos(spec)
