"""The dashboards' data: per-phase annotation time over time, verdicts, queues, throughput, models.

The headline is the SAM 2 paper's: seconds per frame by phase, each phase faster than the
last. Around it, what an operator of a data engine watches: edited-frame percentage and
clicks per clicked frame (how much the model helps), verification outcomes (how good the
masklets are), queue depth and waiting time (where work piles up), masklets per hour (how
fast the dataset grows), and validation J&F by model version with promotions marked (whether
retraining pays off).

Every figure per phase reuses :func:`engine.metrics.summarize`, bucket by bucket, so a
dashboard and ``dataengine metrics`` never disagree on a definition. Pure: records in
(:class:`ReportInputs`, loaded by :mod:`storage.report_data`), a :class:`Dashboard` out, and
:func:`dashboard_tables` flattens it into the plain rows that Prefect table artifacts,
Parquet files and the HTML page all show.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.annotation import AnnotationEvent
from engine.metrics import PAPER_TABLE_1, MaskletRecord, PhaseMetrics, Work, summarize
from engine.model_registry import CHAMPION, ModelVersion, previous_alias
from engine.queues import Queue, QueueStats, TaskStatus

BUCKETS = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=7),
)
MAX_BUCKETS = 48  # points per series: enough to see a trend, few enough to read
DEPTH_STEPS = 120  # queue depth is replayed at a finer step: a backlog can come and go within a bucket
VALIDATION_JF = "val_jf"  # the registry's metric key for validation J&F (training records it)
PROMOTION = "promotion"  # where training records its promotion decision in a version's metrics
PAPER_SPEEDUPS = {p.phase: PAPER_TABLE_1[0].seconds_per_frame / p.seconds_per_frame for p in PAPER_TABLE_1}


@dataclass(frozen=True)
class TimedMasklet:
    """A counted masklet (manual or auto, submitted) and when it was submitted."""

    record: MaskletRecord
    submitted_at: datetime


@dataclass(frozen=True)
class VerdictRecord:
    masklet_id: int
    verdict: str
    at: datetime


@dataclass(frozen=True)
class TaskTransition:
    """One line of a task's history: the status it moved to, and when."""

    task_id: int
    queue: Queue
    to_status: TaskStatus
    at: datetime


@dataclass(frozen=True)
class ReportInputs:
    """Everything a dashboard is computed from, as the catalog and registry hold it now."""

    now: datetime
    phase_rows: tuple[PhaseMetrics, ...]
    masklets: tuple[TimedMasklet, ...]
    events: tuple[AnnotationEvent, ...]
    verdicts: tuple[VerdictRecord, ...]
    queues: tuple[QueueStats, ...]
    transitions: tuple[TaskTransition, ...]  # in the order they happened
    models: tuple[ModelVersion, ...]


@dataclass(frozen=True)
class TimePoint:
    """One group of masklets (a phase's annotation or refinement) in one time bucket."""

    series: str  # "Phase 1", "Phase 3 refine", ...
    phase: int | None
    work: Work
    start: datetime
    masklets: int
    frames: int
    seconds_per_frame: float
    edited_frame_pct: float
    clicks_per_clicked_frame: float
    masklets_per_wall_hour: float  # submitted per hour of the clock: how fast the dataset grows


@dataclass(frozen=True)
class VerdictPoint:
    start: datetime
    verdict: str
    count: int


@dataclass(frozen=True)
class DepthPoint:
    """How many tasks of a queue were waiting (ready) and being worked (leased) at a moment."""

    queue: Queue
    at: datetime
    ready: int
    leased: int


@dataclass(frozen=True)
class QueueWait:
    """How long tasks waited between becoming ready and being claimed, per queue."""

    queue: Queue
    waits: int
    median_s: float
    p90_s: float
    max_s: float
    oldest_ready_age_s: float | None  # the oldest task waiting now (None: nothing waits)


@dataclass(frozen=True)
class ModelPoint:
    """A registered model version and its validation figures."""

    name: str
    version: int
    ref: str
    created_at: datetime
    val_jf: float | None
    metrics: Mapping[str, float]  # every numeric metric recorded
    aliases: tuple[str, ...]
    promoted: bool  # champion now, champion before, or promoted by training's gate
    parent_ref: str | None
    decision: str | None = None  # the promotion gate's reason, where training recorded one


