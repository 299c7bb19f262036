"""The catalog database: connections, transactions and schema migrations.

SQLite is the embedded default and PostgreSQL the scale-out catalog; both are reached by URL
alone. On SQLite every connection runs in WAL mode with a busy timeout, reads begin a
deferred transaction, and writes begin ``BEGIN IMMEDIATE`` so that two writers queue on the
database lock up front instead of failing half-way with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import CatalogError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> URL:
    """Parse a catalog URL; plain ``postgresql://`` uses psycopg 3, the driver we install."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Catalog:
    """One catalog database: sessions for reading and writing, and its schema's revision."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        self.engine = _create_engine(self.url, pool_size=pool_size)
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def display_url(self) -> str:
        """The URL without its password, for logs and ``dataengine config``."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with _errors_as_catalog_errors(self), self._sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes are committed together at the end, or not at all."""
        with _errors_as_catalog_errors(self), self._write_sessions() as session:
            with session.begin():
                # Take the write lock now (BEGIN IMMEDIATE on SQLite), not at the first flush,
                # so a read-modify-write inside the block cannot be overtaken by another writer.
                session.connection()
                yield session

    # --- schema -----------------------------------------------------------------------------

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["catalog_engine"] = self.engine
        return config

    def current_revision(self) -> str | None:
        with _errors_as_catalog_errors(self), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (``dataengine db upgrade``)."""
        with _errors_as_catalog_errors(self):
            command.upgrade(self.alembic_config(), revision)

    def downgrade(self, revision: str) -> None:
        with _errors_as_catalog_errors(self):
            command.downgrade(self.alembic_config(), revision)

    def ensure_schema(self) -> None:
        """Create a brand-new catalog's schema; refuse to run on an out-of-date one.

        Creating the tables of an empty database is harmless, so a new user's first command
        just works; migrating a catalog that already holds data is left to an explicit
        ``dataengine db upgrade``.
        """
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if current is None and not _has_tables(self.engine):
            self.upgrade()
            return
        raise CatalogError(
            f"catalog {self.display_url()} is at schema revision {current or 'none'}, "
            f"this version of dataengine needs {head}: run `dataengine db upgrade`"
        )

    def dispose(self) -> None:
        self.engine.dispose()


def _has_tables(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(engine).get_table_names())


def _create_engine(url: URL, *, pool_size: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,  # a restarted server or a killed backend costs one reconnect, not a crash
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": 10},
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below instead of pysqlite's own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def _errors_as_catalog_errors(catalog: Catalog) -> Iterator[None]:
    """Connection-level failures become a CatalogError naming the catalog; others pass through."""
    try:
        yield
    except OperationalError as exc:
        raise CatalogError(f"catalog {catalog.display_url()}: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise CatalogError(f"catalog {catalog.display_url()} connection lost: {_first_line(exc)}") from exc
        raise


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def open_catalog(url: str, *, ensure_schema: bool = True) -> Catalog:
    """A catalog for ``url``, with a fresh database's schema created on first use."""
    catalog = Catalog(url)
    if ensure_schema:
        catalog.ensure_schema()
    return catalog
