"""``dataengine auto-masklets`` and ``dataengine track``: the segmentation model on a catalog video.

The model code (torch, transformers) is imported inside the commands: it takes seconds to
import, and every other command would pay for it at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.auto_mask_config import AutoMaskConfig
from engine.errors import BadPromptError
from engine.masklets import Masklet
from engine.point_grids import PAPER_GRID_SIDES
from engine.segmenters import DEFAULT_MODEL
from flows.cli.context import Context, open_context, reports_errors
from storage.model_registry import SqlModelRegistry

if TYPE_CHECKING:
    from storage.auto_masklet_runs import AutoMaskletRun

DEFAULTS = AutoMaskConfig()
MODEL_HELP = "model: a registry name (its champion, else newest), NAME@VERSION, a hub name or a folder"


def register(app: typer.Typer) -> None:
    app.command("auto-masklets")(auto_masklets)
    app.command("track")(track)


@reports_errors
def auto_masklets(
    video_id: str = typer.Argument(..., help="the catalog video (see `dataengine videos list`)"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    points_per_side: int = typer.Option(
        PAPER_GRID_SIDES[0], "--points-per-side", min=1, help="grid on the full frame; crop grids scale with it"
    ),
    crop_layers: int = typer.Option(
        len(PAPER_GRID_SIDES) - 1, "--crop-layers", min=0, help="layers of crops (1: 2x2, 2: also 4x4)"
    ),
    min_predicted_iou: float = typer.Option(DEFAULTS.min_predicted_iou, "--min-predicted-iou", min=0.0, max=1.0),
    min_stability: float = typer.Option(DEFAULTS.min_stability, "--min-stability", min=0.0, max=1.0),
    max_candidates: int | None = typer.Option(None, "--max-candidates", min=1, help="keep at most this many"),
    enqueue: bool = typer.Option(
        False, "--enqueue", help="send them to verification: each under an object id of its own, with a verify task"
    ),
) -> None:
    """Generate candidate masklets on a video's first frame, propagate them, store them for verification.

    With --enqueue they enter the data engine's verification as the paper's auto masklets did
    (`dataengine verify` works them): satisfactory ones join the dataset as auto, unsatisfactory
    ones go to Phase 3 refinement, rejected ones are kept with their reason.
    """
    from storage.auto_masklet_runs import run_for_video

    config = AutoMaskConfig.with_grid(
        points_per_side,
        crop_layers,
        min_predicted_iou=min_predicted_iou,
        min_stability=min_stability,
        max_candidates=max_candidates,
    )
    with open_context() as ctx:
        if enqueue:
            run, objects = _generate_and_enqueue(ctx, video_id, model, config)
        else:
            run, objects = run_for_video(ctx.catalog, ctx.store, _registry(ctx), video_id, model, config), None
    typer.echo(_run_report(run, config, objects))


@reports_errors
def track(
    video_id: str = typer.Argument(..., help="the catalog video (see `dataengine videos list`)"),
    frame: int = typer.Option(..., "--frame", help="sampled frame of the click (0 is the first)"),
    point: str = typer.Option(..., "--point", help="the click as X,Y in pixels of the frame"),
    out: Path = typer.Option(..., "--out", help="root of the SA-V mask folders to write"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    object_id: int = typer.Option(0, "--object-id", min=0, max=999, help="the object's folder number"),
) -> None:
    """Track the object under one click through the whole video; write it as SA-V mask folders."""
    from engine.model_choice import models_for
    from engine.tracking import check_click, track_click
    from storage.auto_masklet_runs import stored_frames
    from storage.mask_folders import write_sav_folders

    click = parse_point(point)
    with open_context() as ctx:
        frames = stored_frames(ctx.catalog, ctx.store, video_id)
        check_click(frames, frame, click)
        models = models_for(_registry(ctx), model)
    masklet = track_click(models.video, frames, video_id, frame, click, object_id=object_id)
    (folder,) = write_sav_folders(out, [masklet])
    typer.echo(f"model: {models.description}")
    typer.echo(_masklet_line(masklet))
    typer.echo(f"wrote {masklet.frame_count} masks to {folder}")


def parse_point(text: str) -> tuple[float, float]:
    """``"X,Y"`` as two finite numbers (the bounds are checked against the frame later)."""
    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise BadPromptError(f"--point must be X,Y in pixels (e.g. 120,80), got {text!r}") from None
    return x, y


def _registry(ctx: Context) -> SqlModelRegistry:
    return SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))


def _generate_and_enqueue(
    ctx: Context, video_id: str, model: str, config: AutoMaskConfig
) -> tuple[AutoMaskletRun, tuple[int, ...]]:
    """Generate on ``video_id`` and submit every candidate with its verify task, in one transaction.

    Returns the run (for the report) and the object ids the catalog gave the candidates.
    """
    from engine.model_choice import models_for
    from phases.auto_masklets import ChosenModel, ModelCandidateGenerator, generate_and_submit
    from storage.annotation_store import SqlAnnotationStore
    from storage.auto_masklet_runs import AutoMaskletRun

    store = SqlAnnotationStore(ctx.catalog, ctx.store)
    store.frames(video_id)  # an unknown video fails here, before a model is loaded
    models = models_for(_registry(ctx), model)
    generator = ModelCandidateGenerator(ChosenModel(models), config)
    submitted = generate_and_submit(store, generator, [video_id])
    assert generator.last is not None  # generate_and_submit ran it on the video
    masklet_ids = tuple(s.masklet_id for s in submitted)
    run = AutoMaskletRun(
        video_id, models.description, models.model_version_id, models.video.pretrained, generator.last, masklet_ids
    )
    return run, tuple(store.masklet(m).masklet.object_id for m in masklet_ids)


def _run_report(run: AutoMaskletRun, config: AutoMaskConfig, objects: tuple[int, ...] | None = None) -> str:
    """What the run did; ``objects``: the catalog's object ids when the candidates were sent to verification."""
    stats = run.result.stats
    grid = ", ".join(str(n) for n in config.grid_sides)
    lines = [
        f"model: {run.model}",
        f"grid {grid} points per side: {stats.points} points -> {stats.predicted} masks, "
        f"{stats.passed_scores} passed the thresholds, {stats.kept} kept",
    ]
    if not run.masklet_ids:
        lines.append("no candidates kept; nothing stored")
        if not run.pretrained:
            lines.append(
                "(the model has random weights: its predicted IoUs stay near 0.5, so lower "
                "--min-predicted-iou and --min-stability to see candidates anyway)"
            )
        return "\n".join(lines)
    lines.append("object  masklet  visible  mean area  size    mean stability")
    object_ids = objects if objects is not None else tuple(m.object_id for m in run.result.masklets)
    for masklet, masklet_id, object_id in zip(run.result.masklets, run.masklet_ids, object_ids, strict=True):
        lines.append(f"{object_id:>6}  {masklet_id:>7}  {_masklet_line(masklet, table=True)}")
    if objects is None:
        lines.append(
            f"stored {len(run.masklet_ids)} auto masklets of {run.video_id} in verification "
            "(without verify tasks: --enqueue sends them through `dataengine verify`)"
        )
    else:
        lines.append(
            f"sent {len(run.masklet_ids)} auto masklets of {run.video_id} to verification, each with a verify task "
            "(`dataengine verify` works them)"
        )
    return "\n".join(lines)


def _masklet_line(masklet: Masklet, *, table: bool = False) -> str:
    visible = f"{sum(masklet.visible)}/{masklet.frame_count}"
    scores = masklet.stability_scores or ()
    stability = sum(scores) / len(scores) if scores else float("nan")
    if table:
        return f"{visible:>7}  {masklet.size_abs:>9.1f}  {masklet.size_bucket.value:<6}  {stability:.3f}"
    return (
        f"object {masklet.object_id}: visible on {visible} frames, mean area {masklet.size_abs:.1f} px "
        f"({masklet.size_bucket.value}), mean stability {stability:.3f}"
    )
