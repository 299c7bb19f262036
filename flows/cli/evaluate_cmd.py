"""`dataengine evaluate`: J&F of predicted masks against ground truth, from SA-V or DAVIS folders."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from engine.folder_eval import evaluate_folders
from engine.jf import EvaluationResult
from flows.cli.context import reports_errors


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the CLI app."""
    app.command("evaluate")(evaluate)


@reports_errors
def evaluate(
    gt: Path = typer.Option(
        ..., "--gt", help="Ground-truth root: {video}/{object}/{frame}.png (SA-V) or {video}/{frame}.png (DAVIS)."
    ),
    pred: Path = typer.Option(..., "--pred", help="Prediction root, laid out like the ground truth."),
    skip_first_last: bool = typer.Option(
        True,
        "--skip-first-last/--no-skip-first-last",
        help="Drop each object's first and last annotated frame (SA-V val/test).",
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Processes scoring videos in parallel; 0 = one per CPU core."
    ),
    per_video: bool = typer.Option(False, "--per-video", help="Also print one line per video."),
) -> None:
    """Score predicted masks with J (region IoU), F (boundary accuracy) and their mean J&F."""
    result = evaluate_folders(gt, pred, skip_first_last=skip_first_last, workers=workers or (os.cpu_count() or 1))
    typer.echo(format_result(result, per_video=per_video))


def format_result(result: EvaluationResult, *, per_video: bool = False) -> str:
    """The report: optional per-video lines, then the overall ``J&F  J  F`` line."""
    lines = []
    if per_video:
        width = max([len("video"), *(len(v.video_id) for v in result.videos)])
        lines.append(f"{'video':<{width}}  objects  J&F     J       F")
        lines += [
            f"{v.video_id:<{width}}  {v.n_objects:>7}  {v.jf:.4f}  {v.j:.4f}  {v.f:.4f}" for v in result.videos
        ]
    lines.append(f"{len(result.objects)} objects in {len(result.videos)} videos")
    lines.append(f"J&F {result.jf:.4f}  J {result.j:.4f}  F {result.f:.4f}")
    return "\n".join(lines)
