"""Which failures a Prefect task retries: the transient ones only.

A catalog that dropped its connection or an object store that timed out may answer the next
attempt; a video that does not exist or a malformed parameter will not, and retrying it only
delays the error. Our own errors say which they are by their type.
"""

from __future__ import annotations

from typing import Any

from engine.errors import CatalogError, DataEngineError, NotFoundError, ObjectStoreError


def is_transient(exc: BaseException) -> bool:
    """True for failures another attempt may cure: outages of the catalog or object store, and
    anything that is not one of our deliberate errors (a crashed library, a killed connection)."""
    if isinstance(exc, NotFoundError):
        return False
    if isinstance(exc, (CatalogError, ObjectStoreError)):
        return True
    return not isinstance(exc, DataEngineError)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for tasks: retry transient failures, fail the others at once."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            state.result()
        except BaseException as raised:  # noqa: BLE001 - we only classify it
            exc = raised
        else:
            return False
    return is_transient(exc)
