"""Catalog queries behind the per-phase metrics: masklets, their events and verdicts, their quality.

Annotated and auto masklets count once submitted (drafts never do); a masklet's kind of work
is read from its submission (a refinement names the masklet it refines). Quality needs
masks: J&F against the object's ground truth (for an automatic masklet, which has an object id
of its own, the ground-truth masklet it follows best), and per-frame IoU against the newest
Phase 1 masklet of the same object.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.annotation import Action
from engine.masklets import Masklet, MaskletSource
from engine.metrics import (
    GroupBy,
    MaskletQuality,
    MaskletRecord,
    PhaseMetrics,
    Work,
    alignment_bucket,
    alignment_ious,
    best_match,
    masklet_jf,
    summarize,
)
from storage import annotation_events
from storage import masklets as masklet_queries
from storage.catalog import Catalog
from storage.schema import MaskletRow, VerificationRow

NOT_COUNTED = ("draft", "reference")


def phase_metrics(catalog: Catalog, group_by: GroupBy = GroupBy.PHASE) -> list[PhaseMetrics]:
    """The metrics table of everything annotated, refined and generated so far."""
    with catalog.read() as session:
        rows = list(
            session.scalars(
                select(MaskletRow)
                .where(
                    MaskletRow.source.in_([MaskletSource.MANUAL.value, MaskletSource.AUTO.value]),
                    MaskletRow.status.not_in(NOT_COUNTED),
                )
                .order_by(MaskletRow.id)
            )
        )
        ids = [r.id for r in rows]
        events = annotation_events.events_of(session, ids)
        refines = {e.masklet_id for e in events if e.action is Action.SUBMIT and e.payload.get("refines") is not None}
        records = [_record(r, refines) for r in rows]
        verdicts = _verdicts(session, ids)
        quality = _quality(session, rows, records)
    return summarize(records, events, verdicts, quality, group_by)


def _record(row: MaskletRow, refines: set[int | None]) -> MaskletRecord:
    if row.source == MaskletSource.AUTO.value:
        work = Work.AUTO
    else:
        work = Work.REFINE if row.id in refines else Work.ANNOTATE
    return MaskletRecord(
        masklet_id=row.id,
        video_id=row.video_id,
        object_id=row.object_id,
        phase=row.phase,
        work=work,
        annotator=row.annotator,
        model_version_id=row.model_version_id,
        frame_count=row.frame_count,
        edited_frame_count=row.edited_frame_count,
    )


def _verdicts(session: Session, masklet_ids: list[int]) -> list[tuple[int, str]]:
    if not masklet_ids:
        return []
    query = select(VerificationRow.masklet_id, VerificationRow.verdict).where(VerificationRow.masklet_id.in_(masklet_ids))
    return [(m, v) for m, v in session.execute(query)]


def _quality(session: Session, rows: list[MaskletRow], records: list[MaskletRecord]) -> dict[int, MaskletQuality]:
    """J&F against ground truth and alignment with Phase 1, per masklet."""
    truths_of = {video_id: masklet_queries.ground_truth(session, video_id) for video_id in {r.video_id for r in rows}}
    truth = {(video_id, m.object_id): m for video_id, masklets in truths_of.items() for m in masklets}
    newest_phase1: dict[tuple[str, int], int] = {}
    for record in records:
        if record.phase == 1 and record.work is Work.ANNOTATE:
            newest_phase1[(record.video_id, record.object_id)] = record.masklet_id  # rows come in id order
    loaded: dict[int, Masklet] = {}

    def load(masklet_id: int) -> Masklet:
        if masklet_id not in loaded:
            loaded[masklet_id] = masklet_queries.get_masklet(session, masklet_id)
        return loaded[masklet_id]

    quality = {}
    for record in records:
        key = (record.video_id, record.object_id)
        masklet = load(record.masklet_id)
        reference = truth.get(key) or best_match(masklet, truths_of[record.video_id])  # auto: the object it follows
        jf = masklet_jf(masklet, reference) if reference is not None and reference.frame_count == masklet.frame_count else None
        phase1_id = newest_phase1.get(key)
        if phase1_id is None or record.phase == 1:
            quality[record.masklet_id] = MaskletQuality(jf)
        else:
            phase1 = load(phase1_id)
            quality[record.masklet_id] = MaskletQuality(jf, alignment_ious(masklet, phase1), alignment_bucket(phase1))
    return quality
