"""``dataengine queue stats|list|dead-letter|requeue|history``: the work queues, for operators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from engine.queues import Task, TaskStatus
from flows.cli.context import fail, open_context, reports_errors
from storage.task_queue import TaskQueue

queue_app = typer.Typer(help="The work queues: depth, tasks, dead letter.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app, name="queue")


@contextmanager
def _task_queue() -> Iterator[TaskQueue]:
    with open_context() as ctx, TaskQueue(ctx.catalog) as queue:
        yield queue


@queue_app.command("stats")
@reports_errors
def stats() -> None:
    """Tasks per queue and status, and how long the oldest claimable task has waited."""
    with _task_queue() as queue:
        rows = queue.stats()
    typer.echo(f"{'queue':<18}{'ready':>7}{'leased':>8}{'done':>8}{'dead':>7}  oldest waiting")
    for s in rows:
        age = "-" if s.oldest_ready_age_s is None else _duration(s.oldest_ready_age_s)
        typer.echo(f"{s.queue.value:<18}{s.ready:>7}{s.leased:>8}{s.done:>8}{s.dead:>7}  {age}")


@queue_app.command("list")
@reports_errors
def list_tasks(
    queue: str = typer.Option(None, "--queue", "-q", help="only this queue"),
    status: str = typer.Option(None, "--status", "-s", help="ready, leased, done or dead"),
    limit: int = typer.Option(50, help="at most this many tasks, oldest first"),
) -> None:
    """Tasks, oldest first: id, queue, status, attempts, holder or last error, payload."""
    with _task_queue() as tq:
        for task in tq.list_tasks(queue, status, limit=limit):
            typer.echo(_line(task))


@queue_app.command("dead-letter")
@reports_errors
def dead_letter(
    queue: str = typer.Option(None, "--queue", "-q", help="only this queue"),
    limit: int = typer.Option(50, help="at most this many tasks"),
) -> None:
    """Tasks out of attempts, with their last error; `queue requeue` gives them another go."""
    with _task_queue() as tq:
        tasks = tq.list_tasks(queue, TaskStatus.DEAD, limit=limit)
    for task in tasks:
        typer.echo(_line(task))
    if not tasks:
        typer.echo("the dead letter is empty")


@queue_app.command("requeue")
@reports_errors
def requeue(
    task_ids: list[int] = typer.Argument(None, help="dead-letter tasks to requeue"),
    all_dead: bool = typer.Option(False, "--all", help="every dead-letter task (of --queue, if given)"),
    queue: str = typer.Option(None, "--queue", "-q", help="with --all: only this queue"),
    by: str = typer.Option("operator", help="who requeues, for the task history"),
) -> None:
    """Give dead-letter tasks a fresh set of attempts (their last error stays in the history)."""
    if bool(task_ids) == all_dead:
        raise fail("name the tasks to requeue, or pass --all (not both)")
    with _task_queue() as tq:
        revived = tq.requeue_dead(queue, by=by) if all_dead else [tq.requeue(i, by=by) for i in task_ids]
    typer.echo(f"requeued {len(revived)} task(s): {' '.join(str(t.id) for t in revived) or '-'}")


@queue_app.command("history")
@reports_errors
def history(task_id: int = typer.Argument(..., help="the task")) -> None:
    """Every transition of one task: when, from, to, who, why."""
    with _task_queue() as tq:
        transitions = tq.history(task_id)
    if not transitions:
        raise fail(f"no history for task {task_id}: no such task")
    for t in transitions:
        source = t.from_status.value if t.from_status else "-"
        typer.echo(f"{t.at:%Y-%m-%d %H:%M:%S}  {source:>6} -> {t.to_status.value:<6}  {t.worker or '-':<16}  {t.note or ''}")


def _line(task: Task) -> str:
    detail = task.leased_by if task.status is TaskStatus.LEASED else (task.last_error or "")
    return (
        f"{task.id}\t{task.queue.value}\t{task.status.value}\t{task.attempts}/{task.max_attempts}"
        f"\t{detail}\t{task.payload}"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
