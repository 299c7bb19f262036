"""A Prefect API for flows started from a terminal, that survives the terminal's Ctrl-C.

With no ``PREFECT_API_URL``, Prefect starts a temporary API server as a child process in the
caller's process group. Ctrl-C in a terminal signals the whole foreground group, so that
server dies at the very moment the flow learns of the interrupt, and Prefect's engine then
spends minutes retrying to record the crash with a server that is gone (measured: the demo
still hung two minutes after Ctrl-C). :func:`terminal_safe_api` starts the same server
Prefect would (its ``create_app`` in ephemeral mode, under uvicorn, with the caller's Prefect
settings: the same database, the same background services, so task runs and events are
recorded as usual) but in a session of its own, out of reach of the terminal's signals: the
interrupted flow records its crash within a second, the command ends, and the server is
stopped behind it. With ``PREFECT_API_URL`` set (a real server) nothing is started, and off
POSIX systems Prefect's own temporary server is left to do the job.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import httpx

from engine.errors import ConfigError

STARTUP_TIMEOUT_S = 120.0  # a cold start on a loaded 2-core machine takes 10 to 20 s
PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it


def temporary_api_app() -> Any:
    """The uvicorn factory: Prefect's API app as its temporary server builds it."""
    from prefect.server.api.server import create_app

    return create_app(ephemeral=True, final=True)


@contextmanager
def terminal_safe_api(startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str | None]:
    """Run the block against a Prefect API; yields its URL when one was started here, else None."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url or os.name != "posix":
        yield None
        return
    env = {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        "PREFECT_UI_ENABLED": "0",
    }
    with tempfile.TemporaryFile() as log:
        server, url = _start(env, log, startup_timeout_s)
        try:
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
                _drain_prefect_workers()
        finally:
            _stop(server)


def _start(env: dict[str, str], log: IO[bytes], timeout_s: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server on a free port, again on another if that one was taken meanwhile."""
    for _ in range(PORT_ATTEMPTS):
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        command = [
            sys.executable, "-m", "uvicorn", "--factory", f"{__name__}:temporary_api_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
        ]
        log.seek(0)
        log.truncate()
        server = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dies_with(os.getpid()),
        )
        if _healthy(server, url, timeout_s, log):
            return server, url
    raise ConfigError(f"the temporary Prefect server exited with status {server.returncode}: {_tail(log)}")


def _healthy(server: subprocess.Popen[bytes], url: str, timeout_s: float, log: IO[bytes]) -> bool:
    """True once the server answers (and is ours: still running); False if it exited (a taken port).

    A server that neither answers nor exits within ``timeout_s`` is stopped, and that is an error.
    """
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                return False
            try:
                if client.get(f"{url}/health").status_code == 200 and server.poll() is None:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    _stop(server)
    raise ConfigError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s: {_tail(log)}")


def _dies_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn ending the server when the command's process dies (Linux), else None.

    Out of the terminal's process group, the server would outlive a ``kill -9`` of the command
    (nothing would stop it); on Linux the kernel sends it SIGTERM when its parent dies
    (``PR_SET_PDEATHSIG``). ``prctl`` is looked up here, in the parent: between fork and exec
    the child only calls it (loading a library there could deadlock a threaded parent).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return arm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace")
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
