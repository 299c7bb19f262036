"""What the dashboards are computed from, read from the catalog and the model registry.

:func:`load_report_inputs` gathers, in a handful of queries, the per-phase metrics table
(:func:`storage.annotation_metrics.phase_metrics`), every counted masklet with its submission
time and annotation events, every verdict, the queues' state and history, and the registered
model versions; :mod:`engine.report` turns them into a dashboard.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.annotation import Action
from engine.masklets import MaskletSource
from engine.metrics import MaskletRecord, Work
from engine.model_registry import ModelRegistry
from engine.queues import Queue, TaskStatus
from engine.report import ReportInputs, TaskTransition, TimedMasklet, VerdictRecord
from storage import annotation_events
from storage import tasks as task_queries
from storage.annotation_metrics import NOT_COUNTED, phase_metrics
from storage.catalog import Catalog
from storage.queue_schema import TaskHistoryRow
from storage.schema import MaskletRow, VerificationRow, utcnow


def load_report_inputs(catalog: Catalog, registry: ModelRegistry | None, now: datetime | None = None) -> ReportInputs:
    """Everything the dashboards show, as of now."""
    now = now or utcnow()
    rows = phase_metrics(catalog)
    with catalog.read() as session:
        masklet_rows = list(
            session.execute(
                select(
                    MaskletRow.id,
                    MaskletRow.video_id,
                    MaskletRow.object_id,
                    MaskletRow.source,
                    MaskletRow.phase,
                    MaskletRow.annotator,
                    MaskletRow.model_version_id,
                    MaskletRow.frame_count,
                    MaskletRow.edited_frame_count,
                    MaskletRow.created_at,
                )
                .where(
                    MaskletRow.source.in_([MaskletSource.MANUAL.value, MaskletSource.AUTO.value]),
                    MaskletRow.status.not_in(NOT_COUNTED),
                )
                .order_by(MaskletRow.id)
            )
        )
        events = annotation_events.events_of(session, [r.id for r in masklet_rows])
        refines = {e.masklet_id for e in events if e.action is Action.SUBMIT and e.payload.get("refines") is not None}
        verdicts = [
            VerdictRecord(m, v, at)
            for m, v, at in session.execute(
                select(VerificationRow.masklet_id, VerificationRow.verdict, VerificationRow.created_at).order_by(
                    VerificationRow.id
                )
            )
        ]
        transitions = [
            TaskTransition(task_id, Queue(queue), TaskStatus(to_status), at)
            for task_id, queue, to_status, at in session.execute(
                select(
                    TaskHistoryRow.task_id, TaskHistoryRow.queue, TaskHistoryRow.to_status, TaskHistoryRow.at
                ).order_by(TaskHistoryRow.id)
            )
        ]
        queues = task_queries.queue_stats(session.connection(), now)
    masklets = [
        TimedMasklet(
            MaskletRecord(
                masklet_id=r.id,
                video_id=r.video_id,
                object_id=r.object_id,
                phase=r.phase,
                work=_work(r.source, r.id in refines),
                annotator=r.annotator,
                model_version_id=r.model_version_id,
                frame_count=r.frame_count,
                edited_frame_count=r.edited_frame_count,
            ),
            r.created_at,
        )
        for r in masklet_rows
    ]
    models = registry.list() if registry is not None else []
    return ReportInputs(
        now=now,
        phase_rows=tuple(rows),
        masklets=tuple(masklets),
        events=tuple(events),
        verdicts=tuple(verdicts),
        queues=tuple(queues),
        transitions=tuple(sorted(transitions, key=lambda t: t.at)),
        models=tuple(models),
    )


def _work(source: str, refines: bool) -> Work:
    """How a masklet was made, as :mod:`storage.annotation_metrics` classifies it."""
    if source == MaskletSource.AUTO.value:
        return Work.AUTO
    return Work.REFINE if refines else Work.ANNOTATE
