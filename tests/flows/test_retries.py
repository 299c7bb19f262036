"""Prefect retries transient failures only: an outage may pass, a missing video will not."""

from __future__ import annotations

from types import SimpleNamespace

from engine.errors import (
    BadVideoError,
    CatalogError,
    ConfigError,
    NotFoundError,
    ObjectNotFoundError,
    ObjectStoreError,
    QueueError,
)
from flows.retries import is_transient, retry_transient


def test_outages_and_unknown_crashes_are_transient_our_deliberate_errors_are_not() -> None:
    assert is_transient(CatalogError("catalog x: connection refused"))
    assert is_transient(ObjectStoreError("s3: timed out"))
    assert is_transient(ConnectionResetError("peer reset"))
    assert is_transient(RuntimeError("a library crashed"))
    assert not is_transient(NotFoundError("no video 'v'"))
    assert not is_transient(ObjectNotFoundError("no object k"))  # a store error, but nothing to wait for
    assert not is_transient(BadVideoError("v.mp4", "truncated"))
    assert not is_transient(ConfigError("bad setting"))
    assert not is_transient(QueueError("bad lease"))


def test_the_retry_condition_reads_the_failed_state() -> None:
    class Failed:
        def __init__(self, exc: BaseException | None) -> None:
            self.data = exc

        def result(self) -> None:
            raise RuntimeError("from the stored result")

    assert retry_transient(None, None, Failed(CatalogError("down")))
    assert not retry_transient(None, None, Failed(NotFoundError("gone")))
    assert retry_transient(None, None, Failed(None))  # the exception comes back from result()
    assert not retry_transient(None, None, SimpleNamespace(data=None, result=lambda: 1))  # nothing failed
