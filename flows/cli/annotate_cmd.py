"""``dataengine annotate``, ``dataengine verify``, ``dataengine metrics``: the data engine's work from the shell.

``annotate`` enqueues one task per ground-truth object of the chosen videos in a phase's queue
and works the queue with simulated annotators (one thread each) until nothing is ready;
``verify`` works the verification loop (verdicts, and Phase 3 refinement of unsatisfactory
masklets) the same way; ``metrics`` prints the per-phase table beside the SAM 2 paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from engine.metrics import GroupBy, format_table, to_json
from engine.segmenters import DEFAULT_MODEL, SegmenterSource
from engine.simulated_segmenter import SimulatedSegmenterSource
from flows.cli.context import Context, open_context, reports_errors
from phases.workers import Outcome, Worker, drain_in_threads, enqueue_annotation, verify_or_refine
from storage.annotation_metrics import phase_metrics
from storage.annotation_store import SqlAnnotationStore
from storage.model_registry import SqlModelRegistry
from storage.task_queue import TaskQueue

SIMULATED = "simulated"


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate)
    app.command("verify")(verify)
    app.command("metrics")(metrics)


@reports_errors
def annotate(
    video_ids: list[str] = typer.Argument(None, help="videos to annotate (default: every video with ground truth)"),
    phase: int = typer.Option(..., min=1, max=3, help="1: SAM per frame, 2: SAM + SAM 2 Mask, 3: SAM 2"),
    annotators: int = typer.Option(1, min=1, max=64, help="simulated annotators working in parallel"),
    model: str = typer.Option(DEFAULT_MODEL, help=f"model reference in the registry, or {SIMULATED!r} (degraded ground truth)"),
    round_: int = typer.Option(1, "--round", min=1, help="annotate the same objects again under a new round"),
    budget: int | None = typer.Option(None, min=0, help="frames corrected after propagation per masklet, at most"),
) -> None:
    """Annotate every ground-truth object of the videos in one phase, with simulated annotators."""
    with open_context() as ctx:
        queue, store, models = _queue(ctx), SqlAnnotationStore(ctx.catalog, ctx.store), _models(ctx, model)
        tasks = enqueue_annotation(queue, store, phase, video_ids or None, round_=round_)
        typer.echo(f"phase {phase}: {len(tasks)} objects in the queue")
        workers = [
            Worker(f"sim-annotator-{i + 1}", queue, store, models, correction_budget=budget) for i in range(annotators)
        ]
        outcomes = drain_in_threads([lambda w=w: w.annotate_one(phase) for w in workers])
        _report(outcomes, "annotated and sent to verification", models)


@reports_errors
def verify(
    verifiers: int = typer.Option(1, min=1, max=64, help="simulated verifiers (each with a refiner) working in parallel"),
    model: str = typer.Option(DEFAULT_MODEL, help=f"model for refinement (registry reference, or {SIMULATED!r})"),
    budget: int | None = typer.Option(None, min=0, help="frames a refiner corrects per masklet, at most"),
) -> None:
    """Verify every masklet waiting for a verdict; refine the unsatisfactory ones (Phase 3) and verify again."""
    with open_context() as ctx:
        queue, store, models = _queue(ctx), SqlAnnotationStore(ctx.catalog, ctx.store), _models(ctx, model)
        steps = [
            verify_or_refine(
                Worker(f"sim-verifier-{i + 1}", queue, store, models),
                Worker(f"sim-refiner-{i + 1}", queue, store, models, correction_budget=budget),
            )
            for i in range(verifiers)
        ]
        outcomes = drain_in_threads(steps)
        verdicts: dict[str, int] = {}
        for outcome in outcomes:
            if outcome.verdict is not None:
                verdicts[outcome.verdict.value] = verdicts.get(outcome.verdict.value, 0) + 1
        refined = sum(1 for o in outcomes if o.ok and o.verdict is None)
        typer.echo("verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) or "none") + f"; refined {refined}")
        _report([o for o in outcomes if not o.ok], "", models)


@reports_errors
def metrics(
    format_: str = typer.Option("table", "--format", help="table or json"),
    by: GroupBy = typer.Option(GroupBy.PHASE, help="one row per phase, or per phase and model version or annotator"),
) -> None:
    """Per-phase annotation metrics (seconds per frame, edited frames, clicks, alignment) beside the paper's Table 1."""
    if format_ not in ("table", "json"):
        raise typer.BadParameter(f"--format must be table or json, not {format_!r}")
    with open_context() as ctx:
        rows = phase_metrics(ctx.catalog, by)
    if format_ == "json":
        typer.echo(to_json(rows))
    elif not rows:
        typer.echo("no annotated masklets yet: run `dataengine annotate --phase 1` first")
    else:
        typer.echo(format_table(rows))


def _queue(ctx: Context) -> TaskQueue:
    return TaskQueue(ctx.catalog)


def _models(ctx: Context, model: str) -> SegmenterSource:
    if model == SIMULATED:
        return SimulatedSegmenterSource()
    # Imported here: torch and transformers take seconds to import, and only model runs need them.
    from engine.model_segmenters import RegistrySegmenterSource

    registry = SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))
    return RegistrySegmenterSource(registry, model)


def _report(outcomes: Sequence[Outcome], done: str, models: SegmenterSource) -> None:
    """One line of what was done, one line per failed task; exit status 1 if any failed."""
    succeeded = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    if done:
        typer.echo(f"{len(succeeded)} masklets {done}")
    for outcome in failed:
        fate = "will be retried" if outcome.will_retry else "dead letter"
        typer.echo(f"task {outcome.task_id} ({outcome.queue.value}) failed, {fate}: {outcome.error}", err=True)
    if models.fallback_used:
        ran = getattr(models, "fallback_description", None) or "the embedded sam2-compact"
        typer.echo(f"note: no model in the registry; ran {ran}", err=True)
    if failed:
        raise typer.Exit(1)
