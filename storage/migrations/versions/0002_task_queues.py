"""task queues: tasks, task history, masklet contributors; history and self-verification triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# --- triggers -----------------------------------------------------------------------------------
# Two promises kept by the database itself, whatever code (or person) writes the rows:
# every change of a task's status is a line of task_history, and nobody verifies a masklet
# they annotated or refined. Frozen here as SQL, as the tables below are.

# A new task, or a change of its status, becomes a line of task_history.
HISTORY_LINE = (
    "INSERT INTO task_history (task_id, queue, from_status, to_status, worker, at, note) "
    "VALUES (NEW.id, NEW.queue, {from_status}, NEW.status, NEW.changed_by, NEW.updated_at, NEW.change_note)"
)

SELF_VERIFICATION = "a verifier may not verify a masklet they annotated or refined"

# Did worker WHO annotate or refine masklet MID?
CONTRIBUTED = (
    "EXISTS (SELECT 1 FROM masklet_contributors c WHERE c.masklet_id = {mid} AND c.worker = {who})"
    " OR EXISTS (SELECT 1 FROM masklets m WHERE m.id = {mid} AND m.annotator = {who})"
)


def _sqlite_refusal(name: str, event: str, table: str, condition: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {condition} "
        f"BEGIN SELECT RAISE(ABORT, '{SELF_VERIFICATION}'); END"
    )


_LEASED_TO_CONTRIBUTOR = "NEW.queue = 'verify' AND NEW.status = 'leased' AND (" + CONTRIBUTED.format(
    mid="NEW.masklet_id", who="NEW.leased_by"
) + ")"
_VERDICT_BY_CONTRIBUTOR = CONTRIBUTED.format(mid="NEW.masklet_id", who="NEW.verifier")

SQLITE_TRIGGERS = {
    "trg_tasks_history_insert": (
        "CREATE TRIGGER trg_tasks_history_insert AFTER INSERT ON tasks "
        f"BEGIN {HISTORY_LINE.format(from_status='NULL')}; END"
    ),
    "trg_tasks_history_update": (
        "CREATE TRIGGER trg_tasks_history_update AFTER UPDATE OF status ON tasks WHEN OLD.status <> NEW.status "
        f"BEGIN {HISTORY_LINE.format(from_status='OLD.status')}; END"
    ),
    "trg_tasks_verify_not_self_insert": _sqlite_refusal(
        "trg_tasks_verify_not_self_insert", "INSERT", "tasks", _LEASED_TO_CONTRIBUTOR
    ),
    "trg_tasks_verify_not_self_update": _sqlite_refusal(
        "trg_tasks_verify_not_self_update", "UPDATE", "tasks", _LEASED_TO_CONTRIBUTOR
    ),
    "trg_verifications_not_self_insert": _sqlite_refusal(
        "trg_verifications_not_self_insert", "INSERT", "verifications", _VERDICT_BY_CONTRIBUTOR
    ),
    "trg_verifications_not_self_update": _sqlite_refusal(
        "trg_verifications_not_self_update", "UPDATE", "verifications", _VERDICT_BY_CONTRIBUTOR
    ),
}

POSTGRES_HISTORY_FUNCTION = f"""
CREATE FUNCTION dataengine_record_task_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {HISTORY_LINE.format(from_status="CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END")};
    RETURN NULL;
END
$$
"""

# Refusing functions, by the column naming the worker who would verify.
POSTGRES_REFUSALS = {
    "dataengine_verifications_not_self": "NEW.verifier",
    "dataengine_tasks_verify_not_self": "NEW.leased_by",
}

POSTGRES_REFUSAL = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {condition} THEN
        RAISE EXCEPTION '{message}: worker %, masklet %', {who}, NEW.masklet_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$
"""