@dataclass(frozen=True)
class Speedup:
    """A phase's seconds per frame against Phase 1's, beside the paper's."""

    phase: int
    seconds_per_frame: float
    speedup: float
    paper_speedup: float


@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    bucket: timedelta
    phase_rows: tuple[PhaseMetrics, ...]
    speedups: tuple[Speedup, ...]
    time_series: tuple[TimePoint, ...]
    verdicts_over_time: tuple[VerdictPoint, ...]
    queues: tuple[QueueStats, ...]
    depth: tuple[DepthPoint, ...]
    waits: tuple[QueueWait, ...]
    models: tuple[ModelPoint, ...]
    totals: Mapping[str, int] = field(default_factory=dict)


def build_dashboard(inputs: ReportInputs) -> Dashboard:
    times = (
        [m.submitted_at for m in inputs.masklets] + [t.at for t in inputs.transitions] + [v.at for v in inputs.verdicts]
    )
    bucket = choose_bucket(min(times, default=inputs.now), max(times, default=inputs.now))
    return Dashboard(
        generated_at=inputs.now,
        bucket=bucket,
        phase_rows=inputs.phase_rows,
        speedups=speedups(inputs.phase_rows),
        time_series=phase_time_series(inputs.masklets, inputs.events, bucket),
        verdicts_over_time=verdicts_over_time(inputs.verdicts, bucket),
        queues=inputs.queues,
        depth=queue_depth(inputs.transitions),
        waits=queue_waits(inputs.transitions, inputs.queues),
        models=model_points(inputs.models),
        totals=_totals(inputs),
    )


def choose_bucket(first: datetime, last: datetime) -> timedelta:
    """The narrowest of :data:`BUCKETS` that covers ``first`` to ``last`` in at most MAX_BUCKETS."""
    span = max(last - first, timedelta(0))
    for width in BUCKETS:
        if span / width < MAX_BUCKETS:
            return width
    return BUCKETS[-1]


def bucket_start(at: datetime, width: timedelta) -> datetime:
    """The start of the bucket holding ``at`` (buckets are aligned to the Unix epoch, in UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    seconds = width.total_seconds()
    return epoch + timedelta(seconds=math.floor((at - epoch).total_seconds() / seconds) * seconds)


def speedups(rows: Sequence[PhaseMetrics]) -> tuple[Speedup, ...]:
    """Phase 2 and 3 seconds per frame against Phase 1's (annotation only, all model versions)."""
    annotated = {
        r.phase: r for r in rows if r.work is Work.ANNOTATE and r.model_version_id is None and r.annotator is None
    }
    phase1 = annotated.get(1)
    if phase1 is None or not _finite(phase1.seconds_per_frame):
        return ()
    return tuple(
        Speedup(
            phase, row.seconds_per_frame, _ratio(phase1.seconds_per_frame, row.seconds_per_frame), PAPER_SPEEDUPS[phase]
        )
        for phase, row in sorted(annotated.items(), key=lambda kv: kv[0] or 0)
        if phase in (2, 3)
    )


def phase_time_series(
    masklets: Sequence[TimedMasklet], events: Iterable[AnnotationEvent], width: timedelta
) -> tuple[TimePoint, ...]:
    """Per phase and kind of work, the metrics of the masklets submitted in each time bucket.

    Auto masklets take no annotator time, so they have no series here (their verdicts do).
    """
    by_masklet: dict[int, list[AnnotationEvent]] = defaultdict(list)
    for event in events:
        if event.masklet_id is not None:
            by_masklet[event.masklet_id].append(event)
    buckets: dict[datetime, list[MaskletRecord]] = defaultdict(list)
    for m in masklets:
        if m.record.work is not Work.AUTO:
            buckets[bucket_start(m.submitted_at, width)].append(m.record)
    hours = width.total_seconds() / 3600.0
    points = []
    for start in sorted(buckets):
        records = buckets[start]
        bucket_events = [e for r in records for e in by_masklet.get(r.masklet_id, ())]
        for row in summarize(records, bucket_events, (), {}):
            points.append(
                TimePoint(
                    series=row.label,
                    phase=row.phase,
                    work=row.work,
                    start=start,
                    masklets=row.masklets,
                    frames=row.frames,
                    seconds_per_frame=row.seconds_per_frame,
                    edited_frame_pct=row.edited_frame_pct,
                    clicks_per_clicked_frame=row.clicks_per_clicked_frame,
                    masklets_per_wall_hour=row.masklets / hours,
                )
            )
    return tuple(points)


