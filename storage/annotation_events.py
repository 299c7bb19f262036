"""Catalog queries about annotation events (``annotation_events``), and the catalog's event sink."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import MappingProxyType

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from engine.annotation import Action, AnnotationEvent
from storage.catalog import Catalog
from storage.schema import AnnotationEventRow

events_table = AnnotationEventRow.__table__


def add_events(session: Session, events: Sequence[AnnotationEvent], masklet_id: int | None = None) -> None:
    """Insert ``events`` (in the caller's transaction), attached to ``masklet_id`` when given."""
    if not events:
        return
    session.execute(
        insert(events_table),
        [
            {
                "task_id": e.task_id,
                "masklet_id": masklet_id if masklet_id is not None else e.masklet_id,
                "video_id": e.video_id,
                "annotator": e.annotator,
                "phase": e.phase,
                "frame_index": e.frame_index,
                "action": e.action.value,
                "payload": dict(e.payload),
                "started_at": e.started_at,
                "duration_s": e.duration_s,
            }
            for e in events
        ],
    )


def delete_events_of(session: Session, masklet_id: int) -> None:
    session.execute(delete(events_table).where(events_table.c.masklet_id == masklet_id))


def events_of(session: Session, masklet_ids: Iterable[int]) -> list[AnnotationEvent]:
    """The events of these masklets, in the order they were recorded."""
    ids = list(masklet_ids)
    if not ids:
        return []
    rows = session.scalars(
        select(AnnotationEventRow).where(AnnotationEventRow.masklet_id.in_(ids)).order_by(AnnotationEventRow.id)
    )
    return [_event(r) for r in rows]


def submit_payload(session: Session, masklet_id: int) -> dict:
    """The details recorded with a masklet's submission (empty when it was never submitted by hand)."""
    payload = session.scalar(
        select(AnnotationEventRow.payload)
        .where(AnnotationEventRow.masklet_id == masklet_id, AnnotationEventRow.action == Action.SUBMIT.value)
        .order_by(AnnotationEventRow.id.desc())
        .limit(1)
    )
    return dict(payload or {})


def _event(row: AnnotationEventRow) -> AnnotationEvent:
    return AnnotationEvent(
        task_id=row.task_id,
        masklet_id=row.masklet_id,
        video_id=row.video_id or "",
        annotator=row.annotator,
        phase=row.phase,
        frame_index=row.frame_index,
        action=Action(row.action),
        payload=MappingProxyType(dict(row.payload or {})),
        started_at=row.started_at,
        duration_s=row.duration_s,
    )


class CatalogEventSink:
    """:class:`engine.annotation.AnnotationEventSink` on the catalog: each call is one transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def record(self, events: Sequence[AnnotationEvent], masklet_id: int | None = None) -> None:
        with self.catalog.write() as session:
            add_events(session, events, masklet_id)
