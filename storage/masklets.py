"""Catalog queries about masklets and their per-frame masks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFoundError
from engine.masklets import Masklet, MaskletSource
from engine.masks import Rle
from storage.schema import MaskletFrameRow, MaskletRow


def add_masklet(
    session: Session,
    masklet: Masklet,
    *,
    status: str,
    phase: int | None = None,
    annotator: str | None = None,
    model_version_id: int | None = None,
    edited_frames: Iterable[int] = (),
) -> int:
    """Store a masklet and its masks (in the caller's transaction); returns its catalog id."""
    row = MaskletRow(
        video_id=masklet.video_id,
        object_id=masklet.object_id,
        source=masklet.source.value,
        status=status,
        phase=phase,
        annotator=annotator,
        model_version_id=model_version_id,
        frame_count=masklet.frame_count,
        height=masklet.height,
        width=masklet.width,
        edited_frame_count=masklet.edited_frame_count,
        first_appeared_frame=masklet.first_appeared_frame,
        visibility_changes=masklet.visibility_changes,
        size_abs=masklet.size_abs,
        size_bucket=masklet.size_bucket.value,
    )
    session.add(row)
    session.flush()
    edited = set(edited_frames)
    scores = masklet.stability_scores
    session.execute(
        MaskletFrameRow.__table__.insert(),
        [
            {
                "masklet_id": row.id,
                "frame_index": i,
                "rle": rle.counts,
                "area": masklet.areas[i],
                "edited": i in edited,
                "stability_score": None if scores is None else scores[i],
            }
            for i, rle in enumerate(masklet.masks)
        ],
    )
    return row.id


def _load(session: Session, row: MaskletRow) -> Masklet:
    frames = session.execute(
        select(MaskletFrameRow.rle, MaskletFrameRow.area, MaskletFrameRow.stability_score)
        .where(MaskletFrameRow.masklet_id == row.id)
        .order_by(MaskletFrameRow.frame_index)
    ).all()
    scores = [f.stability_score for f in frames]
    return Masklet(
        video_id=row.video_id,
        object_id=row.object_id,
        source=MaskletSource(row.source),
        masks=tuple(Rle(row.height, row.width, bytes(f.rle)) for f in frames),
        edited_frame_count=row.edited_frame_count,
        stability_scores=None if any(s is None for s in scores) else tuple(scores),
        areas=tuple(f.area for f in frames),
    )


def get_masklet(session: Session, masklet_id: int) -> Masklet:
    row = session.get(MaskletRow, masklet_id)
    if row is None:
        raise NotFoundError(f"no masklet {masklet_id} in the catalog")
    return _load(session, row)


def masklet_rows_for_video(
    session: Session, video_id: str, sources: Sequence[MaskletSource] | None = None,
    statuses: Sequence[str] | None = None,
) -> list[MaskletRow]:
    query = select(MaskletRow).where(MaskletRow.video_id == video_id)
    if sources is not None:
        query = query.where(MaskletRow.source.in_([s.value for s in sources]))
    if statuses is not None:
        query = query.where(MaskletRow.status.in_(list(statuses)))
    return list(session.scalars(query.order_by(MaskletRow.object_id, MaskletRow.id)))


def masklets_for_video(
    session: Session, video_id: str, sources: Sequence[MaskletSource] | None = None,
    statuses: Sequence[str] | None = None,
) -> list[Masklet]:
    """The video's masklets, by object id, optionally of some sources and statuses only."""
    return [_load(session, r) for r in masklet_rows_for_video(session, video_id, sources, statuses)]


def ground_truth(session: Session, video_id: str) -> list[Masklet]:
    """The video's ground-truth masklets (from synthetic data or an imported SA-V file)."""
    return masklets_for_video(session, video_id, [MaskletSource.GROUND_TRUTH])
