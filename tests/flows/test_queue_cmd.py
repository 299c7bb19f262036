"""``dataengine queue ...`` as an operator uses it, on an embedded catalog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.queues import Queue
from flows.cli import queue_cmd
from storage.catalog import open_catalog
from storage.task_queue import TaskQueue


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DATAENGINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    cli = typer.Typer()
    cli.command("noop")(lambda: None)  # a second command, so `queue` stays a sub-command
    queue_cmd.register(cli)
    return cli


@pytest.fixture
def dead_task(tmp_path: Path, app: typer.Typer) -> int:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with TaskQueue(catalog) as queue:
        queue.enqueue(Queue.ANNOTATE_PHASE_1, {"video": "v1"})
        task = queue.enqueue(Queue.ANNOTATE_PHASE_2, {"video": "v2"}, max_attempts=1)
        (lease,) = queue.claim(Queue.ANNOTATE_PHASE_2, "w1", 30)
        queue.fail(lease.task_id, lease.token, "model server unreachable")
    catalog.dispose()
    return task.id


def invoke(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, ["queue", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_stats_list_dead_letter_requeue_and_history(app: typer.Typer, dead_task: int) -> None:
    stats = invoke(app, "stats").splitlines()
    assert stats[0].split()[:5] == ["queue", "ready", "leased", "done", "dead"]
    assert stats[1].split()[:5] == ["annotate_phase_1", "1", "0", "0", "0"]
    assert stats[2].split()[:5] == ["annotate_phase_2", "0", "0", "0", "1"]

    assert len(invoke(app, "list").splitlines()) == 2
    assert invoke(app, "list", "--queue", "annotate_phase_1").count("annotate_phase_1") == 1
    dead = invoke(app, "dead-letter")
    assert f"{dead_task}\tannotate_phase_2\tdead\t1/1\tmodel server unreachable" in dead

    assert invoke(app, "requeue", str(dead_task)) == f"requeued 1 task(s): {dead_task}\n"
    assert "the dead letter is empty" in invoke(app, "dead-letter")
    lines = invoke(app, "history", str(dead_task)).splitlines()
    assert [line.split()[2:5] for line in lines] == [
        ["-", "->", "ready"], ["ready", "->", "leased"], ["leased", "->", "dead"], ["dead", "->", "ready"],
    ]
    assert "failed: model server unreachable" in lines[2] and "operator" in lines[3]


def test_operator_mistakes_are_one_line_errors(app: typer.Typer, dead_task: int) -> None:
    runner = CliRunner()
    for args, message in [
        (["list", "--queue", "verification"], "unknown queue 'verification'"),
        (["requeue", str(dead_task - 1)], "not in the dead letter"),
        (["requeue"], "name the tasks to requeue, or pass --all"),
        (["history", "999"], "no history for task 999"),
    ]:
        result = runner.invoke(app, ["queue", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert invoke(app, "requeue", "--all") == f"requeued 1 task(s): {dead_task}\n"
