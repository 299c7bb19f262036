"""Fixtures shared by the whole suite: catalogs on SQLite and PostgreSQL, object stores.

Server-backed fixtures skip with a clear reason when their server is absent, except under
CI (``CI`` set), where the servers are part of the machine and a skip would hide a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.catalog import Catalog

pytest_plugins = ["tests.s3_server"]

POSTGRES_ADMIN_URL = os.environ.get("DATAENGINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI the missing server is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    url = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with _admin_connection():
            return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@pytest.fixture(scope="session")
def postgres_template(postgres_available: bool) -> Iterator[str | None]:
    """A migrated database that each test's database is copied from (CREATE DATABASE ... TEMPLATE).

    Copying a template takes a fraction of the time of migrating a new database per test.
    """
    if not postgres_available:
        yield None
        return
    name = f"dataengine_template_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    catalog = Catalog(f"{_server_url()}/{name}")
    try:
        catalog.upgrade()
    finally:
        catalog.dispose()
    try:
        yield name
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server_url() -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0]


def _new_database(template: str | None) -> str:
    name = f"dataengine_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def _drop_database(name: str) -> None:
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not postgres_available:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    name = _new_database(None)
    try:
        yield f"{_server_url()}/{name}"
    finally:
        _drop_database(name)


@pytest.fixture
def migrated_postgres_url(postgres_available: bool, postgres_template: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database already at the newest schema, dropped afterwards."""
    if not postgres_available:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    name = _new_database(postgres_template)
    try:
        yield f"{_server_url()}/{name}"
    finally:
        _drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which catalog backend a test runs on: every catalog test runs on both."""
    return request.param


@pytest.fixture
def catalog_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A catalog URL on the test's backend: a new SQLite file, or a new migrated PostgreSQL database."""
    if backend == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("migrated_postgres_url")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A migrated, empty catalog on the test's backend (the same database as ``catalog_url``)."""
    cat = Catalog(catalog_url)
    cat.upgrade()
    try:
        yield cat
    finally:
        cat.dispose()


@pytest.fixture
def sqlite_catalog(sqlite_url: str) -> Iterator[Catalog]:
    cat = Catalog(sqlite_url)
    cat.upgrade()
    try:
        yield cat
    finally:
        cat.dispose()


@pytest.fixture
def shared_videos() -> Path:
    """The real videos in ../shared/data/videos; skipped where a clone has no ../shared."""
    if not SHARED_VIDEOS.is_dir() or not any(SHARED_VIDEOS.glob("*.mp4")):
        pytest.skip(f"real videos not found at {SHARED_VIDEOS} (a clone without ../shared)")
    return SHARED_VIDEOS


@pytest.fixture
def no_bundled_model(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``sam2-compact`` as in a checkout without the shipped bootstrap checkpoint: random weights.

    For tests of the model path's mechanics whose counts (candidates kept, what a grid of
    prompts finds) follow from the weights: pinned to seeded random weights, they do not change
    whenever the shipped model is retrained. Loading the shipped checkpoint has its own tests
    (tests/training/test_bootstrap.py).
    """
    monkeypatch.setattr("engine.bundled.WEIGHTS_ROOT", tmp_path_factory.mktemp("no-bundled-model"))
