"""The report flow and ``dataengine report``: artifacts, a self-contained HTML page, Parquet tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from typer.testing import CliRunner

from engine.simulated_segmenter import SimulatedSegmenterSource
from flows.cli import report_cmd
from flows.report import ARTIFACT_TABLES, report
from phases.workers import Worker, drain, enqueue_annotation, verify_or_refine
from storage.model_registry import SqlModelRegistry
from tests.flows.conftest import SmallEngine


def work_all_phases(engine: SmallEngine) -> None:
    """Phases 1, 2 and 3 on the same objects, then verification: what the dashboards summarise."""
    res = engine.res
    models = SimulatedSegmenterSource()
    for phase in (1, 2, 3):
        enqueue_annotation(res.queue, res.annotations, phase)
        drain(lambda: Worker("ann", res.queue, res.annotations, models).annotate_one(phase))  # noqa: B023
    drain(
        verify_or_refine(
            Worker("ver", res.queue, res.annotations, models), Worker("ref", res.queue, res.annotations, models)
        )
    )
    registry = SqlModelRegistry(res.catalog, res.store, engine.root / "model-cache")
    for jf in (0.61, 0.74):
        version = registry.register("sam2-compact", {"model_type": "sam2"}, None, metrics={"val_jf": jf})
        registry.set_alias("sam2-compact", "champion", version.version)


@pytest.mark.usefixtures("prefect_harness")
def test_the_report_flow_publishes_artifacts_html_and_parquet(small_engine: SmallEngine, tmp_path: Path) -> None:
    work_all_phases(small_engine)
    out = tmp_path / "report"

    result = report(out_dir=str(out), **small_engine.urls)

    assert result.headline.startswith("Phase 2 ") and "Phase 3 " in result.headline and "paper 8.4x" in result.headline
    html = Path(result.html).read_text()
    assert (
        html.startswith("<!doctype html>")
        and "<script" not in html
        and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    )
    assert html.count("<svg") >= 8 and "Seconds per frame by phase" in html and "sam2-compact@2" in html
    tables = {Path(p).stem: pq.read_table(p) for p in result.parquet}
    assert tables["phase_metrics"].num_rows == 3
    assert set(tables["phase_metrics"].column("phase").to_pylist()) == {1, 2, 3}
    assert tables["verification_outcomes"].column("satisfactory").to_pylist() == [2, 2, 2]
    assert tables["model_versions"].column("promoted").to_pylist() == [True, True]  # previous champion, champion
    assert tables["phase_time_series"].num_rows >= 3 and tables["queues"].num_rows == 5

    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[*ARTIFACT_TABLES.values(), "dataengine-report"]))
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == set(result.artifacts)
    assert by_key["dataengine-report"].type == "markdown" and "Phase 3" in str(by_key["dataengine-report"].data)
    assert by_key["dataengine-phase-metrics"].type == "table"


def test_the_report_command_writes_and_opens_the_dashboard(
    small_engine: SmallEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work_all_phases(small_engine)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", small_engine.catalog_url)
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", small_engine.object_store_url)
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    opened: list[str] = []
    monkeypatch.setattr(report_cmd.webbrowser, "open", opened.append)
    app = typer.Typer()
    report_cmd.register(app)
    app.command("noop")(lambda: None)  # two commands, so typer keeps the command name

    out = tmp_path / "dash"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--open"])

    assert result.exit_code == 0, result.output
    assert "x Phase 1 (paper 5.1x)" in result.output and f"dashboard: {out / 'dashboard.html'}" in result.output
    assert opened == [(out / "dashboard.html").resolve().as_uri()]
    assert (out / "phase_metrics.parquet").is_file() and (out / "queue_waits.parquet").is_file()


def test_an_empty_catalog_gives_an_empty_dashboard_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'objects'}")
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    app = typer.Typer()
    report_cmd.register(app)
    app.command("noop")(lambda: None)

    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "dash")])

    assert result.exit_code == 0, result.output
    assert "no Phase 1 baseline yet" in result.output
    html = (tmp_path / "dash" / "dashboard.html").read_text()
    assert "No annotated masklets yet" in html and "no data yet" in html
    assert pq.read_table(tmp_path / "dash" / "phase_metrics.parquet").num_rows == 0


@pytest.mark.usefixtures("prefect_harness")
def test_the_report_command_can_publish_artifacts_through_the_flow(
    small_engine: SmallEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work_all_phases(small_engine)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", small_engine.catalog_url)
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", small_engine.object_store_url)
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    app = typer.Typer()
    report_cmd.register(app)
    app.command("noop")(lambda: None)

    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "dash"), "--artifacts"])

    assert result.exit_code == 0, result.output
    assert "Parquet: 9 tables" in result.output and (tmp_path / "dash" / "dashboard.html").is_file()
    with get_client(sync_client=True) as client:
        (summary,) = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dataengine-report"]))
        )
    assert str(tmp_path / "dash" / "dashboard.html") in str(summary.data)
