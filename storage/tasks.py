"""Catalog queries about tasks, their history and masklet contributors, in the caller's transaction.

They take a Core ``Connection`` (from a Session: ``session.connection()``), since the queue's
hot path needs none of the ORM and its per-call cost.

:class:`storage.task_queue.TaskQueue` wraps each worker call in one transaction of these. The
statements workers run thousands of times a second (claim, reap, finish, heartbeat) are built
once, with bind parameters: building SQLAlchemy statements per call cost more than the
database's own work.

Every finishing UPDATE carries the lease check in its WHERE clause (this token, still leased,
not expired) and tells by its row count (or RETURNING) whether it matched, so no read can go
stale between checking a lease and acting on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Table,
    bindparam,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement, Update, case

from engine.errors import LeaseLostError, NotFoundError, SelfVerificationError
from engine.queues import Contribution, Lease, NewTask, Queue, QueueStats, Route, Task, TaskStatus, Transition
from storage.queue_schema import MaskletContributorRow, TaskHistoryRow, TaskRow
from storage.schema import MaskletRow, VerificationRow

tasks = cast(Table, TaskRow.__table__)
history = cast(Table, TaskHistoryRow.__table__)
contributors = cast(Table, MaskletContributorRow.__table__)
verifications = cast(Table, VerificationRow.__table__)
# What a Task is made of. Returning no more matters: psycopg describes every returned column
# of every statement, a fifth of a claim's client CPU when all of them came back.
_TASK_COLUMNS = tuple(tasks.c[f.name] for f in fields(Task))

SELF_VERIFICATION_MARK = "may not verify a masklet"  # in the triggers' message (migration 0002)


# --- producing -------------------------------------------------------------------------------------


def add_task(conn: Connection, spec: NewTask, *, now: datetime, by: str | None = None) -> Task:
    """Insert a task, or return the one already enqueued under the same queue and key."""
    values = {
        "queue": spec.queue.value,
        "key": spec.key,
        "payload": dict(spec.payload),
        "priority": spec.priority,
        "status": TaskStatus.READY.value,
        "attempts": 0,
        "max_attempts": spec.max_attempts,
        "available_at": now + timedelta(seconds=spec.delay_s),
        "masklet_id": spec.masklet_id,
        "video_id": spec.video_id,
        "created_at": now,
        "updated_at": now,
        "changed_by": by,
        "change_note": "enqueued",
    }
    statement = insert(tasks) if spec.key is None else _insert_unless_key_exists(conn)
    try:
        row = conn.execute(statement.values(values).returning(*_TASK_COLUMNS)).first()
    except IntegrityError as exc:  # the only constraints NewTask cannot check: the references
        raise NotFoundError(
            f"cannot enqueue a {spec.queue.value} task for masklet {spec.masklet_id}, video "
            f"{spec.video_id}: not in the catalog"
        ) from exc
    if row is None:  # the key was taken: that task is this one
        return task_by_key(conn, spec.queue, spec.key)  # type: ignore[arg-type,return-value]
    return _task(row)


# --- leasing -----------------------------------------------------------------------------------------


def lease_ready(
    conn: Connection, queue: Queue, worker: str, now: datetime, expires: datetime, n: int
) -> list[Lease]:
    """Lease up to ``n`` ready tasks to ``worker`` under one new token, skipping locked rows."""
    token = secrets.token_hex(16)
    params = {"p_queue": queue.value, "p_now": now, "p_n": n, "p_worker": worker, "p_token": token, "p_expires": expires}
    rows = conn.execute(_claim_statement(queue is Queue.VERIFY), params).all()
    leased = sorted(map(_task, rows), key=lambda t: (-t.priority, t.available_at, t.id))
    return [Lease(task, token, worker, expires) for task in leased]


def reap_expired(conn: Connection, now: datetime, queue: Queue | None = None) -> int:
    """Expired leases go back to ready, or to the dead letter when out of attempts."""
    params: dict[str, Any] = {"p_now": now}
    if queue is not None:
        params["p_queue"] = queue.value
    return len(conn.execute(_reap_statement(queue is not None), params).all())


def extend_lease(conn: Connection, task_id: int, token: str, now: datetime, expires: datetime) -> None:
    """Move a held lease's expiry to ``expires``; LeaseLostError when it is not held."""
    params = {"p_id": task_id, "p_token": token, "p_now": now, "p_expires": expires}
    if conn.execute(_heartbeat_statement(), params).rowcount != 1:
        raise LeaseLostError(why_lost(conn, task_id, token))


