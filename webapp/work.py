"""The queue work of the web app, each request one transaction: who asks, may they, do it.

Every function here opens one write (or read) transaction on the catalog and, inside it,
first authenticates the session token (:func:`webapp.auth.authenticate`), then checks that
the user may do what they ask (the task is leased to them, the video is one they work on),
then makes the change. So a lease lost, a user disabled or a session revoked a moment earlier
refuses the change itself, not just a check before it.

The lease token never leaves the server: the page names a task by id, and the task's
current lease token is read (row-locked on PostgreSQL; SQLite's write transactions hold the
database lock) in the same transaction that uses it.

Submissions and verdicts go through :meth:`storage.task_queue.TaskQueue.submit_masklet` and
``route_verdict`` like every worker's, with an effect that checks the session again and writes
the masklet and its events inside the queue's own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.orm import Session

from engine.annotation import AnnotationEvent
from engine.errors import AlreadyVerifiedError, LeaseLostError, NotFoundError, PermissionDeniedError, QueueError
from engine.masklets import Masklet
from engine.queues import IN_VERIFICATION, PRODUCING_QUEUES, Lease, Queue, Task, TaskStatus, Verdict, validate_lease_seconds
from storage import masklets as masklet_queries
from storage import tasks as repo
from storage.annotation_events import events_table, submit_payload
from storage.annotation_store import DRAFT
from storage.catalog import Catalog
from storage.schema import MaskletRow
from storage.task_queue import TaskQueue
from webapp.auth import User, authenticate

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class HeldTask:
    """A task leased to the requesting user, as read inside the request's transaction."""

    task: Task
    token: str  # the current lease token: server-side only
    expires_at: datetime


@dataclass(frozen=True)
class Submitted:
    masklet_id: int
    verify_task_id: int


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    verification_id: int
    next_task_id: int | None


