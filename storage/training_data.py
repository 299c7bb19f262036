"""Catalog queries for building training and validation sets, and the source that answers them.

Which masklets train and which validate is decided in :mod:`training.dataset`; this module
reads what that decision needs (every satisfactory manual and auto masklet with its verdict,
every video's split), loads the chosen masks in bulk, and moves videos into the validation
split.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.errors import NotFoundError, TrainingDataError
from engine.frame_source import StoredFrames
from engine.masklets import Masklet, MaskletSource
from engine.masks import Rle
from engine.ports import ObjectStore
from engine.training_data import (
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    CatalogMarker,
    CatalogSnapshot,
    CatalogVideo,
    DatasetCandidate,
    MaskletOrigin,
)
from storage import videos as video_queries
from storage.catalog import Catalog
from storage.schema import AnnotationEventRow, MaskletFrameRow, MaskletRow, VerificationRow, VideoRow

SATISFACTORY = "satisfactory"
DATASET_SOURCES = (MaskletSource.MANUAL.value, MaskletSource.AUTO.value)
ID_CHUNK = 500  # ids per IN (...) list: well inside SQLite's bound-parameter limit


def catalog_videos(session: Session) -> dict[str, CatalogVideo]:
    rows = session.execute(select(VideoRow.id, VideoRow.split, VideoRow.frame_count).order_by(VideoRow.id))
    return {r.id: CatalogVideo(r.id, r.split, r.frame_count) for r in rows}


def dataset_candidates(session: Session) -> list[DatasetCandidate]:
    """Every satisfactory manual and auto masklet, with the satisfactory verdict that admitted it.

    A satisfactory masklet with no satisfactory verdict came in through an SA-V import as
    dataset (``import-sav --as dataset``), the only way into the dataset past verification.
    """
    verdict = (
        select(func.max(VerificationRow.id))
        .where(VerificationRow.masklet_id == MaskletRow.id, VerificationRow.verdict == SATISFACTORY)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            MaskletRow.id,
            MaskletRow.video_id,
            MaskletRow.object_id,
            MaskletRow.source,
            MaskletRow.phase,
            MaskletRow.created_at,
            verdict.label("verification_id"),
        )
        .where(MaskletRow.status == SATISFACTORY, MaskletRow.source.in_(DATASET_SOURCES))
        .order_by(MaskletRow.id)
    )
    return [
        DatasetCandidate(
            masklet_id=r.id,
            video_id=r.video_id,
            object_id=r.object_id,
            source=MaskletSource(r.source),
            phase=r.phase,
            origin=MaskletOrigin.IMPORTED if r.verification_id is None else MaskletOrigin.VERIFIED,
            verification_id=r.verification_id,
            created_at=r.created_at,
        )
        for r in rows
    ]


def catalog_marker(session: Session) -> CatalogMarker:
    """The highest masklet, verdict and annotation event ids (0 where a table is empty)."""
    return CatalogMarker(
        masklet_id=session.scalar(select(func.max(MaskletRow.id))) or 0,
        verification_id=session.scalar(select(func.max(VerificationRow.id))) or 0,
        annotation_event_id=session.scalar(select(func.max(AnnotationEventRow.id))) or 0,
    )


def load_masklets(session: Session, masklet_ids: Sequence[int]) -> dict[int, Masklet]:
    """The masklets with these ids, masks and all, in two queries per chunk of ids (not one per masklet)."""
    wanted = list(dict.fromkeys(masklet_ids))
    found: dict[int, Masklet] = {}
    for start in range(0, len(wanted), ID_CHUNK):
        found.update(_load_chunk(session, wanted[start : start + ID_CHUNK]))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFoundError(
            f"masklets {missing[:20]} are no longer in the catalog (deleted with their video while "
            f"the dataset was being built?); build the dataset again"
        )
    return found


def _load_chunk(session: Session, ids: list[int]) -> dict[int, Masklet]:
    rows = {r.id: r for r in session.scalars(select(MaskletRow).where(MaskletRow.id.in_(ids)))}
    frames: dict[int, list[tuple[bytes, int, float | None]]] = {i: [] for i in rows}
    for f in session.execute(
        select(
            MaskletFrameRow.masklet_id, MaskletFrameRow.rle, MaskletFrameRow.area, MaskletFrameRow.stability_score
        )
        .where(MaskletFrameRow.masklet_id.in_(list(rows)))
        .order_by(MaskletFrameRow.masklet_id, MaskletFrameRow.frame_index)
    ):
        frames[f.masklet_id].append((bytes(f.rle), f.area, f.stability_score))
    return {masklet_id: _masklet(row, frames[masklet_id]) for masklet_id, row in rows.items()}


def _masklet(row: MaskletRow, frames: list[tuple[bytes, int, float | None]]) -> Masklet:
    if len(frames) != row.frame_count:
        raise TrainingDataError(
            f"masklet {row.id} (video {row.video_id}, object {row.object_id}) has {len(frames)} stored "
            f"masks for {row.frame_count} frames; the catalog is damaged: remove or re-import that masklet"
        )
    scores = [score for _, _, score in frames]
    return Masklet(
        video_id=row.video_id,
        object_id=row.object_id,
        source=MaskletSource(row.source),
        masks=tuple(Rle(row.height, row.width, rle) for rle, _, _ in frames),
        edited_frame_count=row.edited_frame_count,
        stability_scores=None if any(s is None for s in scores) else tuple(scores),  # type: ignore[arg-type]
        areas=tuple(a for _, a, _ in frames),
    )


def reserve_for_validation(session: Session, video_ids: Sequence[str]) -> list[str]:
    """Move ``train`` videos to ``val`` (in the caller's transaction); returns the ids moved.

    The whole request is checked first, so an unknown id or a video of another split (say
    ``test``) changes nothing. The UPDATE repeats the split condition, so a video is moved
    from ``train`` only.
    """
    wanted = list(dict.fromkeys(video_ids))
    splits = {r.id: r.split for r in session.execute(select(VideoRow.id, VideoRow.split).where(VideoRow.id.in_(wanted)))}
    unknown = [v for v in wanted if v not in splits]
    if unknown:
        raise NotFoundError(f"no videos {unknown} in the catalog (see `dataengine videos list`)")
    elsewhere = {v: s for v, s in splits.items() if s not in (TRAIN_SPLIT, VALIDATION_SPLIT)}
    if elsewhere:
        raise TrainingDataError(
            f"videos {elsewhere} are in neither the {TRAIN_SPLIT!r} nor the {VALIDATION_SPLIT!r} split; only "
            f"{TRAIN_SPLIT!r} videos can be reserved for validation"
        )
    moving = [v for v in wanted if splits[v] == TRAIN_SPLIT]
    if moving:
        session.execute(
            update(VideoRow)
            .where(VideoRow.id.in_(moving), VideoRow.split == TRAIN_SPLIT)
            .values(split=VALIDATION_SPLIT)
            .execution_options(synchronize_session=False)
        )
    return moving


class SqlTrainingData:
    """:class:`engine.training_data.TrainingDataSource` on a catalog and an object store."""

    def __init__(self, catalog: Catalog, store: ObjectStore) -> None:
        self.catalog = catalog
        self.store = store

    def snapshot(self) -> CatalogSnapshot:
        with self.catalog.read() as session:
            if not self.catalog.is_sqlite:
                # One snapshot for the three reads, so the marker matches the candidates exactly
                # (SQLite's read transaction is a snapshot already).
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            marker = catalog_marker(session)
            return CatalogSnapshot(catalog_videos(session), tuple(dataset_candidates(session)), marker)

    def masklets(self, masklet_ids: Sequence[int]) -> dict[int, Masklet]:
        with self.catalog.read() as session:
            return load_masklets(session, masklet_ids)

    def frames(self, video_id: str) -> StoredFrames:
        with self.catalog.read() as session:
            video = video_queries.get_video(session, video_id)
        return StoredFrames(self.store, video_id, video.frame_count, (video.height, video.width))

    def reserve_for_validation(self, video_ids: Sequence[str]) -> list[str]:
        with self.catalog.write() as session:
            return reserve_for_validation(session, video_ids)
