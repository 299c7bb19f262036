"""Catalog queries about videos and their sampled frames."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.errors import NotFoundError
from engine.video import Frame, Video
from storage.schema import FrameRow, MaskletRow, VideoRow


def _video(row: VideoRow) -> Video:
    return Video(
        id=row.id,
        source_uri=row.source_uri,
        content_hash=row.content_hash,
        width=row.width,
        height=row.height,
        source_fps=row.source_fps,
        source_frame_count=row.source_frame_count,
        duration_s=row.duration_s,
        sample_fps=row.sample_fps,
        frame_count=row.frame_count,
        environment=row.environment,
        split=row.split,
    )


def _frame(row: FrameRow) -> Frame:
    return Frame(row.video_id, row.frame_index, row.source_frame_index, row.timestamp_s, row.object_key)


def add_video(session: Session, video: Video, frames: Sequence[Frame], byte_sizes: Sequence[int]) -> None:
    """Record a video and all its frames (in the caller's transaction)."""
    session.add(
        VideoRow(
            id=video.id,
            source_uri=video.source_uri,
            content_hash=video.content_hash,
            width=video.width,
            height=video.height,
            source_fps=video.source_fps,
            source_frame_count=video.source_frame_count,
            duration_s=video.duration_s,
            sample_fps=video.sample_fps,
            frame_count=video.frame_count,
            environment=video.environment,
            split=video.split,
        )
    )
    session.flush()
    session.execute(
        FrameRow.__table__.insert(),
        [
            {
                "video_id": f.video_id,
                "frame_index": f.index,
                "source_frame_index": f.source_index,
                "timestamp_s": f.timestamp_s,
                "object_key": f.object_key,
                "byte_size": size,
            }
            for f, size in zip(frames, byte_sizes, strict=True)
        ],
    )


def video_by_hash(session: Session, content_hash: str) -> Video | None:
    row = session.scalars(select(VideoRow).where(VideoRow.content_hash == content_hash)).one_or_none()
    return None if row is None else _video(row)


def video_ids_like(session: Session, prefix: str) -> set[str]:
    """Ids starting with ``prefix`` (to choose a free id for a new video)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return set(session.scalars(select(VideoRow.id).where(VideoRow.id.like(f"{escaped}%", escape="\\"))))


def get_video(session: Session, video_id: str) -> Video:
    row = session.get(VideoRow, video_id)
    if row is None:
        raise NotFoundError(f"no video {video_id!r} in the catalog (see `dataengine videos list`)")
    return _video(row)


def list_videos(session: Session) -> list[Video]:
    return [_video(r) for r in session.scalars(select(VideoRow).order_by(VideoRow.id))]


def frames_of(session: Session, video_id: str) -> list[Frame]:
    rows = session.scalars(
        select(FrameRow).where(FrameRow.video_id == video_id).order_by(FrameRow.frame_index)
    )
    return [_frame(r) for r in rows]


def delete_video(session: Session, video_id: str) -> None:
    session.execute(delete(VideoRow).where(VideoRow.id == video_id))


def set_video_split(session: Session, video_id: str, split: str) -> None:
    row = session.get(VideoRow, video_id)
    if row is None:
        raise NotFoundError(f"no video {video_id!r} in the catalog")
    row.split = split


def catalog_summary(session: Session) -> dict[str, int]:
    """Counts for a one-screen summary of the catalog."""
    masklets = dict(
        session.execute(select(MaskletRow.source, func.count()).group_by(MaskletRow.source)).all()
    )
    return {
        "videos": session.scalar(select(func.count()).select_from(VideoRow)) or 0,
        "frames": session.scalar(select(func.count()).select_from(FrameRow)) or 0,
        "ground_truth_masklets": masklets.get("ground_truth", 0),
        "manual_masklets": masklets.get("manual", 0),
        "auto_masklets": masklets.get("auto", 0),
    }
