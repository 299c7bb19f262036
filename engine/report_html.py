"""The dashboard as one self-contained HTML page: tables, inline SVG charts, no scripts, no CDN.

``dataengine report --open`` shows it in a browser; it is also a file to mail or archive, so
everything it needs is inside it. The headline comes first: seconds per frame by phase and
the speedups against Phase 1 beside the SAM 2 paper's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from engine.metrics import PAPER_TABLE_1, Work
from engine.report import Dashboard, dashboard_tables
from engine.report_svg import Mark, bar_chart, line_chart

Column = tuple[str, str, Callable[[Any], str]]  # key, header, formatter

CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",sans-serif;color:#222}
body{margin:24px auto;max-width:1360px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin:0 0 12px}
.headline{font-size:16px;background:#f5f7fb;border-left:4px solid #4C72B0;padding:8px 12px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
th{background:#fafafa;font-weight:600}
td:first-child,th:first-child{text-align:left}
tr.paper td{color:#777;font-style:italic}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.charts svg{width:100%;height:auto;border:1px solid #eee}
.empty{color:#888}
"""


def render_html(d: Dashboard, *, catalog: str = "") -> str:
    tables = dashboard_tables(d)
    sections = [
        _headline(d),
        "<h2>Annotation time by phase</h2>",
        _phase_table(tables["phase_metrics"], d),
        _charts(_time_charts(d)),
        "<h2>Verification</h2>",
        _charts([_verdict_bars(tables["verification_outcomes"]), _verdicts_over_time(d)]),
        _table(
            tables["verification_outcomes"],
            [
                ("group", "masklets of", str),
                ("satisfactory", "satisfactory", _int),
                ("unsatisfactory", "unsatisfactory", _int),
                ("rejected", "rejected", _int),
            ],
        ),
        "<h2>Queues</h2>",
        _table(
            tables["queues"],
            [
                ("queue", "queue", str),
                ("ready", "waiting", _int),
                ("leased", "being worked", _int),
                ("done", "done", _int),
                ("dead", "dead letter", _int),
                ("oldest_ready_age_s", "oldest waiting", _duration),
            ],
        ),
        _charts([_depth_chart(d)]),
        _table(
            tables["queue_waits"],
            [
                ("queue", "queue", str),
                ("waits", "claims", _int),
                ("median_s", "median wait", _duration),
                ("p90_s", "p90 wait", _duration),
                ("max_s", "longest wait", _duration),
            ],
        ),
        "<h2>Models</h2>",
        _charts([_model_chart(d)]),
        _table(
            tables["model_versions"],
            [
                ("model", "version", str),
                ("created_at", "registered", _time),
                ("val_jf", "validation J&F", _num(3)),
                ("promoted", "promoted", lambda v: "yes" if v else ""),
                ("aliases", "aliases", str),
                ("parent", "trained from", lambda v: v or ""),
                ("decision", "promotion decision", str),
                ("metrics", "metrics", str),
            ],
        ),
    ]
    generated = d.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    totals = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in d.totals.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>dataengine dashboard</title><style>{CSS}</style></head><body>"
        f"<h1>dataengine dashboard</h1><p class=meta>generated {generated}"
        + (f" from {escape(catalog)}" if catalog else "")
        + f"; {escape(totals)}; time buckets of {_duration(d.bucket.total_seconds())}</p>"
        + "".join(sections)
        + "</body></html>"
    )


def _headline(d: Dashboard) -> str:
    if not d.speedups:
        phase1 = any(r.phase == 1 and r.work is Work.ANNOTATE for r in d.phase_rows)
        text = "Phase 1 annotated; Phases 2 and 3 not yet" if phase1 else "No annotated masklets yet"
        return f"<p class=headline>{text}.</p>"
    parts = [
        f"Phase {s.phase}: {s.seconds_per_frame:.1f} s per frame, <b>{s.speedup:.1f}×</b> faster than Phase 1 "
        f"(paper {s.paper_speedup:.1f}×)"
        for s in d.speedups
        if math.isfinite(s.speedup)
    ]
    return f"<p class=headline>{'; '.join(parts)}.</p>" if parts else ""


