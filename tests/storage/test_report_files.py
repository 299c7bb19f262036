"""The dashboard's files: typed Parquet tables and an HTML page, written atomically."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import ExportError
from storage.report_files import to_arrow, write_report

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_tables_keep_their_types_and_nulls(tmp_path: Path) -> None:
    rows = [
        {"phase": 1, "seconds_per_frame": 10.5, "at": T0, "promoted": True, "label": "Phase 1"},
        {"phase": None, "seconds_per_frame": 3, "at": None, "promoted": False, "label": None, "extra": "late column"},
    ]
    table = to_arrow(rows)
    assert table.schema.field("phase").type == pa.int64()
    assert table.schema.field("seconds_per_frame").type == pa.float64()
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("promoted").type == pa.bool_()
    assert table.column("extra").to_pylist() == [None, "late column"]
    assert table.column("phase").to_pylist() == [1, None]

    written = write_report(tmp_path / "out", "<!doctype html><p>hi</p>", {"phase_metrics": rows, "empty": []})
    assert written.html.read_text() == "<!doctype html><p>hi</p>"
    assert pq.read_table(written.parquet[0]).num_rows == 2 and pq.read_table(written.parquet[1]).num_rows == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "dashboard.html",
        "empty.parquet",
        "phase_metrics.parquet",
    ]


def test_an_unwritable_folder_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write"):
        write_report(blocker / "out", "<p>", {"t": [{"a": 1}]})
