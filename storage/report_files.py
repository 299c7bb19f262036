"""The dashboard on disk: one self-contained HTML page and one Parquet file per table, each atomic.

A BI tool or a notebook reads the Parquet files (``phase_metrics.parquet``,
``phase_time_series.parquet``, ...); a person opens ``dashboard.html``. Every file is
written through a temporary file renamed into place, so a reader (or a report run every 15
minutes over the last one) never sees a half-written file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.errors import ExportError
from storage.exports import write_parquet_atomic
from storage.objects.atomic_files import write_file_atomically

HTML_NAME = "dashboard.html"


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    parquet: tuple[Path, ...]


def write_report(out_dir: Path, html: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> WrittenReport:
    """Write ``dashboard.html`` and ``{table}.parquet`` for every table into ``out_dir``."""
    out_dir = Path(out_dir)
    parquet = tuple(write_table(out_dir / f"{name}.parquet", rows) for name, rows in tables.items())
    html_path = out_dir / HTML_NAME
    data = html.encode("utf-8")
    try:
        write_file_atomically(html_path, lambda out: out.write(data))
    except OSError as exc:
        raise ExportError(f"cannot write {html_path}: {exc.strerror or exc}") from exc
    return WrittenReport(html_path, parquet)


def write_table(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One table as Parquet; an empty table keeps no columns but is still written (it says "none yet")."""
    write_parquet_atomic(path, to_arrow(rows))
    return path


def to_arrow(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows of plain values as an Arrow table: columns in first-seen order, times as UTC timestamps."""
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    for row in rows:
        for key, values in columns.items():
            values.append(row.get(key))
    arrays = {key: pa.array(values, type=_type(values)) for key, values in columns.items()}
    return pa.table(arrays) if arrays else pa.table({})


def _type(values: Sequence[Any]) -> pa.DataType | None:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, datetime) for v in present):
        return pa.timestamp("us", tz="UTC")
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64() if any(isinstance(v, float) for v in present) else pa.int64()
    if present and all(isinstance(v, dict) for v in present):
        return None  # let Arrow infer a struct
    return pa.string() if present else pa.null()
