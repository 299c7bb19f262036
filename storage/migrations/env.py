"""Alembic environment: migrations run on the engine the Catalog hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import storage.queue_schema  # noqa: F401  (registers the queue tables on Base.metadata)
import storage.user_schema  # noqa: F401  (registers the web app's user tables on Base.metadata)
from storage.schema import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


engine = config.attributes.get("catalog_engine") or create_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    _run(connection)
    connection.commit()
