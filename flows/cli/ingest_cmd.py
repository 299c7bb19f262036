"""``dataengine ingest PATH_OR_S3_URL...``."""

from __future__ import annotations


import typer

from engine.ingest import IngestStatus
from flows.cli.context import open_context, reports_errors
from storage.ingest_sources import ingest_sources


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


@reports_errors
def ingest(
    sources: list[str] = typer.Argument(..., help="video files, folders, or s3://bucket/prefix URLs"),
) -> None:
    """Sample videos at the configured FPS into the object store and record them in the catalog.

    Ingesting the same content twice adds nothing. A bad file is reported and the others go on;
    the exit status is 1 if any file failed.
    """
    with open_context() as ctx:
        results = ingest_sources(sources, catalog=ctx.catalog, store=ctx.store, settings=ctx.settings)
    for r in results:
        if r.status is IngestStatus.FAILED:
            typer.echo(f"FAILED   {r.source}: {r.error}")
        else:
            extra = f", {r.ground_truth_masklets} ground-truth masklets" if r.ground_truth_masklets else ""
            typer.echo(f"{r.status.value:<16} {r.video_id}  {r.frames} frames{extra}  <- {r.source}")
    counts = {s: sum(1 for r in results if r.status is s) for s in IngestStatus}
    typer.echo(
        f"{len(results)} files: {counts[IngestStatus.INGESTED]} ingested, "
        f"{counts[IngestStatus.ALREADY_PRESENT]} already present, {counts[IngestStatus.FAILED]} failed"
    )
    if counts[IngestStatus.FAILED]:
        raise typer.Exit(1)
    if not results:
        typer.echo("no video files found", err=True)
        raise typer.Exit(1)


