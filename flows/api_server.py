"""A Prefect API for flows started from a terminal, that survives the terminal's Ctrl-C.

With no ``PREFECT_API_URL``, Prefect starts a temporary API server as a child process in the
caller's process group. Ctrl-C in a terminal signals the whole foreground group, so that
server dies at the very moment the flow learns of the interrupt, and Prefect's engine then
spends minutes retrying to record the crash with a server that is gone (measured: the demo
still hung two minutes after Ctrl-C). :func:`terminal_safe_api` starts the same kind of
temporary server (``prefect server start``, API only, no services or UI) in a session of its
own, out of reach of the terminal's signals: the interrupted flow records its crash within a
second, the command ends, and the server is stopped behind it. With ``PREFECT_API_URL`` set
(a real server) nothing is started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from engine.errors import ConfigError

STARTUP_TIMEOUT_S = 120.0  # a cold start on a loaded 2-core machine takes 10 to 20 s


@contextmanager
def terminal_safe_api(startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str | None]:
    """Run the block against a Prefect API; yields its URL when one was started here, else None."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield None
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [
        sys.executable, "-m", "prefect", "server", "start",
        "--host", "127.0.0.1", "--port", str(port), "--no-services", "--no-ui",
    ]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ends_with(os.getpid()),
        )
        try:
            _wait_until_healthy(server, url, startup_timeout_s, log)
            previous = os.environ.get("PREFECT_API_URL")
            os.environ["PREFECT_API_URL"] = url  # for processes the flows start (task runners, workers)
            try:
                with temporary_settings(updates={PREFECT_API_URL: url}):
                    yield url
            finally:
                if previous is None:
                    os.environ.pop("PREFECT_API_URL", None)
                else:
                    os.environ["PREFECT_API_URL"] = previous
        finally:
            _drain_prefect_workers()
            _stop(server)


def _ends_with(parent: int):  # noqa: ANN202 - a preexec_fn
    """In the server's process before it starts: end it when the command's process dies.

    Out of the terminal's process group, the server would outlive a ``kill -9`` of the command
    (nothing would stop it); on Linux the kernel sends it SIGTERM when its parent dies
    (``PR_SET_PDEATHSIG``). Elsewhere it relies on the command's own cleanup.
    """

    def arm() -> None:
        if not sys.platform.startswith("linux"):
            return
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return arm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_healthy(server: subprocess.Popen[bytes], url: str, timeout_s: float, log: object) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise ConfigError(f"the temporary Prefect server exited with status {server.returncode}: {_tail(log)}")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise ConfigError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s: {_tail(log)}")


def _tail(log: object, limit: int = 2000) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    text = log.read().decode(errors="replace")  # type: ignore[attr-defined]
    return text[-limit:].strip() or "(no output)"


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send the logs and events still queued before the server goes, as Prefect's test harness does.

    Left queued, they are sent at interpreter exit to a server that is gone, and the exit waits
    on their retries.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and whatever it started (its own session), politely first."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if server.poll() is not None:
            return
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
