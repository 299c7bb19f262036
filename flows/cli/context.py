"""What every command needs: the effective settings, the catalog and the object store."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import typer

from engine.errors import DataEngineError
from engine.ports import ObjectStore
from engine.settings import Settings, load_settings
from storage.catalog import Catalog, open_catalog
from storage.objects import open_object_store

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    settings: Settings
    catalog: Catalog
    store: ObjectStore


@contextmanager
def open_context(*, ensure_schema: bool = True) -> Iterator[Context]:
    """Settings, a catalog (a fresh one gets its schema) and the object store, closed at the end."""
    settings = load_settings()
    catalog = open_catalog(settings.catalog_url, ensure_schema=ensure_schema)
    try:
        yield Context(settings, catalog, open_object_store(settings))
    finally:
        catalog.dispose()


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise (status 2)."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def reports_errors(func: F) -> F:
    """Turn a DataEngineError inside a command into one ``error:`` line and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DataEngineError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]
