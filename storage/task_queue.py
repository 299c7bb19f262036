"""The durable task queues, on the catalog (SQLite or PostgreSQL).

Delivery is at least once, with leases, as in SQS, pgmq, River or Oban: ``claim`` hands a
worker ready tasks with a lease token and an expiry; ``complete`` and ``fail`` take effect
only while that token is still the task's current, unexpired lease, which the UPDATE itself
checks in its WHERE clause, so a worker that lost its lease (paused, partitioned, too slow)
can never finish a task someone else has since claimed. Whatever completing a task causes
(the next queue's task, a verdict, a masklet's status, a caller's own rows) is written in
the same transaction as the completion, so its effect happens exactly once.

Claims take ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers never queue
behind each other's row locks. On SQLite every write transaction takes the database lock up
front (``BEGIN IMMEDIATE``) with SQLite's busy handler switched off: that handler sleeps in
growing steps while the process that just committed takes the lock straight back, which
starves the others, so waiting here is our own short, jittered, bounded retry instead.

Leases and backoffs compare timestamps from the clock passed in (the workers' clock, UTC),
so workers on different machines need synchronised clocks (NTP), as with any lease. Skew
can only end a lease early, which costs a re-delivery, never a double completion: that is
the token's job.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from engine.errors import CatalogError, LeaseLostError, QueueError
from engine.queues import (
    ANNOTATE_QUEUES,
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    Contribution,
    Lease,
    NewTask,
    Queue,
    QueueStats,
    Routed,
    Task,
    TaskStatus,
    Transition,
    Verdict,
    after_submission,
    error_note,
    parse_queue,
    parse_status,
    route_verdict,
    validate_claim_count,
    validate_lease_seconds,
    validate_payload,
    validate_worker,
)
from storage import tasks as repo
from storage.catalog import SQLITE_BUSY_TIMEOUT_MS, Catalog
from storage.schema import utcnow

T = TypeVar("T")
Clock = Callable[[], datetime]
# A caller's writes, run in the same transaction as the task's completion: an ORM session joined
# to that transaction, and the task as finished. Its return value is ignored, except by
# ``submit_masklet``, which takes an int as the id of the masklet the effect wrote.
Effect = Callable[[Session, Task], Any]

RETRY_FOR_S = 30.0  # how long a transaction keeps retrying through a held lock or a lost connection
REAP_EVERY_S = 1.0  # how often a claimer also returns expired leases (bounds re-delivery delay)
SQLITE_WAIT_S = (0.0005, 0.02)  # first and longest pause between two tries for SQLite's lock
POSTGRES_WAIT_S = (0.05, 1.0)  # the same for reconnecting to PostgreSQL
SQLITE_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
DEFAULT_BACKOFF = Backoff()


class TaskQueue:
    """The task queues of one catalog, for workers (claim, heartbeat, complete, fail) and operators.

    Each public method is one transaction, retried from the start while SQLite's lock is held
    or PostgreSQL's connection was lost; where every statement of a method is correct alone
    (a claim, a heartbeat, a complete with no effect), PostgreSQL commits each by itself.
    :mod:`storage.tasks` has the same steps taking a connection, for callers who need a task
    enqueued inside a transaction of their own. Safe to share between threads; make one per
    process (connections do not survive a fork), and ``close()`` it when done.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Clock = utcnow,  # tests pass a fake one to expire leases without sleeping
        rng: random.Random | None = None,  # jitter of backoffs and lock waits
        backoff: Backoff = DEFAULT_BACKOFF,
        retry_for_s: float = RETRY_FOR_S,
        reap_every_s: float = REAP_EVERY_S,
    ) -> None:
        self.catalog = catalog
        self.engine = _queue_engine(catalog)
        self._one_statement_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._held = threading.local()  # each thread's autocommit connection, kept between calls
        self.clock = clock
        self.rng = rng or random.Random()
        self.backoff = backoff
        self.retry_for_s = retry_for_s
        self.reap_every_s = reap_every_s
        self._reaped_at: dict[Queue, datetime] = {}

    # --- producers ---------------------------------------------------------------------------

    def enqueue(
        self,
        queue: Queue | str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        masklet_id: int | None = None,
        video_id: str | None = None,
        delay_s: float = 0.0,
        by: str | None = None,
    ) -> Task:
        """Add a task, or return the existing one if ``key`` was enqueued in ``queue`` before."""
        spec = NewTask(parse_queue(queue), payload or {}, key, priority, max_attempts, masklet_id, video_id, delay_s)
        return self._write(lambda conn, _: repo.add_task(conn, spec, now=self.clock(), by=by))

    def enqueue_many(self, specs: Sequence[NewTask], *, by: str | None = None) -> list[Task]:
        """Add many tasks in one transaction (all or none)."""
        return self._write(lambda conn, _: [repo.add_task(conn, s, now=self.clock(), by=by) for s in specs])

    # --- workers -----------------------------------------------------------------------------

    def claim(self, queue: Queue | str, worker: str, lease_seconds: float, n: int = 1) -> list[Lease]:
        """Lease up to ``n`` ready tasks of ``queue`` to ``worker``, highest priority and oldest first.

        Every ``reap_every_s`` a claim first returns the queue's expired leases to ready (or
        to the dead letter, out of attempts). On the verify queue, tasks whose masklet
        ``worker`` annotated or refined are never handed to them.
        """
        queue = parse_queue(queue)
        validate_worker(worker)
        lease_seconds = validate_lease_seconds(lease_seconds)
        validate_claim_count(n)

        def work(conn: Connection, _: bool) -> list[Lease]:
            now = self.clock()
            if self._reap_due(queue, now):
                repo.reap_expired(conn, now, queue)
                self._reaped_at[queue] = now
            return repo.lease_ready(conn, queue, worker, now, now + timedelta(seconds=lease_seconds), n)

        return self._write(work, one_statement_each=True)

    def heartbeat(self, task_id: int, token: str, lease_seconds: float) -> datetime:
        """Extend a lease still held; returns its new expiry, or raises LeaseLostError."""
        lease_seconds = validate_lease_seconds(lease_seconds)

        def work(conn: Connection, _: bool) -> datetime:
            now = self.clock()
            expires = now + timedelta(seconds=lease_seconds)
            repo.extend_lease(conn, task_id, token, now, expires)
            return expires

        return self._write(work, one_statement_each=True)

    def complete(
        self,
        task: Task | int,
        token: str,
        result: Mapping[str, Any] | None = None,
        *,
        effect: Effect | None = None,
    ) -> Task:
        """Finish a task whose lease the caller holds; ``effect`` writes in the same transaction.

        ``task`` is the claimed Task (cheapest: nothing is read back) or its id. The effect
        runs only if the completion is recorded, and is rolled back with it, so it happens
        exactly once however often workers die or retry.
        """
        stored = None if result is None else validate_payload(result)
        task_id = task.id if isinstance(task, Task) else task

        def work(conn: Connection, retried: bool) -> Task:
            now = self.clock()
            if isinstance(task, Task):
                done = repo.complete_known(conn, task, token, now, note="completed", result=stored)
            else:
                done = repo.finish(conn, task_id, token, now, "done", note="completed", result=stored)
            if done is None:
                return _earlier_try(conn, task_id, token, retried, (TaskStatus.DONE,))
            if effect is not None:
                _run_effect(conn, effect, done)
            return done

        return self._write(work, one_statement_each=effect is None)

    def fail(self, task_id: int, token: str, error: str, *, retry: bool = True) -> Task:
        """Give a task back after a failed attempt: retried after a backoff, or dead letter.

        A task out of attempts (or failed with ``retry=False``, an error no retry can fix)
        goes to the dead letter with ``error`` as its last error.
        """
        note = error_note(str(error))

        def work(conn: Connection, retried: bool) -> Task:
            now = self.clock()
            outcome = "retry" if retry else "dead"
            task = repo.finish(conn, task_id, token, now, outcome, note=f"failed: {note}", error=note)
            if task is None:
                return _earlier_try(conn, task_id, token, retried, (TaskStatus.READY, TaskStatus.DEAD))
            if task.status is TaskStatus.READY:
                task = repo.hold_back(conn, task, now + timedelta(seconds=self.backoff.delay(task.attempts, self.rng)))
            return task

        return self._write(work)

    def submit_masklet(
        self,
        task_id: int,
        token: str,
        masklet_id: int | None = None,
        result: Mapping[str, Any] | None = None,
        *,
        effect: Effect | None = None,
    ) -> Routed:
        """Finish an annotation or refine task with its masklet, which goes to verification.

        In one transaction: the task is done, ``effect`` runs (typically: write the masklet
        and its annotation events, returning the masklet's id), the lease holder is recorded
        as a contributor of the masklet (so they can never verify it), the masklet is marked
        in verification and a verify task is enqueued for it. If anything fails, the effect
        included, nothing is written and the task is still the caller's, leased, to fail or
        retry; if the lease was lost, the effect does not run at all. The masklet is
        ``masklet_id``, else the id the effect returned, else the task's own.
        """
        extra = validate_payload(result)

        def work(conn: Connection, retried: bool) -> Routed:
            now = self.clock()
            task = repo.finish(conn, task_id, token, now, "done", note="masklet submitted")
            if task is None:
                task = _earlier_try(conn, task_id, token, retried, (TaskStatus.DONE,))
                return Routed(after_submission(task.queue), repo.task_by_key(conn, Queue.VERIFY, _next_key(task_id)))
            route = after_submission(task.queue)
            written = _run_effect(conn, effect, task) if effect is not None else None
            masklet = _submitted_masklet(task, masklet_id if masklet_id is not None else _written_id(written, task))
            contribution = Contribution.ANNOTATED if task.queue in ANNOTATE_QUEUES else Contribution.REFINED
            repo.add_contributor(conn, masklet, str(task.leased_by), contribution, task.id, now)
            if task.masklet_id is not None and task.masklet_id != masklet:
                repo.inherit_contributors(conn, task.masklet_id, masklet, now)
            repo.set_masklet_status(conn, masklet, route.masklet_status)
            verify = repo.add_task(conn, _follow_up(task, Queue.VERIFY, {"masklet_id": masklet}, masklet), now=now)
            task = repo.set_result(conn, task, {**extra, "masklet_id": masklet, "next_task_id": verify.id})
            return Routed(route, verify)

        return self._write(work)

    def route_verdict(
        self,
        task_id: int,
        token: str,
        verdict: Verdict | str,
        *,
        reason: str | None = None,
        frames: Sequence[int] | None = None,
        effect: Effect | None = None,
    ) -> Routed:
        """Finish a verify task with the lease holder's verdict, and send the masklet on.

        In one transaction: the verdict is recorded in ``verifications`` (the database refuses
        it from a contributor of the masklet), the masklet takes its new status, an
        unsatisfactory one gets a refine task carrying the reason and frames, and ``effect``
        runs (typically: the verifier's annotation events). All of it, or none.
        """
        route = route_verdict(verdict, reason, list(frames or []))

        def work(conn: Connection, retried: bool) -> Routed:
            now = self.clock()
            task = repo.finish(conn, task_id, token, now, "done", note=f"verdict {route.masklet_status}")
            if task is None:
                _earlier_try(conn, task_id, token, retried, (TaskStatus.DONE,))
                return Routed(route, repo.task_by_key(conn, Queue.REFINE, _next_key(task_id)))
            if task.queue is not Queue.VERIFY or task.masklet_id is None:
                raise QueueError(f"task {task_id} is a {task.queue.value} task; only verify tasks take a verdict")
            verifier = str(task.leased_by)
            verification = repo.add_verification(conn, task.masklet_id, verifier, route, reason, frames, now)
            repo.set_masklet_status(conn, task.masklet_id, route.masklet_status)
            follow_up = None
            if route.next_queue is not None:
                payload = {**route.payload, "masklet_id": task.masklet_id}
                follow_up = repo.add_task(conn, _follow_up(task, route.next_queue, payload, task.masklet_id), now=now)
            outcome = {"verdict": route.masklet_status, "reason": reason, "verification_id": verification}
            repo.set_result(conn, task, {**outcome, "next_task_id": follow_up.id if follow_up else None})
            if effect is not None:
                _run_effect(conn, effect, task)
            return Routed(route, follow_up, verification)

        return self._write(work)

    # --- operators ---------------------------------------------------------------------------

    def reap(self, queue: Queue | str | None = None) -> int:
        """Return every expired lease (of ``queue``, or all) to ready or the dead letter."""
        chosen = None if queue is None else parse_queue(queue)
        return self._write(lambda conn, _: repo.reap_expired(conn, self.clock(), chosen))

    def requeue(self, task_id: int, *, by: str = "operator") -> Task:
        """Give a dead-letter task a fresh set of attempts, ready now (its last error is kept)."""

        def work(conn: Connection, _: bool) -> Task:
            revived = repo.revive(conn, repo.tasks.c.id == task_id, self.clock(), by)
            if not revived:
                status = repo.get_task(conn, task_id).status.value
                raise QueueError(f"task {task_id} is {status}, not in the dead letter: only dead tasks are requeued")
            return revived[0]

        return self._write(work)

    def requeue_dead(self, queue: Queue | str | None = None, *, by: str = "operator") -> list[Task]:
        """Requeue the whole dead letter (of ``queue``, or of every queue)."""
        where = repo.tasks.c.status == TaskStatus.DEAD.value
        if queue is not None:
            where = where & (repo.tasks.c.queue == parse_queue(queue).value)
        return self._write(lambda conn, _: repo.revive(conn, where, self.clock(), by))

    def stats(self) -> list[QueueStats]:
        """Depth of every queue by status, and the age of its oldest task waiting to be claimed."""
        return self._read(lambda conn: repo.queue_stats(conn, self.clock()))

    def list_tasks(
        self, queue: Queue | str | None = None, status: TaskStatus | str | None = None, *, limit: int = 50
    ) -> list[Task]:
        """Tasks, oldest first, optionally of one queue and one status."""
        chosen_queue = None if queue is None else parse_queue(queue)
        chosen_status = None if status is None else parse_status(status)
        return self._read(lambda conn: repo.list_tasks(conn, chosen_queue, chosen_status, limit))

    def get(self, task_id: int) -> Task:
        return self._read(lambda conn: repo.get_task(conn, task_id))

    def history(self, task_id: int) -> list[Transition]:
        """Every transition of a task, in order."""
        return self._read(lambda conn: repo.task_history(conn, task_id))

    # --- transactions --------------------------------------------------------------------------

    def _reap_due(self, queue: Queue, now: datetime) -> bool:
        last = self._reaped_at.get(queue)
        return last is None or not 0 <= (now - last).total_seconds() < self.reap_every_s

    def _held_connection(self) -> Connection:
        """This thread's autocommit connection, opened on first use and after a failure.

        Keeping it saves a pool checkout and checkin per claim (resetting its autocommit
        each time), which cost more client CPU than the claim's own statement.
        """
        conn: Connection | None = getattr(self._held, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._held.conn = self._one_statement_engine.connect()
        return conn

    def _drop_held_connection(self) -> None:
        conn: Connection | None = getattr(self._held, "conn", None)
        self._held.conn = None
        if conn is not None:
            try:
                conn.close()
            except DBAPIError:
                pass  # already broken: the pool discards it

    def close(self) -> None:
        """Close the queue's own PostgreSQL connections (the catalog's stay open)."""
        self._drop_held_connection()
        if self.engine is not self.catalog.engine:
            self.engine.dispose()

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _write(self, work: Callable[[Connection, bool], T], *, one_statement_each: bool = False) -> T:
        """Run ``work`` in one write transaction, from the start again while it could not commit.

        ``work`` is told whether an earlier try failed, since a connection lost during COMMIT
        leaves unknown whether that try took effect. ``one_statement_each``: every statement
        of ``work`` is correct on its own (a claim, a complete with no effect), so on
        PostgreSQL each may commit by itself, saving the BEGIN and COMMIT round trips.
        """

        def attempt(retried: bool) -> T:
            with self._transaction(one_statement_each) as conn:
                return work(conn, retried)

        return self._retrying(attempt)

    def _read(self, work: Callable[[Connection], T]) -> T:
        def attempt(_: bool) -> T:
            with self.engine.connect() as conn:
                return work(conn)

        return self._retrying(attempt)

    @contextmanager
    def _transaction(self, one_statement_each: bool) -> Iterator[Connection]:
        if self.catalog.is_sqlite:
            with _sqlite_write_connection(self.catalog) as conn:
                yield conn
        elif one_statement_each:
            yield self._held_connection()
        else:
            with self.engine.begin() as conn:
                yield conn

    def _retrying(self, attempt: Callable[[bool], T]) -> T:
        deadline = time.monotonic() + self.retry_for_s
        failures = 0
        while True:
            try:
                return attempt(failures > 0)
            except DBAPIError as exc:
                self._drop_held_connection()
                transient = _sqlite_busy(exc) if self.catalog.is_sqlite else _connection_lost(exc)
                if not transient:
                    if isinstance(exc, OperationalError):
                        raise CatalogError(f"catalog {self.catalog.display_url()}: {_first_line(exc)}") from exc
                    raise
                if time.monotonic() >= deadline:
                    raise CatalogError(
                        f"catalog {self.catalog.display_url()} still unavailable after {self.retry_for_s:.0f} s "
                        f"({_first_line(exc)}): check the server, or what holds the database lock"
                    ) from exc
                failures += 1
                time.sleep(self._pause(failures))

    def _pause(self, failures: int) -> float:
        """Full jitter: waiters wake at random moments, so none is always last in line."""
        first, longest = SQLITE_WAIT_S if self.catalog.is_sqlite else POSTGRES_WAIT_S
        return self.rng.uniform(0, min(longest, first * 2 ** min(failures, 20)))


# --- helpers -----------------------------------------------------------------------------------


def _queue_engine(catalog: Catalog) -> Engine:
    """The engine the queue runs on: the catalog's, but on PostgreSQL without a ping per checkout.

    The catalog pings each connection before lending it (a restarted server costs a
    reconnect, not an error). The queue retries any transaction whose connection was lost
    anyway, so that ping would only add a round trip to every claim and complete.
    """
    if catalog.is_sqlite:
        return catalog.engine
    return create_engine(catalog.url, pool_size=2, max_overflow=8, connect_args={"connect_timeout": 10})


def _earlier_try(conn: Connection, task_id: int, token: str, retried: bool, statuses: tuple[TaskStatus, ...]) -> Task:
    """The task as an earlier try of this call left it, when that try (cut off at COMMIT) took effect.

    Only a retry may find its own work done; anyone else finding the lease gone has lost it.
    """
    if retried and (task := repo.finished_by(conn, task_id, token, statuses)) is not None:
        return task
    raise LeaseLostError(repo.why_lost(conn, task_id, token))


def _run_effect(conn: Connection, effect: Effect, task: Task) -> Any:
    """The caller's effect, in an ORM session joined to the completion's transaction; what it returned.

    The session never commits or rolls back itself: the completion's transaction does, so an
    exception from the effect undoes the completion too.
    """
    with Session(bind=conn, expire_on_commit=False) as session:
        written = effect(session, task)
        session.flush()
        return written


def _written_id(written: Any, task: Task) -> int | None:
    """The masklet id a submission's effect returned (None: it names none)."""
    if written is None:
        return None
    if isinstance(written, bool) or not isinstance(written, int):
        raise QueueError(
            f"task {task.id}: the submission's effect returned {written!r}; it must return the id "
            "of the masklet it wrote (an int), or None"
        )
    return written


def _submitted_masklet(task: Task, masklet_id: int | None) -> int:
    masklet = masklet_id if masklet_id is not None else task.masklet_id
    if masklet is None:
        raise QueueError(f"task {task.id} names no masklet: submit it with the masklet_id it produced")
    return masklet


def _next_key(task_id: int) -> str:
    """The idempotency key of the task that finishing ``task_id`` creates: one per task."""
    return f"after-task-{task_id}"


def _follow_up(task: Task, queue: Queue, payload: Mapping[str, Any], masklet_id: int) -> NewTask:
    return NewTask(
        queue,
        payload,
        key=_next_key(task.id),
        priority=task.priority,
        max_attempts=task.max_attempts,
        masklet_id=masklet_id,
        video_id=task.video_id,
    )


@contextmanager
def _sqlite_write_connection(catalog: Catalog) -> Iterator[Connection]:
    """A BEGIN IMMEDIATE transaction whose connection fails at once, instead of waiting, on a held lock.

    The catalog's connections wait in SQLite's busy handler; this one turns it off for the
    transaction so that :meth:`TaskQueue._retrying` waits fairly, and restores it after.
    """
    with catalog.engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        try:
            connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                yield connection
        finally:
            driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]


def _sqlite_busy(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in SQLITE_BUSY_CODES
    return "database is locked" in str(exc.orig)


def _connection_lost(exc: DBAPIError) -> bool:
    """A PostgreSQL error that a new connection and a second try can cure."""
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:
        return isinstance(exc, OperationalError)  # could not connect (server down, restarting)
    return state[:2] in ("08", "40") or state in ("57P01", "57P02", "57P03")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
