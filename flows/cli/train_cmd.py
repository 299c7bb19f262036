"""``dataengine train`` and ``dataengine evaluate-model``: retraining from the shell.

``train`` runs one retraining round on what the catalog holds (or, with ``--bootstrap``, trains
``sam2-compact`` from scratch on synthetic videos) and submits the result to the promotion
gate. ``evaluate-model`` scores a registered version on the validation set and records it.
Torch is imported inside the commands, so the rest of the CLI starts without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from engine.errors import ConfigError
from flows.cli.context import open_context, reports_errors

DEFAULT_RUNS = Path(".dataengine") / "runs"


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate-model")(evaluate_model_command)


@reports_errors
def train_command(
    bootstrap: bool = typer.Option(False, "--bootstrap", help="train sam2-compact from scratch on synthetic videos"),
    model: str = typer.Option("sam2-compact", "--model", help="the model to retrain (its champion is the starting point)"),
    steps: int | None = typer.Option(None, "--steps", help="training steps (clips); default 8000 bootstrap, 300 retrain"),
    lr: float | None = typer.Option(None, "--lr", help="retrain: learning rate (default: training.retrain.FINE_TUNE_LR)"),
    recipe: str | None = typer.Option(
        None, "--recipe", help="retrain: carry (sam2-compact's default: 2-frame clips), track (the same on 8-frame clips) or sam2 (SAM 2's 8-frame clips)"
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="checkpoints go here; an interrupted run resumes from it"),
    margin: float = typer.Option(0.01, "--margin", help="promotion gate: how much worse than the champion is tolerated"),
    include_sav: bool = typer.Option(False, "--include-sav", help="also train on imported SA-V annotations"),
    phase3: bool = typer.Option(False, "--phase3", help="also measure simulated Phase 3 seconds per frame on validation"),
    ship: bool = typer.Option(False, "--ship", help="bootstrap: copy the model into engine/weights/sam2-compact"),
    train_videos: int = typer.Option(64, "--train-videos", help="bootstrap: synthetic training videos"),
    val_videos: int = typer.Option(8, "--val-videos", help="bootstrap: synthetic validation videos"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
) -> None:
    """Retrain on the data collected so far (or bootstrap), evaluate, and promote through the gate."""
    from engine.model_loading import choose_device
    from storage.model_registry import SqlModelRegistry
    from storage.training_data import SqlTrainingData
    from storage.training_runs import SqlTrainingRuns

    with open_context() as ctx:
        chosen = choose_device(device, torch_threads=ctx.settings.torch_threads)
        registry = SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))
        runs = SqlTrainingRuns(ctx.catalog)
        if bootstrap and (lr is not None or recipe is not None):
            raise ConfigError("--lr and --recipe set a retraining round; the bootstrap runs its own recipe")
        if bootstrap:
            from training.bootstrap import DEFAULT_STEPS, BootstrapSpec, bootstrap_stages
            from training.register import register_bootstrap

            spec = BootstrapSpec(train_videos=train_videos, val_videos=val_videos)
            folder = run_dir or DEFAULT_RUNS / "bootstrap"
            outcome = register_bootstrap(
                registry, runs, spec, bootstrap_stages(steps or DEFAULT_STEPS), folder, chosen, margin=margin, progress=_progress
            )
            typer.echo(outcome.summary())
            if ship:
                from training.bootstrap import ship as ship_model

                typer.echo(f"shipped to {ship_model(outcome.weights_dir)}")
            return
        from training.retrain import fine_tune_config, retrain

        outcome = retrain(
            registry=registry,
            runs=runs,
            data=SqlTrainingData(ctx.catalog, ctx.store),
            model_name=model,
            config=fine_tune_config(model, steps or 300, lr, recipe),
            work_dir=run_dir or DEFAULT_RUNS,
            device=chosen,
            include_sav_imports=include_sav,
            margin=margin,
            with_phase3=phase3,
            progress=_progress,
        )
        typer.echo(outcome.summary())


@reports_errors
def evaluate_model_command(
    ref: str = typer.Argument(..., help="the version to evaluate, e.g. sam2-compact@champion"),
    phase3: bool = typer.Option(False, "--phase3", help="also measure simulated Phase 3 seconds per frame"),
    synthetic: int = typer.Option(0, "--synthetic", help="evaluate on N synthetic validation videos instead of the catalog's"),
    device: str | None = typer.Option(None, "--device"),
) -> None:
    """Score a model version on the validation set (J&F: mask, 1 click, 3 clicks) and record it."""
    from engine.model_loading import choose_device
    from storage.model_registry import SqlModelRegistry
    from storage.training_data import SqlTrainingData
    from storage.training_runs import SqlTrainingRuns
    from training.register import evaluate_version

    with open_context() as ctx:
        registry = SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))
        metrics = evaluate_version(
            registry,
            SqlTrainingRuns(ctx.catalog),
            SqlTrainingData(ctx.catalog, ctx.store),
            ref,
            choose_device(device, torch_threads=ctx.settings.torch_threads),
            synthetic_videos=synthetic,
            with_phase3=phase3,
        )
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


def _progress(step: int, steps: int, losses: dict[str, float]) -> None:
    typer.echo(f"step {step}/{steps}  loss {losses.get('loss', float('nan')):.3f}  lr {losses.get('lr', 0.0):.2e}", err=True)
