"""Progress of a flow's long step: a Prefect progress artifact, and a bar in a terminal.

A flow that works a queue for an hour must show how far it got, in the Prefect UI (a progress
artifact on the flow run) and on the command line that started it (a bar on stderr, only when
stderr is a terminal, so logs and CI output stay clean). The total may grow while the work
runs: verifying a masklet can send it to refinement and back to verification.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

log = logging.getLogger(__name__)

ARTIFACT_EVERY_S = 1.0  # at most one artifact update a second: each is an API call


class Progress:
    """``advance()`` as units of work finish; ``close()`` (or the ``with`` block) at the end."""

    def __init__(self, key: str, description: str, total: int, *, bar: bool | None = None) -> None:
        self.key = key
        self.description = description
        self.total = max(total, 0)
        self.done = 0
        self._artifact: UUID | None = None
        self._artifact_at = 0.0
        self._bar: Any = None
        self._bar_task: Any = None
        self._start_artifact()
        if bar if bar is not None else sys.stderr.isatty():
            self._start_bar()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else min(100.0, 100.0 * self.done / self.total)

    def grow(self, more: int) -> None:
        """More work turned up (a refinement, another round)."""
        if more > 0:
            self.total += more
            self._show(force=False)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        self._show(force=False)

    def close(self) -> None:
        self._show(force=True)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _show(self, *, force: bool) -> None:
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=self.done, total=max(self.total, 1))
        now = time.monotonic()
        if self._artifact is not None and (force or now - self._artifact_at >= ARTIFACT_EVERY_S):
            self._artifact_at = now
            try:
                update_progress_artifact(self._artifact, self.percent, description=self._text())
            except Exception as exc:  # noqa: BLE001 - progress is a view; the work goes on without it
                log.warning("progress artifact %s not updated: %s", self.key, exc)

    def _text(self) -> str:
        return f"{self.description}: {self.done} of {self.total}"

    def _start_artifact(self) -> None:
        try:
            self._artifact = create_progress_artifact(self.percent, key=self.key, description=self._text())
            self._artifact_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - see _show
            log.warning("progress artifact %s not created: %s", self.key, exc)

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._bar_task = self._bar.add_task(self.description, total=max(self.total, 1), completed=self.done)
