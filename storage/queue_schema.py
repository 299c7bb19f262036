"""The task queues' tables: tasks, their history, and who contributed to each masklet.

They sit on the same ``Base`` as the rest of the catalog (so ``Base.metadata`` and the
migration-vs-models test cover them) and are created by migration ``0002_task_queues``,
which also installs triggers, so two promises hold whatever code (or person) writes the rows:

- every change of a task's status adds a line to ``task_history`` (who: ``changed_by``,
  why: ``change_note``, when: ``updated_at``, all set by the same UPDATE), at no extra
  round trip for the queue;
- self-verification is refused: a verify task cannot be leased to, and a verdict cannot be
  recorded by, a worker listed in ``masklet_contributors`` for that masklet (or named as its
  ``annotator``).

Triggers are not part of SQLAlchemy's metadata; their SQL lives in the migration only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Json, UtcDateTime, _in, utcnow

QUEUES = ("annotate_phase_1", "annotate_phase_2", "annotate_phase_3", "verify", "refine")
TASK_STATUSES = ("ready", "leased", "done", "dead")
CONTRIBUTIONS = ("annotated", "refined")


class TaskRow(Base):
    """One task in one queue; ``lease_token`` is the current (or last) lease's proof."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("queue", QUEUES), name="ck_tasks_queue"),
        CheckConstraint(_in("status", TASK_STATUSES), name="ck_tasks_status"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="ck_tasks_attempts"),
        # A verify task without a masklet would slip past the self-verification guard.
        CheckConstraint("queue <> 'verify' OR masklet_id IS NOT NULL", name="ck_tasks_verify_masklet"),
        CheckConstraint(
            "status <> 'leased' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="ck_tasks_lease",
        ),
        UniqueConstraint("queue", "key", name="uq_tasks_queue_key"),  # NULL keys never collide
        # The reaper's scan: leases past their expiry.
        Index(
            "ix_tasks_leased",
            "queue",
            "lease_expires_at",
            sqlite_where=text("status = 'leased'"),
            postgresql_where=text("status = 'leased'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    masklet_id: Mapped[int | None] = mapped_column(
        ForeignKey("masklets.id", ondelete="CASCADE"), nullable=True, index=True
    )
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Who made the last change of status, why and when: the history triggers copy them.
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    changed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    change_note: Mapped[str | None] = mapped_column(Text, nullable=True)


# The claim's scan: ready tasks of a queue, highest priority first, then oldest, in index order.
Index(
    "ix_tasks_ready",
    TaskRow.queue,
    TaskRow.priority.desc(),
    TaskRow.available_at,
    TaskRow.id,
    sqlite_where=text("status = 'ready'"),
    postgresql_where=text("status = 'ready'"),
)


class TaskHistoryRow(Base):
    """One transition of a task (``from_status`` NULL: created), for audits and dashboards.

    ``task_id`` is deliberately not a foreign key: an audit log outlives the tasks it
    describes (a deleted video takes its tasks, not their story), and the key's check on
    every transition re-locked the task row and cost half the queue's server time.
    """

    __tablename__ = "task_history"
    __table_args__ = (Index("ix_task_history_queue_at", "queue", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(Integer, index=True)
    queue: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class MaskletContributorRow(Base):
    """A worker who annotated or refined a masklet, and so may never verify it."""

    __tablename__ = "masklet_contributors"
    __table_args__ = (CheckConstraint(_in("contribution", CONTRIBUTIONS), name="ck_masklet_contributors_contribution"),)

    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id", ondelete="CASCADE"), primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    contribution: Mapped[str] = mapped_column(String(16), primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
