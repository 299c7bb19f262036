"""The ``report`` flow: the dashboards, as Prefect artifacts, an HTML page and Parquet tables.

Every 15 minutes (the deployment's schedule) it reads the catalog and the model registry
(:mod:`storage.report_data`), computes the dashboard (:mod:`engine.report`), and publishes it
three ways: table and markdown artifacts in the Prefect UI (keys ``dataengine-*``, so each
run adds a new version of the same artifacts), ``dashboard.html`` with inline SVG plots, and
one Parquet file per table for BI tools (:mod:`storage.report_files`).
``dataengine report`` writes the same files without Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from engine.report import Dashboard, build_dashboard, dashboard_tables
from engine.report_html import render_html
from flows.resources import Resources, resources
from flows.retries import retry_transient
from storage.model_registry import SqlModelRegistry
from storage.report_data import load_report_inputs
from storage.report_files import WrittenReport, write_report

DEFAULT_OUT = ".dataengine/report"
ARTIFACT_TABLES = {  # table -> artifact key (lowercase letters, digits and dashes, as Prefect wants)
    "phase_metrics": "dataengine-phase-metrics",
    "phase_time_series": "dataengine-phase-time-series",
    "verification_outcomes": "dataengine-verification-outcomes",
    "queues": "dataengine-queues",
    "queue_waits": "dataengine-queue-waits",
    "model_versions": "dataengine-model-versions",
}


@dataclass(frozen=True)
class ReportResult:
    html: str
    parquet: tuple[str, ...]
    artifacts: tuple[str, ...]  # keys of the artifacts published
    headline: str


def dashboard_for(res: Resources) -> Dashboard:
    """The dashboard of a catalog and its model registry, as of now."""
    registry = SqlModelRegistry(res.catalog, res.store, Path(res.settings.model_cache_dir))
    return build_dashboard(load_report_inputs(res.catalog, registry))


def write_dashboard(res: Resources, dashboard: Dashboard, out_dir: Path) -> WrittenReport:
    """``dashboard.html`` and the Parquet tables in ``out_dir``."""
    html = render_html(dashboard, catalog=res.catalog.display_url())
    return write_report(out_dir, html, dashboard_tables(dashboard))


def headline(dashboard: Dashboard) -> str:
    """One line: each later phase's seconds per frame and speedup against Phase 1, beside the paper's."""
    if not dashboard.speedups:
        return "no Phase 1 baseline yet" if not dashboard.phase_rows else "Phase 1 only so far"
    return "; ".join(
        f"Phase {s.phase} {s.seconds_per_frame:.1f} s/frame, {s.speedup:.1f}x Phase 1 (paper {s.paper_speedup:.1f}x)"
        for s in dashboard.speedups
    )


@task(
    name="build-dashboard",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
    timeout_seconds=900,
    cache_policy=NO_CACHE,
)
def build_report(catalog_url: str | None = None, object_store_url: str | None = None) -> Dashboard:
    return dashboard_for(resources(catalog_url, object_store_url))


@task(
    name="write-dashboard",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
    timeout_seconds=300,
    cache_policy=NO_CACHE,
)
def write_report_files(
    dashboard: Dashboard, out_dir: str, catalog_url: str | None = None, object_store_url: str | None = None
) -> WrittenReport:
    return write_dashboard(resources(catalog_url, object_store_url), dashboard, Path(out_dir))


@task(name="publish-artifacts", retries=1, retry_delay_seconds=5, timeout_seconds=300, cache_policy=NO_CACHE)
def publish_artifacts(dashboard: Dashboard, written: WrittenReport) -> list[str]:
    """Tables and a markdown summary in the Prefect UI, under stable keys."""
    tables = dashboard_tables(dashboard)
    for name, key in ARTIFACT_TABLES.items():
        rows = [{k: _cell(v) for k, v in row.items()} for row in tables[name]]
        create_table_artifact(rows, key=key, description=f"dataengine {name.replace('_', ' ')}")
    create_markdown_artifact(
        _markdown(dashboard, tables, written), key="dataengine-report", description="dataengine dashboard"
    )
    return [*ARTIFACT_TABLES.values(), "dataengine-report"]


@flow(name="report", log_prints=False)
def report(
    out_dir: str = DEFAULT_OUT, catalog_url: str | None = None, object_store_url: str | None = None
) -> ReportResult:
    """Compute the dashboards and publish them as artifacts, HTML and Parquet."""
    dashboard = build_report(catalog_url, object_store_url)
    written = write_report_files(dashboard, out_dir, catalog_url, object_store_url)
    keys = publish_artifacts(dashboard, written)
    line = headline(dashboard)
    get_run_logger().info("%s; dashboard at %s", line, written.html)
    return ReportResult(str(written.html), tuple(str(p) for p in written.parquet), tuple(keys), line)


def _markdown(dashboard: Dashboard, tables: dict[str, list[dict[str, Any]]], written: WrittenReport) -> str:
    lines = [
        "# dataengine dashboard",
        "",
        f"**{headline(dashboard)}**",
        "",
        "| phase | masklets | s / frame | edited frames % | clicks / clicked frame "
        "| masklets / annotator hour | J&F | verdicts |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in tables["phase_metrics"]:
        cells = [
            r["label"],
            str(r["masklets"]),
            _md(r["seconds_per_frame"], 1),
            _md(r["edited_frame_pct"], 1),
            _md(r["clicks_per_clicked_frame"], 2),
            _md(r["masklets_per_hour"], 1),
            _md(r["jf"], 3),
            r["verdicts"] or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    totals = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dashboard.totals.items())
    lines += ["", totals, "", f"HTML dashboard: `{written.html}`; Parquet tables: `{written.html.parent}`"]
    return "\n".join(lines)


def _md(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(value: Any) -> Any:
    """Table artifacts are JSON: times as ISO text."""
    return value.isoformat() if hasattr(value, "isoformat") else value
