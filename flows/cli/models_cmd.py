"""``dataengine models list|show|promote|rollback``: the model registry from the shell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from engine.errors import ModelNotFoundError
from engine.model_registry import CHAMPION, ModelRef, ModelVersion, promote, validate_model_name
from flows.cli.context import open_context, reports_errors
from storage.model_registry import SqlModelRegistry

# Until settings has a model_cache_dir, downloaded weights sit beside the embedded catalog.
KEY_METRICS = ("val_jf", "val_gain", "val_j", "val_f")  # shown first in `models list`
METRICS_SHOWN = 4

models_app = typer.Typer(help="Model versions in the registry, and their aliases (champion).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@contextmanager
def open_registry() -> Iterator[SqlModelRegistry]:
    with open_context() as ctx:
        yield SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))


@models_app.command("list")
@reports_errors
def models_list(name: str | None = typer.Argument(None, help="only this model's versions")) -> None:
    """One version per line: name@version, aliases, parent, created, key metrics."""
    with open_registry() as registry:
        versions = registry.list(name)
        if not versions and name is not None:
            validate_model_name(name)
            raise ModelNotFoundError(f"no model named {name!r} in the registry (`dataengine models list` shows all)")
        for version in versions:
            typer.echo(_line(version))


@models_app.command("show")
@reports_errors
def models_show(ref: str = typer.Argument(..., help="NAME, NAME@VERSION, NAME@ALIAS or NAME@latest")) -> None:
    """Everything recorded about one version, as JSON."""
    with open_registry() as registry:
        typer.echo(json.dumps(_document(registry.resolve(ref)), indent=2, sort_keys=True))


@models_app.command("promote")
@reports_errors
def models_promote(
    ref: str = typer.Argument(..., help="the version to promote, e.g. sam2-compact@4 or sam2-compact@latest"),
    alias: str = typer.Option(CHAMPION, "--alias", help="the alias to point at it"),
) -> None:
    """Point an alias (the champion by default) at a version; the next task picks it up."""
    with open_registry() as registry:
        before = registry.aliases(ModelRef.parse(ref).name).get(alias)
        version = promote(registry, ref, alias)
        typer.echo(f"{version.name}@{alias} -> {version.version}{_was(before, version)}")


@models_app.command("rollback")
@reports_errors
def models_rollback(
    name: str = typer.Argument(..., help="the model, e.g. sam2-compact"),
    alias: str = typer.Option(CHAMPION, "--alias", help="the alias to move back"),
) -> None:
    """Undo the last move of an alias: it points where it pointed before (run twice to redo)."""
    with open_registry() as registry:
        before = registry.aliases(name).get(alias)
        version = registry.rollback(name, alias)
        typer.echo(f"{name}@{alias} -> {version.version}{_was(before, version)}")


def _was(before: int | None, now: ModelVersion) -> str:
    if before is None:
        return " (newly set)"
    return " (unchanged)" if before == now.version else f" (was {before})"


def _line(version: ModelVersion) -> str:
    fields = [
        version.ref,
        ",".join(version.aliases) or "-",
        f"parent {version.parent_ref}" if version.parent_ref else "no parent",
        version.created_at.strftime("%Y-%m-%d %H:%M"),
        _metrics_text(version.metrics) or "-",
    ]
    return "\t".join(fields)


def _metrics_text(metrics: dict[str, Any]) -> str:
    """The key metrics first, then other numbers, a few at most."""
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    ordered = [k for k in KEY_METRICS if k in numeric] + sorted(k for k in numeric if k not in KEY_METRICS)
    return " ".join(f"{k}={_number(numeric[k])}" for k in ordered[:METRICS_SHOWN])


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _document(version: ModelVersion) -> dict[str, Any]:
    document = asdict(version)
    document["ref"] = version.ref
    document["created_at"] = version.created_at.isoformat()
    document["aliases"] = list(version.aliases)
    return document
