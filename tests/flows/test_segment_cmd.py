"""``dataengine auto-masklets`` and ``dataengine track`` as a user runs them, on an embedded catalog."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sqlalchemy import select

from engine.folder_eval import evaluate_folders
from engine.queues import Queue, TaskStatus
from engine.synthetic import SyntheticVideo
from flows.cli import annotate_cmd, segment_cmd
from storage.catalog import open_catalog
from storage.mask_folders import write_sav_folders
from storage.schema import MaskletRow, VerificationRow
from storage.task_queue import TaskQueue
from tests.engine.segment_fixtures import ingest_tiny, one_torch_thread

pytestmark = pytest.mark.usefixtures("no_bundled_model")  # counts follow from the weights: pinned random ones

SMALL_GRID = ["--points-per-side", "3", "--crop-layers", "0", "--min-predicted-iou", "0", "--min-stability", "0"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DATAENGINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'objects'}")
    cli = typer.Typer()
    segment_cmd.register(cli)
    return cli


@pytest.fixture
def ingested(tmp_path: Path, app: typer.Typer) -> tuple[str, SyntheticVideo]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        _, video_id, video = ingest_tiny(tmp_path, catalog)
    finally:
        catalog.dispose()
    return video_id, video


@pytest.fixture
def video_id(ingested: tuple[str, SyntheticVideo]) -> str:
    return ingested[0]


def invoke(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_auto_masklets_prints_the_candidates_and_stores_them(app: typer.Typer, video_id: str) -> None:
    output = invoke(app, "auto-masklets", video_id, *SMALL_GRID, "--max-candidates", "2")
    assert "model: sam2-compact (random initialisation, not registered)" in output
    assert "grid 3 points per side: 9 points -> 27 masks" in output
    rows = [line.split() for line in output.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"] and all(row[2].endswith("/8") for row in rows)
    assert f"stored 2 auto masklets of {video_id} in verification" in output


def test_auto_masklets_enqueue_sends_them_through_verification(app: typer.Typer, video_id: str, tmp_path: Path) -> None:
    annotate_cmd.register(app)  # `dataengine verify` works what --enqueue queued
    output = invoke(app, "auto-masklets", video_id, *SMALL_GRID, "--max-candidates", "3", "--enqueue")
    assert f"sent 3 auto masklets of {video_id} to verification" in output
    table = [line.split() for line in output.splitlines() if line.strip()[:1].isdigit()]

    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with catalog.read() as session:
            truth_objects = set(session.scalars(select(MaskletRow.object_id).where(MaskletRow.source == "ground_truth")))
            auto = session.execute(
                select(MaskletRow.id, MaskletRow.object_id, MaskletRow.status).where(MaskletRow.source == "auto")
            ).all()
        assert [(int(row[0]), int(row[1])) for row in table] == [(r.object_id, r.id) for r in auto]
        assert min(r.object_id for r in auto) > max(truth_objects)  # ids of their own, never a ground-truth object's
        assert {r.status for r in auto} == {"in_verification"}
        with TaskQueue(catalog) as queue:
            waiting = queue.list_tasks(Queue.VERIFY, TaskStatus.READY)
        assert sorted(t.masklet_id for t in waiting) == sorted(r.id for r in auto)

        verified = invoke(app, "verify", "--model", "simulated")
        assert "verdicts: " in verified
        with catalog.read() as session:
            statuses = dict(session.execute(select(MaskletRow.id, MaskletRow.status).where(MaskletRow.source == "auto")).all())
            verdicts = dict(session.execute(select(VerificationRow.masklet_id, VerificationRow.verdict)).all())
        assert all(statuses[r.id] == verdicts[r.id] for r in auto)  # every candidate judged, and routed by its verdict
        with TaskQueue(catalog) as queue:
            assert all(s.pending == 0 for s in queue.stats())
    finally:
        catalog.dispose()


def test_with_the_default_thresholds_random_weights_keep_nothing_and_say_why(app: typer.Typer, video_id: str) -> None:
    output = invoke(app, "auto-masklets", video_id, "--points-per-side", "2", "--crop-layers", "0")
    assert "0 kept" in output and "nothing stored" in output and "random weights" in output


def test_track_writes_sav_folders_that_evaluate_reads(
    app: typer.Typer, ingested: tuple[str, SyntheticVideo], tmp_path: Path
) -> None:
    video_id, video = ingested
    output = invoke(app, "track", video_id, "--frame", "4", "--point", "40,30", "--out", str(tmp_path / "pred"))
    folder = tmp_path / "pred" / video_id / "000"
    assert f"wrote 8 masks to {folder}" in output and "object 0: visible on" in output
    assert len(list(folder.glob("*.png"))) == 8
    truth = [replace(m, video_id=video_id) for m in video.masklets if m.object_id == 0]
    write_sav_folders(tmp_path / "gt", truth)
    assert len(evaluate_folders(tmp_path / "gt", tmp_path / "pred").objects) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["auto-masklets", "nope"], "no video 'nope' in the catalog"),
        (["auto-masklets", "{video}", "--model", "no-such-model"], "no model named 'no-such-model'"),
        (["track", "nope", "--frame", "0", "--point", "1,1", "--out", "o"], "no video 'nope'"),
        (["track", "{video}", "--frame", "8", "--point", "1,1", "--out", "o"], "frame 8 is out of range"),
        (["track", "{video}", "--frame", "0", "--point", "200,1", "--out", "o"], "outside the 96x64 frame"),
        (["track", "{video}", "--frame", "0", "--point", "1;1", "--out", "o"], "--point must be X,Y"),
        (["track", "{video}", "--frame", "0", "--point", "1,1", "--out", "o", "--model", "facebook/none"],
         "not in the local Hugging Face cache"),
    ],
)
def test_bad_input_is_one_error_line(app: typer.Typer, video_id: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [a.replace("{video}", video_id) for a in args])
    assert result.exit_code == 2, result.output
    assert "error: " in result.output and message in result.output
    assert "Traceback" not in result.output
