"""The queue under real concurrency: worker processes racing, dying, pausing, losing connections.

Each completion inserts one row into a scratch ``effects`` table in its own transaction, so
"completed exactly once in effect" is a row count: one row per task, none twice, none missing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from engine.errors import LeaseLostError
from engine.queues import NewTask, Queue
from storage.catalog import Catalog
from storage.task_queue import TaskQueue

QUEUE = Queue.ANNOTATE_PHASE_1
FORK = multiprocessing.get_context("fork")  # cheap to start; each worker opens its own catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


# --- what runs in the worker processes ----------------------------------------------------------


def run_worker(url: str, name: str, lease_s: float, out: str, work_s: float = 0.0, stall: bool = False) -> None:
    """Claim and complete until nothing is pending; write what happened to ``out`` as JSON.

    ``stall`` makes a worker that holds its one lease past expiry before completing: its late
    complete must be refused.
    """
    catalog = Catalog(url, pool_size=1)
    queue = TaskQueue(catalog)
    completed, refused = 0, 0
    while True:
        leases = queue.claim(QUEUE, name, lease_s)
        if not leases:
            if _nothing_pending(queue):
                break
            time.sleep(0.05)
            continue
        for lease in leases:
            time.sleep(lease_s * 2.5 if stall else work_s * random.random())
            try:
                queue.complete(lease.task, lease.token, effect=_effect(name))
                completed += 1
            except LeaseLostError:
                refused += 1
        if stall:
            break
    Path(out).write_text(json.dumps({"completed": completed, "refused": refused}))
    catalog.dispose()


def _nothing_pending(queue: TaskQueue) -> bool:
    return all(s.pending == 0 for s in queue.stats() if s.queue is QUEUE)


def _effect(worker: str) -> Callable[[Any, Any], None]:
    def insert(session: Any, task: Any) -> None:
        session.execute(text("INSERT INTO effects (task_id, worker) VALUES (:t, :w)"), {"t": task.id, "w": worker})

    return insert


# --- harness ----------------------------------------------------------------------------------------


def prepare(catalog: Catalog, n_tasks: int) -> None:
    with catalog.write() as session:
        session.execute(text("CREATE TABLE effects (task_id INTEGER NOT NULL, worker VARCHAR(64) NOT NULL)"))
    TaskQueue(catalog).enqueue_many([NewTask(QUEUE, {"n": i}) for i in range(n_tasks)])
    catalog.dispose()  # the workers are forked: they must not share the parent's connections


def start(url: str, name: str, out_dir: Path, lease_s: float, **options: Any) -> multiprocessing.process.BaseProcess:
    process = FORK.Process(target=run_worker, args=(url, name, lease_s, str(out_dir / f"{name}.json")), kwargs=options)
    process.start()
    return process


def reports(out_dir: Path) -> dict[str, dict[str, int]]:
    return {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")}


def assert_each_task_completed_once(catalog: Catalog, n_tasks: int) -> None:
    with catalog.read() as session:
        statuses = dict(session.execute(text("SELECT status, COUNT(*) FROM tasks GROUP BY status")).all())
        effects, distinct = session.execute(text("SELECT COUNT(*), COUNT(DISTINCT task_id) FROM effects")).one()
    assert statuses == {"done": n_tasks}, statuses  # none lost, none left leased, none dead
    assert (effects, distinct) == (n_tasks, n_tasks)  # each completed exactly once in effect


def join_all(processes: list[multiprocessing.process.BaseProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    hung = [p.name for p in processes if p.is_alive()]
    for p in processes:
        if p.is_alive():
            p.kill()
    assert not hung, f"workers still running after {timeout_s} s: {hung}"


# --- tests ----------------------------------------------------------------------------------------------


def test_eight_workers_complete_two_thousand_tasks_exactly_once(
    catalog: Catalog, catalog_url: str, tmp_path: Path
) -> None:
    prepare(catalog, 2000)
    workers = [start(catalog_url, f"w{i}", tmp_path, lease_s=30) for i in range(8)]
    join_all(workers, 240)
    assert [w.exitcode for w in workers] == [0] * 8
    done = reports(tmp_path)
    assert sum(r["completed"] for r in done.values()) == 2000 and all(r["refused"] == 0 for r in done.values())
    assert_each_task_completed_once(catalog, 2000)


def test_killed_workers_tasks_are_redelivered_and_a_stale_complete_is_refused(
    catalog: Catalog, catalog_url: str, tmp_path: Path
) -> None:
    n_tasks, lease_s = 400, 1.0
    prepare(catalog, n_tasks)
    rng = random.Random(4)
    stalled = start(catalog_url, "stalled", tmp_path, lease_s, stall=True)
    alive = [start(catalog_url, f"w{i}", tmp_path, lease_s, work_s=0.04) for i in range(7)]
    victims: list[multiprocessing.process.BaseProcess] = []
    for round_ in range(6):
        time.sleep(rng.uniform(0.1, 0.3))
        victim = alive.pop(rng.randrange(len(alive)))
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
        victims.append(victim)
        alive.append(start(catalog_url, f"r{round_}", tmp_path, lease_s, work_s=0.04))
    join_all([stalled, *alive, *victims], 240)
    assert all(w.exitcode == 0 for w in [stalled, *alive])
    killed = [v for v in victims if v.exitcode == -signal.SIGKILL]  # the others had already finished
    assert len(killed) >= 3 and all(v.exitcode in (0, -signal.SIGKILL) for v in victims)
    assert reports(tmp_path)["stalled"] == {"completed": 0, "refused": 1}
    assert_each_task_completed_once(catalog, n_tasks)
    with catalog.read() as session:
        redelivered = session.execute(text("SELECT COUNT(*) FROM tasks WHERE attempts > 1")).scalar()
    assert redelivered >= 1  # at least the stalled worker's task went to someone else


@pytest.mark.postgres
def test_workers_survive_their_connections_being_terminated(postgres_url: str, tmp_path: Path) -> None:
    n_tasks = 600
    catalog = Catalog(postgres_url)
    catalog.upgrade()
    prepare(catalog, n_tasks)
    workers = [start(postgres_url, f"w{i}", tmp_path, lease_s=2.0) for i in range(8)]
    terminated = 0
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        while any(w.is_alive() for w in workers):
            time.sleep(0.25)
            terminated += admin.execute(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
            ).fetchone()[0]  # type: ignore[index]
    join_all(workers, 60)
    assert [w.exitcode for w in workers] == [0] * 8
    assert terminated >= 8, "the run ended before any connection was terminated"
    assert_each_task_completed_once(catalog, n_tasks)
    catalog.dispose()