def verdicts_over_time(verdicts: Sequence[VerdictRecord], width: timedelta) -> tuple[VerdictPoint, ...]:
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for v in verdicts:
        counts[(bucket_start(v.at, width), v.verdict)] += 1
    return tuple(VerdictPoint(start, verdict, n) for (start, verdict), n in sorted(counts.items()))


def queue_depth(transitions: Sequence[TaskTransition]) -> tuple[DepthPoint, ...]:
    """Per queue, the most tasks waiting (ready) and being worked (leased) in each step of the history.

    Replayed from the task history in :data:`DEPTH_STEPS` equal steps; the peak of a step, not
    its last moment, so a backlog that built up and drained between two steps still shows. The
    last point is the state the history ends in.
    """
    if not transitions:
        return ()
    first, last = transitions[0].at, transitions[-1].at
    step = max((last - first) / DEPTH_STEPS, timedelta(seconds=1))
    status: dict[int, TaskStatus] = {}
    counts: dict[Queue, dict[TaskStatus, int]] = defaultdict(lambda: defaultdict(int))
    peaks: dict[Queue, tuple[int, int]] = {}
    points: list[DepthPoint] = []
    end = first + step

    def close_step(at: datetime) -> None:
        for q, (ready, leased) in peaks.items():
            points.append(DepthPoint(q, at, ready, leased))
            peaks[q] = (counts[q][TaskStatus.READY], counts[q][TaskStatus.LEASED])

    for t in transitions:
        while t.at > end:
            close_step(end)
            end += step
        old = status.get(t.task_id)
        if old is not None:
            counts[t.queue][old] -= 1
        counts[t.queue][t.to_status] += 1
        status[t.task_id] = t.to_status
        ready, leased = peaks.get(t.queue, (0, 0))
        peaks[t.queue] = (
            max(ready, counts[t.queue][TaskStatus.READY]),
            max(leased, counts[t.queue][TaskStatus.LEASED]),
        )
    close_step(end)
    close_step(end + step)  # and where the history leaves each queue
    return tuple(points)


def queue_waits(transitions: Sequence[TaskTransition], queues: Sequence[QueueStats]) -> tuple[QueueWait, ...]:
    """Per queue: the waits from each time a task became ready to its next claim, and the oldest waiting now."""
    ready_since: dict[int, datetime] = {}
    waits: dict[Queue, list[float]] = defaultdict(list)
    for t in transitions:
        if t.to_status is TaskStatus.READY:
            ready_since[t.task_id] = t.at
        elif t.to_status is TaskStatus.LEASED and t.task_id in ready_since:
            waits[t.queue].append(max(0.0, (t.at - ready_since.pop(t.task_id)).total_seconds()))
        else:
            ready_since.pop(t.task_id, None)
    oldest = {s.queue: s.oldest_ready_age_s for s in queues}
    result = []
    for q in Queue:
        values = sorted(waits.get(q, ()))
        if not values and oldest.get(q) is None:
            continue
        result.append(
            QueueWait(
                queue=q,
                waits=len(values),
                median_s=statistics.median(values) if values else math.nan,
                p90_s=_quantile(values, 0.9),
                max_s=values[-1] if values else math.nan,
                oldest_ready_age_s=oldest.get(q),
            )
        )
    return tuple(result)


def model_points(versions: Sequence[ModelVersion]) -> tuple[ModelPoint, ...]:
    """Each version with its validation J&F, oldest first.

    Promoted: the gate promoted it (training records each decision under ``promotion``), or
    it is the champion, or was the one before (the registry keeps only those two aliases).
    """
    promoted_aliases = {CHAMPION, previous_alias(CHAMPION)}
    points = []
    for v in sorted(versions, key=lambda v: (v.created_at, v.name, v.version)):
        numeric = {k: float(x) for k, x in v.metrics.items() if isinstance(x, (int, float)) and not isinstance(x, bool)}
        jf = numeric.get(VALIDATION_JF)
        decision = v.metrics.get(PROMOTION) if isinstance(v.metrics.get(PROMOTION), Mapping) else {}
        points.append(
            ModelPoint(
                name=v.name,
                version=v.version,
                ref=v.ref,
                created_at=v.created_at,
                val_jf=jf if jf is not None and math.isfinite(jf) else None,
                metrics=numeric,
                aliases=v.aliases,
                promoted=bool(promoted_aliases & set(v.aliases)) or decision.get("promoted") is True,
                parent_ref=v.parent_ref,
                decision=decision.get("reason") if isinstance(decision.get("reason"), str) else None,
            )
        )
    return tuple(points)