class Work:
    """The web app's transactions on one catalog."""

    def __init__(self, catalog: Catalog, clock: Clock) -> None:
        self.catalog = catalog
        self.clock = clock
        self.queue = TaskQueue(catalog, clock=clock)

    def close(self) -> None:
        self.queue.close()

    # --- who is asking -------------------------------------------------------------------------

    def user(self, token: str | None) -> User:
        """The user of a session token (read-only requests)."""
        with self.catalog.read() as session:
            return authenticate(session, token, self.clock())

    def held(self, token: str | None, task_id: int) -> tuple[User, HeldTask]:
        """The user and their task, for reads (opening a workspace, the page's state)."""
        with self.catalog.read() as session:
            user = authenticate(session, token, self.clock())
            return user, held_task(session.connection(), task_id, user, self.clock(), lock=False)

    def leased_to(self, token: str | None) -> tuple[User, list[HeldTask]]:
        """The user and every task they hold now (to resume work after a reload)."""
        with self.catalog.read() as session:
            user = authenticate(session, token, self.clock())
            now = self.clock()
            rows = session.connection().execute(
                select(repo.tasks.c.id).where(
                    repo.tasks.c.leased_by == user.name,
                    repo.tasks.c.status == TaskStatus.LEASED.value,
                    repo.tasks.c.lease_expires_at > now,
                ).order_by(repo.tasks.c.id)
            )
            conn = session.connection()
            return user, [held_task(conn, task_id, user, now, lock=False) for (task_id,) in rows]

    def video_reader(self, token: str | None, video_id: str) -> User:
        """The user, if they may see ``video_id``'s frames: admins always, others while they hold a task on it."""
        with self.catalog.read() as session:
            user = authenticate(session, token, self.clock())
            if user.is_admin:
                return user
            holding = session.connection().execute(
                select(func.count()).select_from(repo.tasks).where(
                    repo.tasks.c.video_id == video_id,
                    repo.tasks.c.leased_by == user.name,
                    repo.tasks.c.status == TaskStatus.LEASED.value,
                    repo.tasks.c.lease_expires_at > self.clock(),
                )
            ).scalar_one()
            if not holding:
                raise PermissionDeniedError(f"video {video_id!r} is not one you are working on")
            return user

    # --- leases ----------------------------------------------------------------------------------

    def claim(self, token: str | None, queue: Queue | None, lease_s: float) -> tuple[User, HeldTask | None]:
        """The user's next task: one they already hold in the queue, else a newly leased one.

        Without ``queue``, the first of the user's queues with work ready. None: nothing is
        ready for this user (a verifier is never offered their own masklets).
        """
        lease_s = validate_lease_seconds(lease_s)
        with self.catalog.write() as session:
            now = self.clock()
            user = authenticate(session, token, now)
            queues = user.queues if queue is None else (queue,)
            if queue is not None and not user.may_work(queue):
                raise PermissionDeniedError(f"a {user.role.value} does not work the {queue.value} queue")
            conn = session.connection()
            for chosen in queues:
                kept = _held_in(conn, chosen, user, now)
                if kept is not None:
                    return user, kept
            for chosen in queues:
                repo.reap_expired(conn, now, chosen)
                leases = repo.lease_ready(conn, chosen, user.name, now, now + timedelta(seconds=lease_s), 1)
                if leases:
                    return user, _from_lease(leases[0])
            return user, None

    def heartbeat(self, token: str | None, task_id: int, lease_s: float) -> datetime:
        """Extend the user's lease on ``task_id``; LeaseLostError when it is gone."""
        lease_s = validate_lease_seconds(lease_s)
        with self.catalog.write() as session:
            now = self.clock()
            user = authenticate(session, token, now)
            conn = session.connection()
            held = held_task(conn, task_id, user, now)
            expires = now + timedelta(seconds=lease_s)
            repo.extend_lease(conn, task_id, held.token, now, expires)
            return expires

    # --- annotation events -------------------------------------------------------------------------

    def record(self, token: str | None, task_id: int, events: Sequence[AnnotationEvent]) -> list[int]:
        """Store the events of one action on the user's task; their ids (kept to attach them at submission)."""
        with self.catalog.write() as session:
            now = self.clock()
            user = authenticate(session, token, now)
            conn = session.connection()
            held_task(conn, task_id, user, now)
            return [_insert_event(conn, _own(e, user, task_id), None) for e in events]

    def mark_undone(self, token: str | None, task_id: int, event_id: int) -> None:
        """Note on an event that it was undone (it still happened, and still took its time)."""
        with self.catalog.write() as session:
            now = self.clock()
            user = authenticate(session, token, now)
            conn = session.connection()
            held_task(conn, task_id, user, now)
            payload = conn.execute(
                select(events_table.c.payload).where(
                    events_table.c.id == event_id, events_table.c.task_id == task_id, events_table.c.annotator == user.name
                )
            ).scalar_one_or_none()
            if payload is None:
                raise NotFoundError(f"no event {event_id} of yours on task {task_id}")
            conn.execute(update(events_table).where(events_table.c.id == event_id).values(payload={**payload, "undone": True}))

    # --- finishing tasks -------------------------------------------------------------------------------

    def submit(
        self,
        token: str | None,
        task_id: int,
        masklet: Masklet,
        *,
        phase: int,
        model_version_id: int | None,
        edited_frames: Sequence[int],
        event_ids: Sequence[int],
        submit_event: AnnotationEvent,
    ) -> Submitted:
        """Store the masklet, attach its events and send it to verification: one transaction.

        :meth:`TaskQueue.submit_masklet` finishes the task under its lease token, records the
        user as a contributor (so they can never verify it), marks the masklet in
        verification and enqueues its verify task; the effect, in the same transaction,
        checks the session again and writes the masklet and its events.
        """
        user, held = self.held(token, task_id)
        if held.task.queue not in PRODUCING_QUEUES:
            raise QueueError(f"task {task_id} is a {held.task.queue.value} task: it takes a verdict, not a masklet")
        written: list[int] = []

        def effect(session: Session, task: Task) -> int:
            _still(session, token, user, task, self.clock())
            masklet_id = masklet_queries.add_masklet(
                session,
                masklet,
                status=DRAFT,  # the queue makes it in_verification in the same transaction
                phase=phase,
                annotator=user.name,
                model_version_id=model_version_id,
                edited_frames=edited_frames,
            )
            conn = session.connection()
            _attach(conn, event_ids, masklet_id, task_id, user)
            _insert_event(conn, _own(submit_event, user, task_id), masklet_id)
            written[:] = [masklet_id]
            return masklet_id

        routed = self.queue.submit_masklet(task_id, held.token, result={"via": "web"}, effect=effect)
        assert routed.next_task is not None
        return Submitted(written[0], routed.next_task.id)

    def judge(
        self,
        token: str | None,
        task_id: int,
        verdict: Verdict | str,
        *,
        reason: str | None,
        frames: Sequence[int],
        verdict_event: AnnotationEvent,
    ) -> Judged:
        """Record the user's verdict on the masklet of their verify task, and route it: one transaction.

        :meth:`TaskQueue.route_verdict` records it (the database refuses a verdict from anyone
        who annotated or refined the masklet) and routes the masklet; the effect checks the
        session again and stores the verdict's event. A masklet no longer waiting for a
        verdict ends its stale task in the dead letter and raises AlreadyVerifiedError.
        """
        user, held = self.held(token, task_id)
        task = held.task
        if task.queue is not Queue.VERIFY or task.masklet_id is None:
            raise QueueError(f"task {task_id} is a {task.queue.value} task; only verify tasks take a verdict")
        with self.catalog.read() as session:
            status = session.scalar(select(MaskletRow.status).where(MaskletRow.id == task.masklet_id))
        if status is None:
            raise NotFoundError(f"no masklet {task.masklet_id} in the catalog")
        if status != IN_VERIFICATION:
            stale = f"masklet {task.masklet_id} is {status}, not {IN_VERIFICATION}: it was verified already"
            self.queue.fail(task_id, held.token, stale, retry=False)
            raise AlreadyVerifiedError(stale + "; this verify task is closed")

        def effect(session: Session, finished: Task) -> None:
            _still(session, token, user, finished, self.clock())
            _insert_event(session.connection(), _own(verdict_event, user, task_id), task.masklet_id)

        routed = self.queue.route_verdict(task_id, held.token, verdict, reason=reason, frames=list(frames), effect=effect)
        assert routed.verification_id is not None and routed.route.verdict is not None
        return Judged(routed.route.verdict, routed.verification_id, None if routed.next_task is None else routed.next_task.id)


