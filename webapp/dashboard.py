"""The dashboard's data: the report's charts, live, from the catalog.

Seconds per frame per phase over time (one point per submitted masklet, people beside
simulated annotators), edited frames and clicks per clicked frame per phase
(:func:`storage.annotation_metrics.phase_metrics`, the same rows as ``dataengine metrics``),
verification outcomes, queue depths and waiting times, people and their throughput, and model
versions with their validation J&F and promotions.

A person is a worker with an account (``users``); every other worker name is a simulated
annotator. Assembling the data decodes masks (J&F, alignment), so it is cached for a few
seconds: a dozen open dashboards cost one computation.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.annotation import Action
from engine.metrics import GroupBy, Work, masklet_stats
from engine.model_registry import CHAMPION
from engine.queues import Queue
from storage import annotation_events
from storage import tasks as task_queries
from storage.annotation_metrics import phase_metrics
from storage.catalog import Catalog
from storage.queue_schema import TaskHistoryRow
from storage.schema import MaskletRow, ModelAliasRow, ModelVersionRow, VerificationRow
from storage.user_schema import UserRow

MAX_MASKLETS = 2000  # the newest ones: a chart of more points says nothing more
MAX_HISTORY = 20000
WAIT_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class MaskletPoint:
    """One submitted masklet: when, which phase, whose, how many seconds per frame."""

    masklet_id: int
    phase: int | None
    work: str
    annotator: str | None
    person: bool
    submitted_at: datetime
    frames: int
    seconds: float
    seconds_per_frame: float | None


@dataclass(frozen=True)
class PhaseRow:
    label: str
    phase: int | None
    work: str
    masklets: int
    seconds_per_frame: float | None
    edited_frame_pct: float | None
    clicks_per_clicked_frame: float | None
    jf: float | None


@dataclass(frozen=True)
class Outcomes:
    """Verdicts given on the masklets of one phase (``None``: auto masklets)."""

    phase: int | None
    satisfactory: int = 0
    unsatisfactory: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class QueueRow:
    queue: str
    ready: int
    leased: int
    done: int
    dead: int
    oldest_ready_age_s: float | None
    median_wait_s: float | None  # from enqueued to first claimed, over the last week


@dataclass(frozen=True)
class Person:
    name: str
    person: bool
    role: str | None
    masklets: int
    frames: int
    seconds_per_frame: float | None
    masklets_per_hour: float | None
    verdicts: int


@dataclass(frozen=True)
class ModelPoint:
    name: str
    version: int
    val_jf: float | None
    aliases: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class Promotion:
    name: str
    alias: str
    version: int
    at: datetime


@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    masklets: list[MaskletPoint]
    phases: list[PhaseRow]
    outcomes: list[Outcomes]
    queues: list[QueueRow]
    people: list[Person]
    models: list[ModelPoint]
    promotions: list[Promotion]


def dashboard(catalog: Catalog, now: datetime) -> Dashboard:
    """Everything the dashboard page draws, read in one go."""
    with catalog.read() as session:
        users = dict(session.execute(select(UserRow.name, UserRow.role)).all())
        points = _masklet_points(session, set(users))
        outcomes = _outcomes(session)
        queues = _queues(session, now)
        verdicts_by = dict(
            session.execute(select(VerificationRow.verifier, func.count()).group_by(VerificationRow.verifier)).all()
        )
        models, promotions = _models(session)
    people = _people(points, users, verdicts_by)
    phases = [
        PhaseRow(
            label=row.label,
            phase=row.phase,
            work=row.work.value,
            masklets=row.masklets,
            seconds_per_frame=_finite(row.seconds_per_frame),
            edited_frame_pct=_finite(row.edited_frame_pct),
            clicks_per_clicked_frame=_finite(row.clicks_per_clicked_frame),
            jf=row.jf,
        )
        for row in phase_metrics(catalog, GroupBy.PHASE)
    ]
    return Dashboard(now, points, phases, outcomes, queues, people, models, promotions)


class CachedDashboard:
    """:func:`dashboard`, recomputed at most every ``ttl_s`` seconds."""

    def __init__(self, catalog: Catalog, clock: Callable[[], datetime], ttl_s: float = 5.0) -> None:
        self._catalog = catalog
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._value: Dashboard | None = None
        self._at = 0.0

    def get(self) -> Dashboard:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl_s:
                self._value = dashboard(self._catalog, self._clock())
                self._at = time.monotonic()
            return self._value


def _masklet_points(session: Session, people: set[str]) -> list[MaskletPoint]:
    rows = list(
        session.scalars(
            select(MaskletRow)
            .where(MaskletRow.source == "manual", MaskletRow.status.not_in(("draft", "reference")))
            .order_by(MaskletRow.id.desc())
            .limit(MAX_MASKLETS)
        )
    )
    rows.reverse()
    events = annotation_events.events_of(session, [r.id for r in rows])
    by_masklet: dict[int, list[Any]] = defaultdict(list)
    for event in events:
        by_masklet[event.masklet_id].append(event)
    points = []
    for row in rows:
        own = by_masklet.get(row.id, [])
        submitted = next((e for e in reversed(own) if e.action is Action.SUBMIT), None)
        refine = submitted is not None and submitted.payload.get("refines") is not None
        seconds = masklet_stats(own).seconds
        points.append(
            MaskletPoint(
                masklet_id=row.id,
                phase=row.phase,
                work=(Work.REFINE if refine else Work.ANNOTATE).value,
                annotator=row.annotator,
                person=row.annotator in people,
                submitted_at=submitted.started_at if submitted is not None else row.created_at,
                frames=row.frame_count,
                seconds=round(seconds, 3),
                seconds_per_frame=round(seconds / row.frame_count, 4) if row.frame_count else None,
            )
        )
    return points


def _outcomes(session: Session) -> list[Outcomes]:
    counts: dict[int | None, dict[str, int]] = defaultdict(dict)
    query = (
        select(MaskletRow.phase, MaskletRow.source, VerificationRow.verdict, func.count())
        .join(MaskletRow, MaskletRow.id == VerificationRow.masklet_id)
        .group_by(MaskletRow.phase, MaskletRow.source, VerificationRow.verdict)
    )
    for phase, source, verdict, count in session.execute(query):
        key = None if source == "auto" else phase
        counts[key][verdict] = counts[key].get(verdict, 0) + count
    return [Outcomes(phase, **verdicts) for phase, verdicts in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))]


def _queues(session: Session, now: datetime) -> list[QueueRow]:
    conn = session.connection()
    stats = task_queries.queue_stats(conn, now)
    rows = session.execute(
        select(TaskHistoryRow.task_id, TaskHistoryRow.queue, TaskHistoryRow.from_status, TaskHistoryRow.to_status, TaskHistoryRow.at)
        .where(TaskHistoryRow.at >= now - WAIT_WINDOW)
        .order_by(TaskHistoryRow.id.desc())
        .limit(MAX_HISTORY)
    ).all()
    enqueued: dict[int, datetime] = {}
    first_lease: dict[int, tuple[str, datetime]] = {}
    for task_id, queue, from_status, to_status, at in reversed(rows):
        if from_status is None:
            enqueued[task_id] = at
        elif to_status == "leased" and task_id not in first_lease:
            first_lease[task_id] = (queue, at)
    waits: dict[str, list[float]] = defaultdict(list)
    for task_id, (queue, at) in first_lease.items():
        if task_id in enqueued:
            waits[queue].append(max(0.0, (at - enqueued[task_id]).total_seconds()))
    return [
        QueueRow(
            queue=s.queue.value,
            ready=s.ready,
            leased=s.leased,
            done=s.done,
            dead=s.dead,
            oldest_ready_age_s=s.oldest_ready_age_s,
            median_wait_s=statistics.median(waits[s.queue.value]) if waits[s.queue.value] else None,
        )
        for s in stats
        if s.queue in Queue
    ]


def _people(points: list[MaskletPoint], roles: dict[str, str], verdicts_by: dict[str, int]) -> list[Person]:
    work: dict[str, list[MaskletPoint]] = defaultdict(list)
    for point in points:
        if point.annotator:
            work[point.annotator].append(point)
    names = sorted(set(work) | set(verdicts_by) | set(roles))
    people = []
    for name in names:
        own = work.get(name, [])
        frames = sum(p.frames for p in own)
        seconds = sum(p.seconds for p in own)
        people.append(
            Person(
                name=name,
                person=name in roles,
                role=roles.get(name),
                masklets=len(own),
                frames=frames,
                seconds_per_frame=round(seconds / frames, 4) if frames and seconds else None,
                masklets_per_hour=round(3600.0 * len(own) / seconds, 3) if seconds else None,
                verdicts=verdicts_by.get(name, 0),
            )
        )
    return people


def _models(session: Session) -> tuple[list[ModelPoint], list[Promotion]]:
    versions = list(session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version).limit(500)))
    number = {v.id: v.version for v in versions}
    aliases: dict[int, list[str]] = defaultdict(list)
    promotions = []
    for alias in session.scalars(select(ModelAliasRow).order_by(ModelAliasRow.updated_at)):
        aliases[alias.model_version_id].append(alias.alias)
        if alias.model_version_id in number and alias.alias == CHAMPION:
            promotions.append(Promotion(alias.name, alias.alias, number[alias.model_version_id], alias.updated_at))
    models = [
        ModelPoint(v.name, v.version, _number((v.metrics or {}).get("val_jf")), tuple(sorted(aliases.get(v.id, []))), v.created_at)
        for v in versions
    ]
    return models, promotions


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finite(value: float) -> float | None:
    return None if value != value or value in (float("inf"), float("-inf")) else value
