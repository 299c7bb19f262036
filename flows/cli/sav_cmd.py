"""``dataengine import-sav``, ``dataengine export-sav`` and ``dataengine export-parquet``."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.context import open_context, reports_errors
from storage import exports
from storage.exports import ImportAs, MaskletSelection


def register(app: typer.Typer) -> None:
    app.command("import-sav")(import_sav)
    app.command("export-sav")(export_sav)
    app.command("export-parquet")(export_parquet)


@reports_errors
def import_sav(
    file: Path = typer.Argument(
        ..., metavar="FILE.json", help="an SA-V JSON file ({video_id}_manual.json or _auto.json)"
    ),
    video: Path | None = typer.Option(
        None,
        "--video",
        metavar="VIDEO_FILE",
        help="the video file the masklets belong to; ingested first if the catalog lacks it",
    ),
    as_: ImportAs = typer.Option(
        ImportAs.GROUND_TRUTH,
        "--as",
        help="ground-truth: the reference phases are evaluated against; "
        "dataset: satisfactory masklets, as if annotated here",
    ),
) -> None:
    """Record the masklets of an SA-V file in the catalog, all of them or none.

    Without --video the file's video_id must already be in the catalog. Importing the same
    file again as dataset adds nothing; as ground truth it is refused.
    """
    with open_context() as ctx:
        result = exports.import_sav(
            ctx.catalog, file, as_=as_, video_file=video, store=ctx.store, settings=ctx.settings
        )
    ingested = " (video ingested)" if result.video_ingested else ""
    present = f", {result.already_present} already present" if result.already_present else ""
    typer.echo(
        f"imported {result.imported} {result.imported_as.value} masklets{present} "
        f"for video {result.video_id}{ingested} <- {file}"
    )


@reports_errors
def export_sav(
    video_ids: list[str] | None = typer.Argument(
        None, metavar="VIDEO_ID...", help="videos to export (default: every video)"
    ),
    out: Path = typer.Option(..., "--out", metavar="DIR", help="folder for the SA-V JSON files"),
    masklets: MaskletSelection = typer.Option(
        MaskletSelection.DATASET,
        "--masklets",
        help="dataset: the newest satisfactory masklet per object; ground-truth: ground truth, as manual",
    ),
) -> None:
    """Write SA-V JSON files ({video_id}_manual.json, {video_id}_auto.json) as Meta publishes SA-V.

    Prints one line per file written and one per video skipped for want of masklets.
    """
    skipped: list[str] = []

    def report_skip(video_id: str, reason: str) -> None:
        skipped.append(video_id)
        typer.echo(f"skipped {video_id}: {reason}")

    with open_context() as ctx:
        written = exports.export_sav(ctx.catalog, video_ids or None, out, masklets=masklets, on_skip=report_skip)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(written)} files written, {len(skipped)} videos skipped")


@reports_errors
def export_parquet(
    out: Path = typer.Option(..., "--out", metavar="DIR", help="folder for the Parquet files"),
) -> None:
    """Write the catalog's videos, frames, masklets, masks, annotation events and verifications as Parquet."""
    with open_context() as ctx:
        written = exports.export_parquet(ctx.catalog, out)
    for path in written:
        typer.echo(f"wrote {path}")
