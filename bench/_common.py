"""Shared helpers for the benchmarks: timing, medians, and where the real videos are."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)
