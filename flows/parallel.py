"""Parallel work through Prefect's task runners: threads by default, processes or a Dask cluster when asked.

Simulated people work the queues in parallel. Each Prefect task claims and finishes one queue
task (one masklet), so a retry or a timeout concerns one masklet; a flow submits as many as
the queue has claimable tasks, in rounds, until a round finds nothing left to claim. Which
runner executes them is a flow parameter:

- ``threads``: :class:`prefect.task_runners.ThreadPoolTaskRunner` with one thread per worker;
- ``processes``: :class:`prefect.task_runners.ProcessPoolTaskRunner` with one process per
  worker, for work that holds the GIL (pure-Python steps of the simulated people, or several
  models on a many-core machine); each process loads its own model, so it costs a model's
  memory per worker and a few seconds' start. Like Dask it needs a Prefect server;
- ``dask``: ``prefect_dask.DaskTaskRunner`` on the scheduler at ``dask_address`` (a cluster
  spanning machines), or on a temporary local cluster of one single-threaded process per
  worker. Dask's workers report their task runs to Prefect's API by URL, so this needs a
  Prefect server (``PREFECT_API_URL``), not the temporary API a lone process starts for itself.

Either way a task receives plain parameters (URLs, names, numbers) and opens what it needs in
its own process (:mod:`flows.resources`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prefect import Task
from prefect.futures import as_completed
from prefect.settings import get_current_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from engine.errors import ConfigError
from flows.progress import Progress

MAX_ROUNDS = 100  # a queue that keeps producing work for longer is a bug, not a backlog


class RunnerKind(StrEnum):
    THREADS = "threads"
    PROCESSES = "processes"
    DASK = "dask"


def task_runner(kind: str, workers: int, dask_address: str | None = None) -> TaskRunner:
    """The task runner a flow parameter names, sized to ``workers``."""
    if workers < 1:
        raise ConfigError(f"workers={workers}: a crew needs at least one worker")
    try:
        chosen = RunnerKind(kind)
    except ValueError:
        names = ", ".join(repr(k.value) for k in RunnerKind)
        raise ConfigError(f"task_runner {kind!r} is none of {names}") from None
    if chosen is not RunnerKind.DASK and dask_address:
        raise ConfigError(f"dask_address is for task_runner='dask'; the {chosen.value} pool runs on this machine")
    if chosen is RunnerKind.THREADS:
        return ThreadPoolTaskRunner(max_workers=workers)
    if get_current_settings().api.url is None:
        # Each process would start a temporary API of its own, all on one SQLite database.
        raise ConfigError(
            f"task_runner={chosen.value!r} runs tasks in other processes, which report to Prefect's API by URL; "
            "the temporary in-process API cannot be shared: start a server (`prefect server start`) "
            "and set PREFECT_API_URL, or use task_runner='threads'"
        )
    if chosen is RunnerKind.PROCESSES:
        return ProcessPoolTaskRunner(max_workers=workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - prefect-dask is a dependency
        raise ConfigError(f"task_runner='dask' needs the prefect-dask package ({exc})") from None
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


@dataclass(frozen=True)
class Submission:
    """One Prefect task to run, with its parameters."""

    task: Task[..., Any]
    parameters: dict[str, Any]


@dataclass
class Collected:
    """What the rounds produced: each task's return value, and the tasks that failed for good."""

    results: list[Any] = field(default_factory=list)  # None results (nothing was claimable) are dropped
    failures: list[str] = field(default_factory=list)
    rounds: int = 0


def run_rounds(
    runner: TaskRunner,
    plan: Callable[[], Sequence[Submission]],
    progress: Progress | None = None,
    *,
    max_rounds: int = MAX_ROUNDS,
) -> Collected:
    """Submit what ``plan`` asks for, wait for all of it, and ask again, until it asks for nothing.

    A round in which no task found work ends the loop too: the rest is held by someone else
    (leased, or waiting out a retry backoff) and will be worked by the next run. A task that
    failed after its Prefect retries is counted in ``failures`` and the others go on.
    """
    collected = Collected()
    while collected.rounds < max_rounds:
        submissions = list(plan())
        if not submissions:
            break
        collected.rounds += 1
        if progress is not None and collected.rounds > 1:
            progress.grow(len(submissions))
        futures = [runner.submit(s.task, s.parameters) for s in submissions]
        found_work = False
        for future in as_completed(futures):
            result = future.result(raise_on_failure=False)
            if isinstance(result, BaseException):
                collected.failures.append(f"{type(result).__name__}: {result}")
            elif result is not None:
                collected.results.append(result)
                found_work = True
            if progress is not None:
                progress.advance()
        if not found_work:
            break
    return collected