# --- flat tables --------------------------------------------------------------------------


def dashboard_tables(d: Dashboard) -> dict[str, list[dict[str, Any]]]:
    """The dashboard as named tables of plain records (NaN as None), one per chart or table."""
    tables: dict[str, list[dict[str, Any]]] = {
        "phase_metrics": [_phase_record(r) for r in d.phase_rows],
        "speedups": [
            {
                "phase": s.phase,
                "seconds_per_frame": s.seconds_per_frame,
                "speedup_vs_phase1": s.speedup,
                "paper_speedup": s.paper_speedup,
            }
            for s in d.speedups
        ],
        "phase_time_series": [
            {
                "series": p.series,
                "phase": p.phase,
                "work": p.work.value,
                "bucket_start": p.start,
                "bucket_seconds": d.bucket.total_seconds(),
                "masklets": p.masklets,
                "frames": p.frames,
                "seconds_per_frame": p.seconds_per_frame,
                "edited_frame_pct": p.edited_frame_pct,
                "clicks_per_clicked_frame": p.clicks_per_clicked_frame,
                "masklets_per_wall_hour": p.masklets_per_wall_hour,
            }
            for p in d.time_series
        ],
        "verification_outcomes": _verification_outcomes(d.phase_rows),
        "verdicts_over_time": [
            {"bucket_start": p.start, "verdict": p.verdict, "masklets": p.count} for p in d.verdicts_over_time
        ],
        "queues": [
            {
                "queue": s.queue.value,
                "ready": s.ready,
                "leased": s.leased,
                "done": s.done,
                "dead": s.dead,
                "oldest_ready_age_s": s.oldest_ready_age_s,
            }
            for s in d.queues
        ],
        "queue_depth": [{"queue": p.queue.value, "at": p.at, "ready": p.ready, "leased": p.leased} for p in d.depth],
        "queue_waits": [
            {
                "queue": w.queue.value,
                "waits": w.waits,
                "median_s": w.median_s,
                "p90_s": w.p90_s,
                "max_s": w.max_s,
                "oldest_ready_age_s": w.oldest_ready_age_s,
            }
            for w in d.waits
        ],
        "model_versions": [
            {
                "model": m.ref,
                "name": m.name,
                "version": m.version,
                "created_at": m.created_at,
                "val_jf": m.val_jf,
                "promoted": m.promoted,
                "aliases": ", ".join(m.aliases),
                "parent": m.parent_ref,
                "decision": m.decision,
                "metrics": ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items())),
            }
            for m in d.models
        ],
    }
    return {name: [{k: _plain(v) for k, v in row.items()} for row in rows] for name, rows in tables.items()}


def _phase_record(row: PhaseMetrics) -> dict[str, Any]:
    record = row.as_record()
    record["label"] = row.label
    record["verdicts"] = ", ".join(f"{k} {v}" for k, v in row.verdicts.items())
    return record


def _verification_outcomes(rows: Sequence[PhaseMetrics]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r.verdicts:
            out.append(
                {
                    "group": r.label,
                    "satisfactory": r.verdicts.get("satisfactory", 0),
                    "unsatisfactory": r.verdicts.get("unsatisfactory", 0),
                    "rejected": r.verdicts.get("rejected", 0),
                }
            )
    return out


def _totals(inputs: ReportInputs) -> dict[str, int]:
    verdicts: dict[str, int] = defaultdict(int)
    for v in inputs.verdicts:
        verdicts[v.verdict] += 1
    return {
        "masklets": len(inputs.masklets),
        "frames": sum(m.record.frame_count for m in inputs.masklets),
        "verdicts": len(inputs.verdicts),
        "in_dataset": verdicts.get("satisfactory", 0),
        "open_tasks": sum(s.pending for s in inputs.queues),
        "dead_tasks": sum(s.dead for s in inputs.queues),
        "model_versions": len(inputs.models),
    }


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = q * (len(sorted_values) - 1)
    low, high = math.floor(index), math.ceil(index)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (index - low)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator and _finite(denominator) else math.nan


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