# --- helpers, in the caller's transaction ----------------------------------------------------------


def held_task(conn: Connection, task_id: int, user: User, now: datetime, *, lock: bool = True) -> HeldTask:
    """``task_id`` if it is leased to ``user`` right now; PermissionDenied or LeaseLost otherwise.

    Admins too act only on their own leases: being allowed everything is not holding a task.
    """
    query = select(repo.tasks).where(repo.tasks.c.id == task_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"no task {task_id}")
    if row.leased_by != user.name:
        raise PermissionDeniedError(f"task {task_id} is not leased to you")
    if row.status != TaskStatus.LEASED.value or row.lease_expires_at is None or row.lease_expires_at <= now:
        raise LeaseLostError(repo.why_lost(conn, task_id, row.lease_token or ""))
    return HeldTask(repo.get_task(conn, task_id), row.lease_token, row.lease_expires_at)


def _held_in(conn: Connection, queue: Queue, user: User, now: datetime) -> HeldTask | None:
    task_id = conn.execute(
        select(repo.tasks.c.id)
        .where(
            repo.tasks.c.queue == queue.value,
            repo.tasks.c.leased_by == user.name,
            repo.tasks.c.status == TaskStatus.LEASED.value,
            repo.tasks.c.lease_expires_at > now,
        )
        .order_by(repo.tasks.c.id)
        .limit(1)
    ).scalar_one_or_none()
    return None if task_id is None else held_task(conn, task_id, user, now)


def _from_lease(lease: Lease) -> HeldTask:
    return HeldTask(lease.task, lease.token, lease.expires_at)


def _still(session: Session, token: str | None, user: User, task: Task, now: datetime) -> None:
    """Inside the finishing transaction: the session is still live and the task was this user's."""
    if authenticate(session, token, now).id != user.id or task.leased_by != user.name:
        raise PermissionDeniedError(f"task {task.id} is not leased to you")


def _own(event: AnnotationEvent, user: User, task_id: int) -> AnnotationEvent:
    """The event as the server vouches for it: this user, this task, whatever the caller built."""
    if event.annotator != user.name or event.task_id != task_id:
        raise PermissionDeniedError("an annotation event must be the requesting user's, on their task")
    return event


def _insert_event(conn: Connection, event: AnnotationEvent, masklet_id: int | None) -> int:
    values: dict[str, Any] = {
        "task_id": event.task_id,
        "masklet_id": masklet_id,
        "video_id": event.video_id,
        "annotator": event.annotator,
        "phase": event.phase,
        "frame_index": event.frame_index,
        "action": event.action.value,
        "payload": dict(event.payload),
        "started_at": event.started_at,
        "duration_s": event.duration_s,
    }
    return conn.execute(insert(events_table).values(values).returning(events_table.c.id)).scalar_one()


def _attach(conn: Connection, event_ids: Sequence[int], masklet_id: int, task_id: int, user: User) -> None:
    """The task's events become the masklet's (only this user's, on this task, not attached yet)."""
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        conn.execute(
            update(events_table)
            .where(
                and_(
                    events_table.c.id.in_(ids[start : start + 500]),
                    events_table.c.task_id == task_id,
                    events_table.c.annotator == user.name,
                    events_table.c.masklet_id.is_(None),
                )
            )
            .values(masklet_id=masklet_id)
        )


def refinement_round(session: Session, masklet_id: int) -> int:
    """How many refinements produced ``masklet_id`` (0: annotated or generated)."""
    return int(submit_payload(session, masklet_id).get("round") or 0)