def _phase_table(rows: Sequence[Mapping[str, Any]], d: Dashboard) -> str:
    columns: list[Column] = [
        ("label", "", str),
        ("masklets", "masklets", _int),
        ("frames", "frames", _int),
        ("seconds_per_frame", "s / frame", _num(1)),
        ("speedup", "speedup", lambda v: f"{v:.1f}×"),
        ("edited_frame_pct", "edited frames %", _num(1)),
        ("clicks_per_clicked_frame", "clicks / clicked frame", _num(2)),
        ("masklets_per_hour", "masklets / annotator hour", _num(1)),
        ("jf", "J&F", _num(3)),
        ("alignment_all", "aligned with Phase 1 %", _num(1)),
        ("verdicts", "verdicts", str),
    ]
    phase1 = next((r for r in rows if r["phase"] == 1 and r["work"] == Work.ANNOTATE.value), None)
    paper = {p.phase: p for p in PAPER_TABLE_1}
    body = []
    for row in rows:
        speedup = None
        if phase1 and phase1["seconds_per_frame"] and row["seconds_per_frame"]:
            speedup = phase1["seconds_per_frame"] / row["seconds_per_frame"]
        body.append(_row({**row, "speedup": speedup}, columns))
        reference = paper.get(row["phase"]) if row["work"] == Work.ANNOTATE.value else None
        if reference is not None:
            body.append(
                _row(
                    {
                        "label": f"paper: {reference.model}",
                        "seconds_per_frame": reference.seconds_per_frame,
                        "speedup": PAPER_TABLE_1[0].seconds_per_frame / reference.seconds_per_frame,
                        "edited_frame_pct": reference.edited_frame_pct,
                        "clicks_per_clicked_frame": reference.clicks_per_clicked_frame,
                        "alignment_all": reference.alignment.all,
                    },
                    columns,
                    css="paper",
                )
            )
    if not body:
        return (
            "<p class=empty>No annotated masklets yet: run the annotate flow (or `dataengine annotate --phase 1`).</p>"
        )
    head = "".join(f"<th>{escape(h)}</th>" for _, h, _ in columns)
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _time_charts(d: Dashboard) -> list[str]:
    def series(field: str) -> dict[str, list[tuple[datetime, float | None]]]:
        out: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
        for p in d.time_series:
            out[p.series].append((p.start, getattr(p, field)))
        return out

    return [
        line_chart(series("seconds_per_frame"), title="Seconds per frame by phase", y_label="s / frame"),
        line_chart(series("edited_frame_pct"), title="Edited frames", y_label="% of frames"),
        line_chart(series("clicks_per_clicked_frame"), title="Clicks per clicked frame", y_label="clicks"),
        line_chart(series("masklets_per_wall_hour"), title="Masklets submitted per hour", y_label="masklets / h"),
    ]


def _verdict_bars(rows: Sequence[Mapping[str, Any]]) -> str:
    groups = [r["group"] for r in rows]
    stacks = {v: [float(r[v]) for r in rows] for v in ("satisfactory", "unsatisfactory", "rejected")}
    return bar_chart(groups, stacks, title="Verification outcomes", y_label="masklets")


def _verdicts_over_time(d: Dashboard) -> str:
    series: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
    for p in d.verdicts_over_time:
        series[p.verdict].append((p.start, float(p.count)))
    return line_chart(series, title="Verdicts over time", y_label=f"per {_duration(d.bucket.total_seconds())}")


def _depth_chart(d: Dashboard) -> str:
    series: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
    for p in d.depth:
        series[p.queue.value].append((p.at, float(p.ready)))
    return line_chart(series, title="Queue depth (tasks waiting)", y_label="tasks")


def _model_chart(d: Dashboard) -> str:
    by_name: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    labels: dict[float, str] = {}
    marks = []
    one_name = len({m.name for m in d.models}) == 1
    every = max(1, math.ceil(len(d.models) / 8))  # at most 8 labels, so they never overlap
    for i, m in enumerate(d.models):
        by_name[m.name].append((float(i), m.val_jf))
        if i % every == 0:
            labels[float(i)] = f"v{m.version}" if one_name else f"{m.name.rsplit('/', 1)[-1]}@{m.version}"
        if m.promoted and m.val_jf is not None:
            marks.append(Mark(float(i), m.val_jf, f"{m.ref} promoted ({', '.join(m.aliases) or 'recorded'})"))
    return line_chart(
        by_name, title="Validation J&F by model version", y_label="J&F", marks=marks, x_labels=labels, y_from_zero=False
    )


def _charts(svgs: Sequence[str]) -> str:
    return "<div class=charts>" + "".join(svgs) + "</div>"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    if not rows:
        return "<p class=empty>Nothing yet.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for _, h, _ in columns)
    return f"<table><tr>{head}</tr>{''.join(_row(r, columns) for r in rows)}</table>"


def _row(row: Mapping[str, Any], columns: Sequence[Column], css: str = "") -> str:
    cells = []
    for key, _, fmt in columns:
        value = row.get(key)
        text = "" if value is None else fmt(value)
        cells.append(f"<td>{escape(text)}</td>")
    return f"<tr class='{css}'>" + "".join(cells) + "</tr>" if css else "<tr>" + "".join(cells) + "</tr>"


def _num(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:.{digits}f}"


def _int(v: Any) -> str:
    return f"{int(v):,}"


def _time(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else str(v)


def _duration(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return ""
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
