"""The dashboards' data: time buckets, per-phase series, queue depth and waits, models, flat tables, HTML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from engine.annotation import Action, AnnotationEvent
from engine.metrics import MaskletRecord, Work, summarize
from engine.model_registry import ModelVersion
from engine.queues import Queue, QueueStats, TaskStatus
from engine.report import (
    ReportInputs,
    TaskTransition,
    TimedMasklet,
    VerdictRecord,
    bucket_start,
    build_dashboard,
    choose_bucket,
    dashboard_tables,
    model_points,
    phase_time_series,
    queue_depth,
    queue_waits,
    speedups,
)
from engine.report_html import render_html
from engine.report_svg import Mark, bar_chart, line_chart

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def masklet(
    masklet_id: int, phase: int, when: float, *, frames: int = 10, edited: int = 10, work: Work = Work.ANNOTATE
) -> TimedMasklet:
    return TimedMasklet(MaskletRecord(masklet_id, "v", masklet_id, phase, work, "ann", None, frames, edited), at(when))


def clicks(masklet_id: int, seconds: float, n: int = 1, frame: int = 0) -> list[AnnotationEvent]:
    return [
        AnnotationEvent(None, masklet_id, "v", "ann", None, frame, Action.CLICK, MappingProxyType({}), T0, seconds / n)
        for _ in range(n)
    ]


def version(number: int, jf: float | None, aliases: tuple[str, ...] = (), **metrics: object) -> ModelVersion:
    values = dict(metrics) | ({} if jf is None else {"val_jf": jf})
    return ModelVersion(number, "sam2-compact", number, None, None, {}, None, None, values, None, at(number), aliases)


def test_buckets_are_the_narrowest_nice_width_that_fits_and_aligned() -> None:
    assert choose_bucket(T0, T0) == timedelta(seconds=10)
    assert choose_bucket(T0, at(40 * 60)) == timedelta(minutes=1)  # 40 buckets of a minute
    assert choose_bucket(T0, at(3 * 3600)) == timedelta(minutes=5)
    assert choose_bucket(T0, at(30 * 86400)) == timedelta(days=1)
    assert choose_bucket(T0, at(10 * 365 * 86400)) == timedelta(days=7)  # the widest, however long
    assert bucket_start(at(61), timedelta(minutes=1)) == at(60)
    assert bucket_start(at(59.9), timedelta(minutes=1)) == T0


def test_time_series_are_summarize_applied_bucket_by_bucket() -> None:
    masklets = [masklet(1, 1, 5), masklet(2, 1, 70), masklet(3, 3, 75, edited=2), masklet(4, 3, 80, work=Work.AUTO)]
    events = [*clicks(1, 100.0), *clicks(2, 300.0), *clicks(3, 20.0, n=4)]

    points = phase_time_series(masklets, events, timedelta(minutes=1))

    assert [(p.series, p.start) for p in points] == [("Phase 1", T0), ("Phase 1", at(60)), ("Phase 3", at(60))]
    second = [p for p in points if p.start == at(60)]
    expected = summarize([masklets[1].record, masklets[2].record], [*clicks(2, 300.0), *clicks(3, 20.0, n=4)], (), {})
    for point, row in zip(second, expected, strict=True):
        assert point.seconds_per_frame == pytest.approx(row.seconds_per_frame)
        assert point.edited_frame_pct == pytest.approx(row.edited_frame_pct)
        assert point.clicks_per_clicked_frame == pytest.approx(row.clicks_per_clicked_frame)
    assert points[0].seconds_per_frame == pytest.approx(10.0) and points[0].masklets_per_wall_hour == pytest.approx(
        60.0
    )
    assert second[1].edited_frame_pct == pytest.approx(20.0) and second[1].clicks_per_clicked_frame == pytest.approx(
        4.0
    )


def test_speedups_against_phase_1_beside_the_paper_s() -> None:
    rows = summarize(
        [masklets.record for masklets in (masklet(1, 1, 0), masklet(2, 2, 0), masklet(3, 3, 0))],
        [*clicks(1, 378.0), *clicks(2, 74.0), *clicks(3, 45.0)],
        (),
        {},
    )
    phase2, phase3 = speedups(rows)
    assert (phase2.phase, phase3.phase) == (2, 3)
    assert phase2.speedup == pytest.approx(378.0 / 74.0) and phase2.paper_speedup == pytest.approx(37.8 / 7.4)
    assert phase3.speedup == pytest.approx(8.4) and phase3.seconds_per_frame == pytest.approx(4.5)
    assert speedups(rows[1:]) == ()  # no Phase 1: no baseline


def t(task_id: int, queue: Queue, status: TaskStatus, seconds: float) -> TaskTransition:
    return TaskTransition(task_id, queue, status, at(seconds))


def test_queue_depth_keeps_each_step_s_peak_and_waits_pair_ready_with_the_next_claim() -> None:
    q = Queue.VERIFY
    history = [
        t(1, q, TaskStatus.READY, 0),
        t(2, q, TaskStatus.READY, 0),
        t(3, q, TaskStatus.READY, 1),
        t(1, q, TaskStatus.LEASED, 10),  # waited 10 s
        t(1, q, TaskStatus.READY, 20),  # failed, back in the queue
        t(1, q, TaskStatus.LEASED, 50),  # waited 30 s more
        t(2, q, TaskStatus.LEASED, 60),  # waited 60 s
        t(1, q, TaskStatus.DONE, 70),
        t(2, q, TaskStatus.DONE, 120),
    ]
    depth = queue_depth(history)
    assert max(p.ready for p in depth) == 3 and depth[-1].ready == 1 and depth[-1].leased == 0
    assert all(p.queue is q for p in depth) and len(depth) <= 121
    assert [p.at for p in depth] == sorted(p.at for p in depth)

    stats = [QueueStats(q, ready=1, done=2, oldest_ready_age_s=119.0)]
    (wait,) = queue_waits(history, stats)
    assert wait.waits == 3 and wait.median_s == pytest.approx(30.0) and wait.max_s == pytest.approx(60.0)
    assert wait.p90_s == pytest.approx(54.0) and wait.oldest_ready_age_s == 119.0
    assert queue_depth([]) == () and queue_waits([], []) == ()


def test_models_in_order_with_promotions_from_aliases_and_the_gate_s_record() -> None:
    versions = [
        version(3, 0.78, ("champion",)),
        version(1, 0.60, promotion={"promoted": True, "reason": "first version"}),
        version(2, 0.71, ("previous-champion",)),
        version(4, 0.70, ("challenger",), promotion={"promoted": False, "reason": "worse than the champion by 0.08"}),
        version(5, None, epochs=3, flag=True),
    ]
    points = model_points(versions)
    assert [p.version for p in points] == [1, 2, 3, 4, 5]
    assert [p.promoted for p in points] == [True, True, True, False, False]
    assert points[3].decision == "worse than the champion by 0.08" and points[4].val_jf is None
    assert points[4].metrics == {"epochs": 3.0}  # numbers only; booleans and records are not metrics


def inputs() -> ReportInputs:
    masklets = [masklet(1, 1, 0), masklet(2, 3, 30, edited=3)]
    events = [*clicks(1, 300.0), *clicks(2, 40.0, n=2)]
    rows = summarize([m.record for m in masklets], events, [(1, "satisfactory"), (2, "rejected")], {})
    return ReportInputs(
        now=at(200),
        phase_rows=tuple(rows),
        masklets=tuple(masklets),
        events=tuple(events),
        verdicts=(VerdictRecord(1, "satisfactory", at(40)), VerdictRecord(2, "rejected", at(45))),
        queues=(QueueStats(Queue.VERIFY, done=2),),
        transitions=(t(7, Queue.VERIFY, TaskStatus.READY, 0), t(7, Queue.VERIFY, TaskStatus.LEASED, 4)),
        models=(version(1, 0.6, ("champion",)),),
    )


def test_dashboard_tables_are_plain_records_without_nan() -> None:
    dashboard = build_dashboard(inputs())
    tables = dashboard_tables(dashboard)
    assert set(tables) == {
        "phase_metrics",
        "speedups",
        "phase_time_series",
        "verification_outcomes",
        "verdicts_over_time",
        "queues",
        "queue_depth",
        "queue_waits",
        "model_versions",
    }
    assert [r["label"] for r in tables["phase_metrics"]] == ["Phase 1", "Phase 3"]
    assert tables["verification_outcomes"] == [
        {"group": "Phase 1", "satisfactory": 1, "unsatisfactory": 0, "rejected": 0},
        {"group": "Phase 3", "satisfactory": 0, "unsatisfactory": 0, "rejected": 1},
    ]
    assert tables["speedups"] == [
        {"phase": 3, "seconds_per_frame": 4.0, "speedup_vs_phase1": 7.5, "paper_speedup": 37.8 / 4.5}
    ]
    for rows in tables.values():
        for row in rows:
            assert not any(isinstance(v, float) and math.isnan(v) for v in row.values())
    assert dashboard.totals["in_dataset"] == 1 and dashboard.totals["masklets"] == 2


def test_the_page_is_self_contained_valid_svg_and_escapes_what_it_shows() -> None:
    data = inputs()
    weird = version(2, 0.7, ("champion",), promotion={"promoted": True, "reason": "<script>alert(1)</script>"})
    page = render_html(
        build_dashboard(ReportInputs(**{**data.__dict__, "models": (weird,)})), catalog="sqlite:///x<y>.db"
    )

    assert "<script>" not in page and "&lt;script&gt;" in page and "x&lt;y&gt;.db" in page
    assert "7.5×" in page and "(paper 8.4×)" in page
    assert "src=" not in page and "href=" not in page  # nothing fetched from anywhere
    for svg in page.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # each chart is well-formed XML


def test_charts_draw_series_marks_and_gaps() -> None:
    chart = line_chart(
        {"Phase 1": [(at(0), 10.0), (at(60), float("nan")), (at(120), 8.0)], "Phase 3": [(at(0), 1.0)]},
        title="s per frame",
        y_label="s",
        marks=[Mark(at(120), 8.0, "promoted")],
    )
    root = ET.fromstring(chart)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 1  # Phase 3 has one point: a dot, no line
    assert len(root.findall(f"{ns}circle")) == 3  # NaN is a gap, not a zero
    assert len(root.findall(f"{ns}path")) == 2  # the mark and its legend
    assert "no data yet" in line_chart({}, title="t", y_label="y")
    bars = ET.fromstring(bar_chart(["Phase 1", "auto"], {"ok": [3.0, 0.0], "bad": [1.0, 2.0]}, title="v", y_label="n"))
    assert (
        len([r for r in bars.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]) == 3
    )  # zero-height bars are skipped