# name: (table, CREATE TRIGGER)
POSTGRES_TRIGGERS = {
    "trg_tasks_history_insert": (
        "tasks",
        "CREATE TRIGGER trg_tasks_history_insert AFTER INSERT ON tasks FOR EACH ROW "
        "EXECUTE FUNCTION dataengine_record_task_transition()",
    ),
    "trg_tasks_history_update": (
        "tasks",
        "CREATE TRIGGER trg_tasks_history_update AFTER UPDATE OF status ON tasks FOR EACH ROW "
        "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION dataengine_record_task_transition()",
    ),
    "trg_tasks_verify_not_self": (
        "tasks",
        "CREATE TRIGGER trg_tasks_verify_not_self BEFORE INSERT OR UPDATE ON tasks FOR EACH ROW "
        "WHEN (NEW.queue = 'verify' AND NEW.status = 'leased') EXECUTE FUNCTION dataengine_tasks_verify_not_self()",
    ),
    "trg_verifications_not_self": (
        "verifications",
        "CREATE TRIGGER trg_verifications_not_self BEFORE INSERT OR UPDATE ON verifications FOR EACH ROW "
        "EXECUTE FUNCTION dataengine_verifications_not_self()",
    ),
}


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=True),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_token', sa.String(length=64), nullable=True),
    sa.Column('leased_by', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', JSON, nullable=True),
    sa.Column('masklet_id', sa.Integer(), nullable=True),
    sa.Column('video_id', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=True),
    sa.Column('change_note', sa.Text(), nullable=True),
    sa.CheckConstraint("queue IN ('annotate_phase_1', 'annotate_phase_2', 'annotate_phase_3', 'verify', 'refine')", name='ck_tasks_queue'),
    sa.CheckConstraint("status IN ('ready', 'leased', 'done', 'dead')", name='ck_tasks_status'),
    sa.CheckConstraint('attempts >= 0 AND max_attempts >= 1', name='ck_tasks_attempts'),
    sa.CheckConstraint("queue <> 'verify' OR masklet_id IS NOT NULL", name='ck_tasks_verify_masklet'),
    sa.CheckConstraint("status <> 'leased' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)", name='ck_tasks_lease'),
    sa.ForeignKeyConstraint(['masklet_id'], ['masklets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('queue', 'key', name='uq_tasks_queue_key')
    )
    op.create_index('ix_tasks_masklet_id', 'tasks', ['masklet_id'], unique=False)
    op.create_index('ix_tasks_video_id', 'tasks', ['video_id'], unique=False)
    op.create_index('ix_tasks_ready', 'tasks', ['queue', sa.text('priority DESC'), 'available_at', 'id'], unique=False, sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))
    op.create_index('ix_tasks_leased', 'tasks', ['queue', 'lease_expires_at'], unique=False, sqlite_where=sa.text("status = 'leased'"), postgresql_where=sa.text("status = 'leased'"))

    op.create_table('task_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_task_history_task_id', 'task_history', ['task_id'], unique=False)
    op.create_index('ix_task_history_queue_at', 'task_history', ['queue', 'at'], unique=False)

    op.create_table('masklet_contributors',
    sa.Column('masklet_id', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('contribution', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("contribution IN ('annotated', 'refined')", name='ck_masklet_contributors_contribution'),
    sa.ForeignKeyConstraint(['masklet_id'], ['masklets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('masklet_id', 'worker', 'contribution')
    )
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    op.drop_table('masklet_contributors')
    op.drop_index('ix_task_history_queue_at', table_name='task_history')
    op.drop_index('ix_task_history_task_id', table_name='task_history')
    op.drop_table('task_history')
    op.drop_index('ix_tasks_leased', table_name='tasks', sqlite_where=sa.text("status = 'leased'"), postgresql_where=sa.text("status = 'leased'"))
    op.drop_index('ix_tasks_ready', table_name='tasks', sqlite_where=sa.text("status = 'ready'"), postgresql_where=sa.text("status = 'ready'"))
    op.drop_index('ix_tasks_video_id', table_name='tasks')
    op.drop_index('ix_tasks_masklet_id', table_name='tasks')
    op.drop_table('tasks')


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_HISTORY_FUNCTION)
        for name, who in POSTGRES_REFUSALS.items():
            condition = CONTRIBUTED.format(mid="NEW.masklet_id", who=who)
            op.execute(POSTGRES_REFUSAL.format(name=name, condition=condition, message=SELF_VERIFICATION, who=who))
        for _, sql in POSTGRES_TRIGGERS.values():
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS.values():
            op.execute(sql)


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, _) in POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in [*POSTGRES_REFUSALS, "dataengine_record_task_transition"]:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
