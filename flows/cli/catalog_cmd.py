"""``dataengine config``, ``dataengine db ...`` and ``dataengine videos list``."""

from __future__ import annotations

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
