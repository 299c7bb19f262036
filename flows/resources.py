"""What a flow's tasks work on, opened once per process from plain URLs.

Tasks take the catalog and object store as URLs (plain parameters travel to any task runner:
threads, processes, a Dask cluster on other machines) and open them here. A process keeps one
:class:`Resources` per pair of URLs, because a catalog's connection pool and a task queue are
meant to be shared by the threads of a process, not rebuilt for every masklet.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from engine.ports import ObjectStore
from engine.settings import Settings, load_settings
from storage.annotation_store import SqlAnnotationStore
from storage.catalog import Catalog, open_catalog
from storage.objects import open_object_store
from storage.task_queue import TaskQueue

MAX_OPEN = 8  # catalogs a process keeps open at once; the least recently used one is closed first


@dataclass(frozen=True)
class Resources:
    """One catalog and object store, with the queue and annotation store on them."""

    settings: Settings
    catalog: Catalog
    store: ObjectStore
    queue: TaskQueue
    annotations: SqlAnnotationStore

    def close(self) -> None:
        self.queue.close()
        self.catalog.dispose()


_lock = threading.Lock()
_open: dict[tuple[int, str, str], Resources] = {}


def settings_for(catalog_url: str | None = None, object_store_url: str | None = None) -> Settings:
    """The effective settings, with the URLs a flow was given taking precedence."""
    overrides = {k: v for k, v in (("catalog_url", catalog_url), ("object_store_url", object_store_url)) if v}
    return load_settings(**overrides)


def resources(catalog_url: str | None = None, object_store_url: str | None = None) -> Resources:
    """This process's resources for the URLs (None: the configured ones); a new catalog gets its schema."""
    settings = settings_for(catalog_url, object_store_url)
    # Keyed by process too: a forked child must not use its parent's connections.
    key = (os.getpid(), settings.catalog_url, settings.object_store_url)
    with _lock:
        found = _open.pop(key, None)
        if found is None:
            catalog = open_catalog(settings.catalog_url)
            try:
                store = open_object_store(settings)
            except BaseException:
                catalog.dispose()
                raise
            found = Resources(settings, catalog, store, TaskQueue(catalog), SqlAnnotationStore(catalog, store))
        _open[key] = found  # most recently used last
        while len(_open) > MAX_OPEN:
            oldest = next(iter(_open))
            _open.pop(oldest).close()
        return found


def release_thread_connections(res: Resources) -> None:
    """Give back the connections the task queue kept for threads that are gone (call after a pool ends).

    On PostgreSQL the queue keeps one connection per thread between calls; a task runner's
    threads end with their flow, and the connections they kept would stay checked out of the
    queue's small pool until a later flow in this process finds it empty. Closing the queue
    drops its pool (connections still in use elsewhere are unaffected) and it opens a new one
    on next use.
    """
    res.queue.close()


def close_resources() -> None:
    """Close everything this process opened (tests between catalogs; a worker at shutdown)."""
    with _lock:
        for key in [k for k in _open if k[0] == os.getpid()]:
            _open.pop(key).close()
        _open.clear()
