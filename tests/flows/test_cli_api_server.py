"""The Prefect API a terminal command starts: out of the terminal's signals, gone with the command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.cli.api_server import terminal_safe_api

REPO = Path(__file__).resolve().parents[2]


def test_an_existing_api_is_used_and_nothing_is_started() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), terminal_safe_api() as started:
        assert started is None


SCRIPT = """
import os, sys, time, httpx
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.events.worker import EventsWorker
from flows.cli.api_server import terminal_safe_api
from prefect.settings import get_current_settings

@task
def one(x):
    return x + 1

@flow
def work():
    return [one(i) for i in range(3)]

with terminal_safe_api() as url:
    assert get_current_settings().api.url == url == os.environ["PREFECT_API_URL"]
    assert httpx.get(url + "/health").status_code == 200
    print(url, flush=True)
    if sys.argv[1] == "die":
        os.kill(os.getpid(), 9)  # killed before any cleanup of ours can run
    state = work(return_state=True)
    EventsWorker.drain_all()
    # Task runs reach the server as events, recorded by its background services: they must run.
    deadline, recorded = time.monotonic() + 30, 0
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and recorded < 3:
            recorded = len(client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))))
            time.sleep(0.2)
    print("task runs", recorded, flush=True)
    sys.stdin.readline()  # the test has looked at the server
assert "PREFECT_API_URL" not in os.environ
print("done", flush=True)
"""


def _server_pid(port: str) -> int:
    found = subprocess.run(["pgrep", "-f", f"api_server:temporary_api_app --host 127.0.0.1 --port {port} "],
                           capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert pids, f"no server on port {port}"
    return pids[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server ends with a killed command on Linux only")
@pytest.mark.parametrize("ending", ["returns", "die"])
def test_the_server_runs_in_its_own_session_and_ends_with_the_command(tmp_path: Path, ending: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    command = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, ending], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    assert command.stdin is not None and command.stdout is not None
    url = command.stdout.readline().strip()
    port = url.rsplit(":", 1)[1].split("/")[0]
    if ending == "returns":
        server = _server_pid(port)
        # Ctrl-C signals the terminal's foreground process group, the command's; the server is not in it.
        assert os.getsid(server) == server != os.getsid(command.pid)
        assert command.stdout.readline().strip() == "task runs 3"  # recorded as by Prefect's own server
        command.stdin.write("\n")
        command.stdin.flush()
        assert command.stdout.readline().strip() == "done"
    command.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health", timeout=1)
        except httpx.HTTPError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the server at {url} outlived the command ({ending})")


def test_a_server_that_cannot_start_is_a_clear_error_after_its_retries() -> None:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL, temporary_settings

    from engine.errors import ConfigError

    # The caller's Prefect settings reach the server (they win over the environment, as in Prefect's own).
    broken = {PREFECT_API_DATABASE_CONNECTION_URL: "nosuchdriver://nowhere/prefect"}
    with temporary_settings(updates=broken, restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError) as caught:
        with terminal_safe_api(startup_timeout_s=60):
            raise AssertionError("the block must not run without a server")
    assert "the temporary Prefect server exited with status" in str(caught.value)
    assert "nosuchdriver" in str(caught.value)  # the server's own words, for the user to act on
    assert "PREFECT_API_URL" not in os.environ
