"""``dataengine users`` and ``dataengine serve`` as an operator runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flows.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "DATAENGINE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "DATAENGINE_OBJECT_STORE_URL": f"file://{tmp_path / 'objects'}",
        "DATAENGINE_CONFIG": str(tmp_path / "none.toml"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def test_users_add_list_disable(env: dict[str, str]) -> None:
    assert "no users yet" in run("users", "list")
    assert "added alice (annotator)" in run("users", "add", "alice", "--role", "annotator", "--password", "s3cret-pass")
    assert "added bob (admin)" in run("users", "add", "bob", "--role", "admin", stdin="another-pass\nanother-pass\n")
    listing = run("users", "list")
    assert "alice" in listing and "annotator" in listing and "active" in listing and "bob" in listing
    assert "sessions are revoked" in run("users", "disable", "alice")
    assert "disabled" in run("users", "list").splitlines()[0]
    assert "already a user" in run("users", "add", "alice", "--role", "verifier", "--password", "s3cret-pass", code=2)
    assert "unknown role" in run("users", "add", "carol", "--role", "boss", "--password", "s3cret-pass", code=2)
    assert "8 to 1024" in run("users", "add", "carol", "--role", "verifier", "--password", "short", code=2)
    assert "not usable" in run("users", "add", "../etc", "--role", "verifier", "--password", "s3cret-pass", code=2)
    assert "no user called" in run("users", "disable", "nobody", code=2)


def test_enqueue_queues_tasks_for_people(env: dict[str, str], tmp_path: Path) -> None:
    from engine.synthetic import SyntheticSpec, synthesize

    synthesize(tmp_path / "videos", 1, seed=4, spec=SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0))
    run("ingest", str(tmp_path / "videos"))
    assert "phase 2: 2 objects in the queue annotate_phase_2" in run("enqueue", "--phase", "2")
    assert "phase 2: 2 objects" in run("enqueue", "--phase", "2")  # the same tasks: nothing new
    assert "annotate_phase_2" in run("queue", "stats")
    assert "no video" in run("enqueue", "--phase", "1", "missing-video", code=2)


def test_serve_answers_on_loopback(env: dict[str, str], tmp_path: Path) -> None:
    run("users", "add", "alice", "--role", "annotator", "--password", "s3cret-pass")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "flows.cli", "serve", "--port", str(port), "--model", "simulated"]
    server = subprocess.Popen(command, env={**os.environ, **env}, cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert page.status_code == 200 and "Log in" in page.text
        login = httpx.post(f"http://127.0.0.1:{port}/api/session/login", json={"name": "alice", "password": "s3cret-pass"})
        assert login.status_code == 200 and "httponly" in login.headers["set-cookie"].lower()
        assert "secure" not in login.headers["set-cookie"].lower()  # plain http on loopback
    finally:
        server.terminate()
        server.wait(timeout=30)
