"""``dataengine config``, ``dataengine db ...`` and ``dataengine videos list|reserve-validation``."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.settings import load_settings
from flows.cli.context import open_context, reports_errors
from storage import videos as video_queries
from storage.catalog import Catalog, normalise_url

db_app = typer.Typer(help="The catalog database's schema.", no_args_is_help=True)
videos_app = typer.Typer(help="Videos in the catalog.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)
    app.add_typer(db_app, name="db")
    app.add_typer(videos_app, name="videos")


@reports_errors
def show_config() -> None:
    """Print the effective settings (environment, dataengine.toml and defaults combined)."""
    settings = load_settings()
    for name, value in settings.model_dump().items():
        if name == "catalog_url":
            value = normalise_url(value).render_as_string(hide_password=True)
        typer.echo(f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}")


@db_app.command("upgrade")
@reports_errors
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply the catalog's schema migrations."""
    catalog = Catalog(load_settings().catalog_url)
    try:
        before = catalog.current_revision()
        catalog.upgrade(revision)
        typer.echo(f"catalog {catalog.display_url()}: {before or 'empty'} -> {catalog.current_revision()}")
    finally:
        catalog.dispose()


@db_app.command("current")
@reports_errors
def db_current() -> None:
    """Print the catalog's schema revision and the one this version needs."""
    catalog = Catalog(load_settings().catalog_url)
    try:
        typer.echo(f"current {catalog.current_revision() or 'none'}  head {catalog.head_revision()}")
    finally:
        catalog.dispose()


@videos_app.command("list")
@reports_errors
def videos_list() -> None:
    """One video per line: id, sampled frames, size, FPS, split, source."""
    with open_context() as ctx, ctx.catalog.read() as session:
        for v in video_queries.list_videos(session):
            typer.echo(
                f"{v.id}\t{v.frame_count} frames\t{v.width}x{v.height}\t{v.source_fps:.2f} fps"
                f"\t{v.split}\t{v.source_uri}"
            )


@videos_app.command("reserve-validation")
@reports_errors
def videos_reserve_validation(
    video_ids: Annotated[list[str] | None, typer.Argument(help="videos to hold out (or give --fraction)")] = None,
    fraction: Annotated[
        float | None,
        typer.Option(help="have the validation split reach this share of the videos (e.g. 0.1), chosen by id hash"),
    ] = None,
) -> None:
    """Hold videos out of training for validation, before they are annotated (then annotate them with Phase 1).

    Retraining validates on held-out videos annotated in Phase 1, as SAM 2's data engine did, so
    that validation does not favour the engine's own model; a video any run trained on is refused.
    """
    from storage.training_data import SqlTrainingData
    from storage.training_runs import SqlTrainingRuns
    from training.dataset import reserve_validation_videos

    with open_context() as ctx:
        reservation = reserve_validation_videos(
            SqlTrainingData(ctx.catalog, ctx.store),
            SqlTrainingRuns(ctx.catalog),
            video_ids=video_ids or None,
            fraction=fraction,
        )
    for video_id in reservation.reserved:
        typer.echo(video_id)
    typer.echo(reservation.note, err=True)
