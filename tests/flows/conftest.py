"""Fixtures for the flows: one Prefect test harness for the session, small engines on SQLite.

Prefect's test harness starts a temporary API server on a temporary database; starting it
costs seconds, so the whole session shares one. Each test gets its own catalog and object
store, passed to the flows by URL as a deployment would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.settings import load_settings
from engine.synthetic import SyntheticSpec, synthesize
from flows.resources import Resources, close_resources, resources
from storage.ingest_sources import ingest_sources

# 8 sampled frames, two objects: seconds for a whole phase with simulated models.
TINY = SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # No telemetry (its first write races the server's own and logs a lock error) and no UI.
    quiet = {"server.analytics_enabled": False, "server.ui.enabled": False}
    with temporary_settings(updates=quiet), prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class SmallEngine:
    """A catalog and object store by URL, with synthetic videos ingested (ground truth included)."""

    root: Path
    catalog_url: str
    object_store_url: str
    video_ids: list[str]

    @property
    def urls(self) -> dict[str, str]:
        return {"catalog_url": self.catalog_url, "object_store_url": self.object_store_url}

    @property
    def res(self) -> Resources:
        return resources(self.catalog_url, self.object_store_url)


def make_small_engine(root: Path, videos: int = 1, seed: int = 5, spec: SyntheticSpec = TINY) -> SmallEngine:
    return make_small_engine_at(root, f"sqlite:///{root / 'catalog.db'}", videos, seed, spec)


def make_small_engine_at(
    root: Path, catalog_url: str, videos: int = 1, seed: int = 5, spec: SyntheticSpec = TINY
) -> SmallEngine:
    """:func:`make_small_engine` on the catalog at ``catalog_url`` (a PostgreSQL database, say)."""
    object_store_url = f"file://{root / 'objects'}"
    paths = synthesize(root / "videos", videos, seed=seed, spec=spec)
    res = resources(catalog_url, object_store_url)
    results = ingest_sources([str(p) for p in paths], catalog=res.catalog, store=res.store, settings=load_settings())
    return SmallEngine(root, catalog_url, object_store_url, [r.video_id for r in results if r.video_id])


@pytest.fixture
def small_engine(tmp_path: Path) -> Iterator[SmallEngine]:
    try:
        yield make_small_engine(tmp_path)
    finally:
        close_resources()
