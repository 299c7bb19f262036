"""``dataengine demo``: the main job on the embedded default.

Until the engine cycle lands, the demo makes seeded synthetic videos with ground truth,
ingests them into the embedded catalog (SQLite) and local object store, prints a catalog
summary, and exports the ground truth as SA-V JSON and the catalog as Parquet. Running it
again adds nothing: ingestion is idempotent by content.
"""

from __future__ import annotations

from pathlib import Path

import typer

from engine.ingest import IngestStatus
from engine.synthetic import synthesize
from flows.cli.context import open_context, reports_errors
from storage import videos as video_queries
from storage.exports import export_parquet, export_sav
from storage.ingest_sources import ingest_sources


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@reports_errors
def demo(
    videos: int = typer.Option(3, min=1, help="synthetic videos to make"),
    seed: int = typer.Option(0, min=0, help="seed of the synthetic videos"),
    out: Path = typer.Option(Path(".dataengine/demo"), help="folder for videos and exports"),
) -> None:
    """Synthesize videos, ingest them, summarise the catalog, export SA-V JSON and Parquet."""
    paths = synthesize(out / "videos", videos=videos, seed=seed)
    typer.echo(f"synthesized {len(paths)} videos with ground truth in {out / 'videos'}")
    with open_context() as ctx:
        results = ingest_sources([str(p) for p in paths], catalog=ctx.catalog, store=ctx.store, settings=ctx.settings)
        for r in results:
            typer.echo(f"  {r.status.value:<16} {r.video_id or r.source}  {r.frames} frames  {r.error or ''}")
        if any(r.status is IngestStatus.FAILED for r in results):
            raise typer.Exit(1)
        with ctx.catalog.read() as session:
            summary = video_queries.catalog_summary(session)
        typer.echo(f"catalog {ctx.catalog.display_url()}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary.items()))
        ids = [r.video_id for r in results if r.video_id]
        written = export_sav(ctx.catalog, ids, out / "sav", masklets="ground-truth")
        typer.echo(f"SA-V ground truth: {len(written)} files in {out / 'sav'}")
        tables = export_parquet(ctx.catalog, out / "parquet")
        typer.echo(f"Parquet: {', '.join(p.name for p in tables)} in {out / 'parquet'}")