def finish(
    conn: Connection,
    task_id: int,
    token: str,
    now: datetime,
    outcome: str,
    *,
    note: str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> Task | None:
    """End the caller's lease: ``done``, ``retry`` (or dead when out of attempts) or ``dead``.

    ``note`` says why, in the history. None when the caller does not hold the lease; then
    nothing changed.
    """
    variant, params = _finish_params(task_id, token, now, outcome, note, result, error)
    row = conn.execute(_finish_statement(variant, returning=True), params).first()
    return None if row is None else _task(row)


def complete_known(
    conn: Connection, task: Task, token: str, now: datetime, *, note: str, result: Mapping[str, Any] | None
) -> Task | None:
    """:func:`finish` as ``done`` for a task the caller holds as claimed: nothing read back.

    The done task follows from the claimed one, so the UPDATE returns no columns (a tenth of
    a complete's client time went into describing them).
    """
    variant, params = _finish_params(task.id, token, now, "done", note, result, None)
    if conn.execute(_finish_statement(variant, returning=False), params).rowcount != 1:
        return None
    return replace(task, status=TaskStatus.DONE, result=result, lease_expires_at=None)


def _finish_params(
    task_id: int,
    token: str,
    now: datetime,
    outcome: str,
    note: str,
    result: Mapping[str, Any] | None,
    error: str | None,
) -> tuple[str, dict[str, Any]]:
    variant = "done_with_result" if outcome == "done" and result is not None else outcome
    params: dict[str, Any] = {"p_id": task_id, "p_token": token, "p_now": now, "p_note": note}
    if variant == "done_with_result":
        params["p_result"] = dict(result)  # type: ignore[arg-type]
    elif variant in ("retry", "dead"):
        params["p_error"] = error
    return variant, params


def why_lost(conn: Connection, task_id: int, token: str) -> str:
    """Why ``token`` no longer finishes ``task_id``, for the LeaseLostError."""
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
    if row is None:
        return f"no task {task_id} in the catalog"
    if row.lease_token != token:
        holder = f" by {row.leased_by}" if row.status == TaskStatus.LEASED.value else ""
        return f"task {task_id} was claimed again{holder} since this lease was given; the lease is void"
    if row.status != TaskStatus.LEASED.value:
        return f"task {task_id} is {row.status}: this lease ended (expired and reaped, or already finished)"
    return f"the lease on task {task_id} expired at {row.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"


def finished_by(conn: Connection, task_id: int, token: str, statuses: Sequence[TaskStatus]) -> Task | None:
    """The task if this very lease already moved it to one of ``statuses`` (an earlier try did)."""
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
    if row is not None and row.lease_token == token and TaskStatus(row.status) in statuses:
        return _task(row)
    return None


def hold_back(conn: Connection, task: Task, until: datetime) -> Task:
    """Make a failed task wait until ``until`` before its next attempt (its row is ours already)."""
    row = conn.execute(
        update(tasks).where(tasks.c.id == task.id).values(available_at=until).returning(*_TASK_COLUMNS)
    ).one()
    return _task(row)


def set_result(conn: Connection, task: Task, result: Mapping[str, Any]) -> Task:
    row = conn.execute(
        update(tasks).where(tasks.c.id == task.id).values(result=dict(result)).returning(*_TASK_COLUMNS)
    ).one()
    return _task(row)


def revive(conn: Connection, where: ColumnElement[bool], now: datetime, by: str) -> list[Task]:
    """Dead-letter tasks matching ``where`` get a fresh set of attempts, ready now."""
    rows = conn.execute(
        update(tasks)
        .where(where, tasks.c.status == TaskStatus.DEAD.value)
        .values(
            status=TaskStatus.READY.value,
            attempts=0,
            available_at=now,
            updated_at=now,
            changed_by=by,
            change_note="requeued from the dead letter",
        )
        .returning(*_TASK_COLUMNS)
    ).all()
    return [_task(r) for r in rows]


# --- masklets: contributors, statuses, verdicts ---------------------------------------------------------


def add_contributor(
    conn: Connection, masklet_id: int, worker: str, contribution: Contribution, task_id: int | None, now: datetime
) -> None:
    """Record that ``worker`` made or changed the masklet, which bars them from verifying it."""
    values = {"masklet_id": masklet_id, "worker": worker, "contribution": contribution.value, "task_id": task_id, "at": now}
    conn.execute(_dialect_insert(conn, contributors).values(values).on_conflict_do_nothing())


def inherit_contributors(conn: Connection, old: int, new: int, now: datetime) -> None:
    """A refinement stored as a new masklet keeps the old one's contributors barred too."""
    for worker, contribution in conn.execute(
        select(contributors.c.worker, contributors.c.contribution).where(contributors.c.masklet_id == old)
    ):
        add_contributor(conn, new, worker, Contribution(contribution), None, now)


def set_masklet_status(conn: Connection, masklet_id: int, status: str) -> None:
    changed = conn.execute(update(MaskletRow).where(MaskletRow.id == masklet_id).values(status=status)).rowcount
    if changed != 1:
        raise NotFoundError(f"no masklet {masklet_id} in the catalog")


def add_verification(
    conn: Connection,
    masklet_id: int,
    verifier: str,
    route: Route,
    reason: str | None,
    frames: Sequence[int] | None,
    now: datetime,
) -> int:
    """Record a verdict; the database refuses one from a contributor of the masklet."""
    values = {
        "masklet_id": masklet_id,
        "verifier": verifier,
        "verdict": route.masklet_status,
        "reason": reason,
        "frames": list(frames) if frames else None,
        "created_at": now,
    }
    try:
        return conn.execute(insert(verifications).values(values).returning(verifications.c.id)).scalar_one()
    except IntegrityError as exc:
        if SELF_VERIFICATION_MARK in str(exc.orig):
            raise SelfVerificationError(
                f"{verifier} annotated or refined masklet {masklet_id} and may not verify it"
            ) from None
        raise


# --- reading --------------------------------------------------------------------------------


def get_task(conn: Connection, task_id: int) -> Task:
    row = conn.execute(select(*_TASK_COLUMNS).where(tasks.c.id == task_id)).first()
    if row is None:
        raise NotFoundError(f"no task {task_id} in the catalog")
    return _task(row)


def task_by_key(conn: Connection, queue: Queue, key: str) -> Task | None:
    row = conn.execute(select(*_TASK_COLUMNS).where(tasks.c.queue == queue.value, tasks.c.key == key)).first()
    return None if row is None else _task(row)


def queue_stats(conn: Connection, now: datetime) -> list[QueueStats]:
    """Every queue's depth by status, and how long its oldest claimable task has waited."""
    counts: dict[Queue, dict[str, int]] = {q: {} for q in Queue}
    for queue, status, count in conn.execute(
        select(tasks.c.queue, tasks.c.status, func.count()).group_by(tasks.c.queue, tasks.c.status)
    ):
        counts[Queue(queue)][status] = count
    oldest = dict(
        conn.execute(
            select(tasks.c.queue, func.min(tasks.c.available_at))
            .where(tasks.c.status == TaskStatus.READY.value, tasks.c.available_at <= now)
            .group_by(tasks.c.queue)
        ).all()
    )
    return [
        QueueStats(
            queue=q,
            ready=counts[q].get("ready", 0),
            leased=counts[q].get("leased", 0),
            done=counts[q].get("done", 0),
            dead=counts[q].get("dead", 0),
            oldest_ready_age_s=None if oldest.get(q.value) is None else max(0.0, (now - oldest[q.value]).total_seconds()),
        )
        for q in Queue
    ]


def list_tasks(conn: Connection, queue: Queue | None, status: TaskStatus | None, limit: int) -> list[Task]:
    """Tasks, oldest first, optionally of one queue and one status."""
    query = select(*_TASK_COLUMNS).order_by(tasks.c.id).limit(max(1, limit))
    if queue is not None:
        query = query.where(tasks.c.queue == queue.value)
    if status is not None:
        query = query.where(tasks.c.status == status.value)
    return [_task(row) for row in conn.execute(query)]


def task_history(conn: Connection, task_id: int) -> list[Transition]:
    """Every transition of a task, in order."""
    rows = conn.execute(select(history).where(history.c.task_id == task_id).order_by(history.c.id))
    return [
        Transition(
            task_id=r.task_id,
            queue=Queue(r.queue),
            from_status=None if r.from_status is None else TaskStatus(r.from_status),
            to_status=TaskStatus(r.to_status),
            worker=r.worker,
            at=r.at,
            note=r.note,
        )
        for r in rows
    ]


# --- statements built once ----------------------------------------------------------------------------

_READY = tasks.alias("ready")  # its own name, so the claim's subquery is not correlated to the UPDATE
_LEASED = tasks.alias("leased")


def _param(name: str, column: str) -> Any:
    return bindparam(name, type_=tasks.c[column].type)


def _is(column: ColumnElement[Any], status: TaskStatus) -> ColumnElement[bool]:
    """``column = 'status'`` with the value written into the SQL, not bound.

    PostgreSQL uses a partial index (``WHERE status = 'ready'``) only when it can prove the
    query's condition implies the index's, which it cannot for a bound parameter once psycopg
    prepares the statement and the planner switches to a generic plan.
    """
    return column == literal_column(f"'{status.value}'")


def _contributed(masklet_id: ColumnElement[Any], worker: ColumnElement[Any]) -> ColumnElement[bool]:
    """Did ``worker`` annotate or refine the masklet? (The same test as the migration's triggers.)"""
    listed = exists().where(contributors.c.masklet_id == masklet_id, contributors.c.worker == worker)
    annotator = exists().where(MaskletRow.id == masklet_id, MaskletRow.annotator == worker)
    return listed | annotator


def _held() -> tuple[ColumnElement[bool], ...]:
    """The lease check every finishing UPDATE carries: this token, still leased, not expired."""
    return (
        tasks.c.id == _param("p_id", "id"),
        tasks.c.lease_token == _param("p_token", "lease_token"),
        _is(tasks.c.status, TaskStatus.LEASED),
        tasks.c.lease_expires_at > _param("p_now", "updated_at"),
    )


@cache
def _claim_statement(verify: bool) -> Update:
    """Ready tasks of a queue, best first, locked as found (others' locks skipped), then leased."""
    candidates = (
        select(_READY.c.id)
        .where(
            _READY.c.queue == _param("p_queue", "queue"),
            _is(_READY.c.status, TaskStatus.READY),
            _READY.c.available_at <= _param("p_now", "available_at"),
        )
        .order_by(_READY.c.priority.desc(), _READY.c.available_at, _READY.c.id)
        .limit(bindparam("p_n", type_=Integer()))
        .with_for_update(skip_locked=True, of=_READY)
    )
    if verify:  # never hand a verifier a masklet they made: enforced here, in the SQL
        candidates = candidates.where(~_contributed(_READY.c.masklet_id, _param("p_worker", "leased_by")))
    # Materialised, the CTE runs exactly once. As ``id IN (subquery)`` PostgreSQL may run the
    # subquery again per row and lease more than ``n`` tasks.
    picked = candidates.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
    return (
        update(tasks)
        # No second status test here: the CTE's row locks already guarantee it, and with one
        # the planner may join through the partial index, scanning every ready task per claim.
        .where(tasks.c.id == picked.c.id)
        .values(
            status=TaskStatus.LEASED.value,
            attempts=tasks.c.attempts + 1,
            lease_token=_param("p_token", "lease_token"),
            leased_by=_param("p_worker", "leased_by"),
            lease_expires_at=_param("p_expires", "lease_expires_at"),
            updated_at=_param("p_now", "updated_at"),
            changed_by=_param("p_worker", "changed_by"),
            change_note="claimed",
        )
        .returning(*_TASK_COLUMNS)
    )


@cache
def _reap_statement(one_queue: bool) -> Update:
    expired = (
        select(_LEASED.c.id)
        .where(_is(_LEASED.c.status, TaskStatus.LEASED), _LEASED.c.lease_expires_at <= _param("p_now", "updated_at"))
        .with_for_update(skip_locked=True, of=_LEASED)
    )
    if one_queue:
        expired = expired.where(_LEASED.c.queue == _param("p_queue", "queue"))
    why = literal("lease expired: ") + tasks.c.leased_by + literal(" did not finish in time")
    return (
        update(tasks)
        .where(tasks.c.id.in_(expired.scalar_subquery()))  # locked as found: still leased
        .values(
            status=_dead_when_out_of_attempts(),
            last_error=why,
            lease_expires_at=None,
            available_at=_param("p_now", "available_at"),
            updated_at=_param("p_now", "updated_at"),
            changed_by=tasks.c.leased_by,
            change_note=why,
        )
        .returning(*_TASK_COLUMNS)
    )


@cache
def _heartbeat_statement() -> Update:
    return (
        update(tasks)
        .where(*_held())
        .values(lease_expires_at=_param("p_expires", "lease_expires_at"), updated_at=_param("p_now", "updated_at"))
    )


@cache
def _finish_statement(variant: str, returning: bool) -> Update:
    values: dict[str, Any] = {
        "lease_expires_at": None,
        "updated_at": _param("p_now", "updated_at"),
        "changed_by": tasks.c.leased_by,
        "change_note": _param("p_note", "change_note"),
    }
    if variant == "done":
        values["status"] = TaskStatus.DONE.value
    elif variant == "done_with_result":
        values |= {"status": TaskStatus.DONE.value, "result": _param("p_result", "result")}
    elif variant == "retry":
        values |= {"status": _dead_when_out_of_attempts(), "last_error": _param("p_error", "last_error")}
    elif variant == "dead":
        values |= {"status": TaskStatus.DEAD.value, "last_error": _param("p_error", "last_error")}
    else:
        raise ValueError(f"unknown outcome {variant!r}")
    statement = update(tasks).where(*_held()).values(values)
    return statement.returning(*_TASK_COLUMNS) if returning else statement


def _dead_when_out_of_attempts() -> ColumnElement[str]:
    return case((tasks.c.attempts >= tasks.c.max_attempts, TaskStatus.DEAD.value), else_=TaskStatus.READY.value)


def _insert_unless_key_exists(conn: Connection) -> Any:
    return _dialect_insert(conn, tasks).on_conflict_do_nothing(index_elements=["queue", "key"])


def _dialect_insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT, which both SQLite and PostgreSQL speak (through their dialects)."""
    return sqlite_insert(table) if conn.dialect.name == "sqlite" else postgres_insert(table)


def _task(row: Row[Any]) -> Task:
    return Task(
        id=row.id,
        queue=Queue(row.queue),
        status=TaskStatus(row.status),
        payload=row.payload,
        key=row.key,
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        available_at=row.available_at,
        created_at=row.created_at,
        masklet_id=row.masklet_id,
        video_id=row.video_id,
        leased_by=row.leased_by,
        lease_expires_at=row.lease_expires_at,
        last_error=row.last_error,
        result=row.result,
    )
