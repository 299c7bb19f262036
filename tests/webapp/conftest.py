"""A web app on a real SQLite catalog with one ingested synthetic video, users, and logged-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.queues import NewTask, Queue, annotate_queue
from engine.settings import load_settings
from engine.simulated_segmenter import ModelQuality, SimulatedSegmenterSource
from engine.synthetic import SyntheticSpec, synthesize
from phases.workers import enqueue_annotation
from storage.annotation_store import SqlAnnotationStore
from storage.catalog import Catalog
from storage.ingest_sources import ingest_sources
from storage.objects.local import LocalObjectStore
from storage.task_queue import TaskQueue
from webapp.app import create_app
from webapp.auth import LoginLimits, Passwords, add_user
from webapp.config import WebConfig

TINY = SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0)
GOOD = ModelQuality(mask_side=256, image_errors=1.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=0.0)
PASSWORD = "correct horse battery"
# argon2id all the same, at test cost (the production parameters take ~100 ms a hash).
CHEAP = Passwords(time_cost=1, memory_kib=1024, parallelism=1)


class Client:
    """A browser-like client: its own cookie jar, the CSRF token of its session sent on changes."""

    def __init__(self, app: Any) -> None:
        self.http = TestClient(app)
        self.csrf = ""

    def login(self, name: str, password: str = PASSWORD) -> Any:
        response = self.http.post("/api/session/login", json={"name": name, "password": password})
        if response.status_code == 200:
            self.csrf = response.json()["csrf"]
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def post(self, path: str, body: dict | None = None, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.post(path, json=body or {}, headers=headers, **kwargs)

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.get(path) if method == "GET" else self.post(path, body)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@dataclass
class Site:
    catalog: Catalog
    store: LocalObjectStore
    queue: TaskQueue
    annotations: SqlAnnotationStore
    video_id: str
    app: Any
    clients: list[Client] = field(default_factory=list)

    def client(self, name: str | None = None) -> Client:
        client = Client(self.app)
        self.clients.append(client)
        if name is not None:
            assert client.login(name).status_code == 200
        return client

    def close(self) -> None:
        for client in self.clients:
            client.http.close()
        self.queue.close()
        self.app.state.web.work.close()

    def enqueue(self, phase: int) -> list[int]:
        return [t.id for t in enqueue_annotation(self.queue, self.annotations, phase, [self.video_id])]

    def enqueue_one(self, phase: int, object_id: int = 0) -> int:
        spec = NewTask(annotate_queue(phase), {"video_id": self.video_id, "object_id": object_id}, key=f"t{phase}/{object_id}",
                       video_id=self.video_id)
        return self.queue.enqueue_many([spec])[0].id


def build_site(catalog: Catalog, root: Path, *, config: WebConfig | None = None, models: Any = None) -> Site:
    store = LocalObjectStore(root / "objects")
    paths = synthesize(root / "videos", 1, seed=5, spec=TINY)
    (result,) = ingest_sources([str(p) for p in paths], catalog=catalog, store=store, settings=load_settings())
    for name, role in (("ann", "annotator"), ("ann2", "annotator"), ("ver", "verifier"), ("boss", "admin")):
        add_user(catalog, CHEAP, name, role, PASSWORD)
    config = config or WebConfig(secure_cookies=False, login_limits=LoginLimits(window_s=900, per_user=5, per_client=20))
    app = create_app(load_settings(), catalog, store, None, models=models or SimulatedSegmenterSource(GOOD), config=config,
                     passwords=CHEAP)
    return Site(catalog, store, TaskQueue(catalog), SqlAnnotationStore(catalog, store), result.video_id, app)


@pytest.fixture
def site(sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    built = build_site(sqlite_catalog, tmp_path)
    try:
        yield built
    finally:
        built.close()


def claim(client: Client, queue: Queue | str) -> dict:
    answer = client.ok("POST", "/api/tasks/claim", {"queue": str(queue)})
    assert answer["task"] is not None, answer
    return answer["task"]


@pytest.fixture
def any_site(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The site on each catalog backend (SQLite, and PostgreSQL where it runs)."""
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    built = build_site(catalog, tmp_path)
    try:
        yield built
    finally:
        built.close()
