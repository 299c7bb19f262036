"""Catalog queries about training runs (``training_runs``), and the run log on a catalog.

A run is recorded as ``running`` before its first step, with its configuration and the
manifest of the data it trains on, and finished exactly once: ``succeeded`` or ``failed``
with its error. Finishing is one conditional UPDATE (``WHERE status = 'running'``), so two
processes racing to finish the same run cannot both win, and a finished run never changes.
A run whose process was killed stays ``running``; its manifest still says what it was given.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.errors import NotFoundError, TrainingRunError
from engine.model_registry import validate_model_name
from engine.queues import error_note
from engine.training_data import RunStatus, TrainingRun
from storage.catalog import Catalog
from storage.schema import TrainingRunRow, utcnow


def start_run(
    session: Session, model_name: str, config: Mapping[str, Any], dataset: Mapping[str, Any], *, now: datetime
) -> TrainingRun:
    """Record a new ``running`` run (in the caller's transaction)."""
    row = TrainingRunRow(
        model_name=validate_model_name(model_name),
        status=RunStatus.RUNNING.value,
        config=_plain_json(config, "config"),
        dataset=_plain_json(dataset, "dataset"),
        started_at=now,
    )
    session.add(row)
    session.flush()
    return _run(row)


def finish_run(
    session: Session, run_id: int, status: RunStatus, *, now: datetime, error: str | None = None
) -> TrainingRun:
    """End a running run as ``succeeded`` or ``failed`` (with ``error``); refused unless it is running."""
    if status is RunStatus.RUNNING:
        raise TrainingRunError("a run is finished as succeeded or failed, not as running")
    if status is RunStatus.FAILED and not (error and error.strip()):
        raise TrainingRunError(f"training run {run_id} cannot fail without saying why: give its error")
    values: dict[str, Any] = {"status": status.value, "finished_at": now, "error": None}
    if status is RunStatus.FAILED:
        values["error"] = error_note(str(error))
    changed = session.execute(
        update(TrainingRunRow)
        .where(TrainingRunRow.id == run_id, TrainingRunRow.status == RunStatus.RUNNING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        current = get_run(session, run_id)  # NotFoundError when there is no such run
        raise TrainingRunError(
            f"training run {run_id} already ended {current.status.value} at {current.finished_at}; "
            f"a run is finished once (start a new run to train again)"
        )
    return get_run(session, run_id)


def get_run(session: Session, run_id: int) -> TrainingRun:
    row = session.get(TrainingRunRow, run_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no training run {run_id} in the catalog")
    return _run(row)


def list_runs(session: Session, model_name: str | None = None) -> list[TrainingRun]:
    """Runs, oldest first, of one model or of all."""
    query = select(TrainingRunRow).order_by(TrainingRunRow.id)
    if model_name is not None:
        query = query.where(TrainingRunRow.model_name == validate_model_name(model_name))
    return [_run(r) for r in session.scalars(query)]


def _run(row: TrainingRunRow) -> TrainingRun:
    try:
        status = RunStatus(row.status)
    except ValueError:
        raise TrainingRunError(
            f"training run {row.id} has status {row.status!r}, which this version of dataengine does not "
            f"know (known: {', '.join(s.value for s in RunStatus)})"
        ) from None
    return TrainingRun(
        id=row.id,
        model_name=row.model_name,
        status=status,
        config=dict(row.config or {}),
        dataset=dict(row.dataset or {}),
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
    )


def _plain_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A JSON object stored exactly as given (no NaN, no numpy scalars), or TrainingRunError."""
    if not isinstance(value, Mapping):
        raise TrainingRunError(f"a training run's {what} is a JSON object (a mapping), not {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TrainingRunError(f"a training run's {what} does not serialise to JSON: {exc}") from None


class SqlTrainingRuns:
    """:class:`engine.training_data.TrainingRunLog` on a catalog."""

    def __init__(self, catalog: Catalog, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.clock = clock  # tests pass a fake one

    def start(self, model_name: str, config: Mapping[str, Any], dataset: Mapping[str, Any]) -> TrainingRun:
        with self.catalog.write() as session:
            return start_run(session, model_name, config, dataset, now=self.clock())

    def succeed(self, run_id: int) -> TrainingRun:
        with self.catalog.write() as session:
            return finish_run(session, run_id, RunStatus.SUCCEEDED, now=self.clock())

    def fail(self, run_id: int, error: str) -> TrainingRun:
        with self.catalog.write() as session:
            return finish_run(session, run_id, RunStatus.FAILED, now=self.clock(), error=error)

    def get(self, run_id: int) -> TrainingRun:
        with self.catalog.read() as session:
            return get_run(session, run_id)

    def list(self, model_name: str | None = None) -> builtins.list[TrainingRun]:
        with self.catalog.read() as session:
            return list_runs(session, model_name)
