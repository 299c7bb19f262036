"""The catalog's tables, as typed SQLAlchemy 2 models, in one place.

Every change here is also a migration in ``storage/migrations/versions`` (a test compares the
two). Rows are storage's business: the rest of the engine sees the frozen records of
``engine`` (Video, Frame, Masklet), converted in the repository modules beside this one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

MASKLET_SOURCES = ("ground_truth", "manual", "auto")
MASKLET_STATUSES = ("draft", "in_verification", "satisfactory", "unsatisfactory", "rejected", "reference")
VERDICTS = ("satisfactory", "unsatisfactory", "rejected")

Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use timezone-aware UTC")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class VideoRow(Base):
    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_uri: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source_fps: Mapped[float] = mapped_column(Float)
    source_frame_count: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    sample_fps: Mapped[float] = mapped_column(Float)
    frame_count: Mapped[int] = mapped_column(Integer)
    environment: Mapped[str] = mapped_column(String(32), default="Unknown")
    split: Mapped[str] = mapped_column(String(32), default="train")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FrameRow(Base):
    __tablename__ = "frames"

    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    frame_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_frame_index: Mapped[int] = mapped_column(Integer)
    timestamp_s: Mapped[float] = mapped_column(Float)
    object_key: Mapped[str] = mapped_column(Text)
    byte_size: Mapped[int] = mapped_column(Integer)


class MaskletRow(Base):
    """One object's masklet; its per-frame masks live in ``masklet_frames``."""

    __tablename__ = "masklets"
    __table_args__ = (
        CheckConstraint(_in("source", MASKLET_SOURCES), name="ck_masklets_source"),
        CheckConstraint(_in("status", MASKLET_STATUSES), name="ck_masklets_status"),
        # One ground-truth masklet per object of a video; annotated ones may be many (rounds).
        Index(
            "uq_masklets_ground_truth",
            "video_id",
            "object_id",
            unique=True,
            sqlite_where=text("source = 'ground_truth'"),
            postgresql_where=text("source = 'ground_truth'"),
        ),
        Index("ix_masklets_video_source", "video_id", "source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    phase: Mapped[int | None] = mapped_column(Integer, nullable=True)
    annotator: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    frame_count: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    edited_frame_count: Mapped[int] = mapped_column(Integer, default=0)
    first_appeared_frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    visibility_changes: Mapped[int] = mapped_column(Integer, default=0)
    size_abs: Mapped[float] = mapped_column(Float, default=0.0)
    size_bucket: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MaskletFrameRow(Base):
    """One mask of a masklet, stored compactly as COCO compressed RLE bytes."""

    __tablename__ = "masklet_frames"

    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id", ondelete="CASCADE"), primary_key=True)
    frame_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    rle: Mapped[bytes] = mapped_column(LargeBinary)
    area: Mapped[int] = mapped_column(Integer)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    stability_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class AnnotationEventRow(Base):
    """One action of an annotator (click, brush, propagate, ...) with its timing."""

    __tablename__ = "annotation_events"
    __table_args__ = (Index("ix_annotation_events_phase_time", "phase", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    masklet_id: Mapped[int | None] = mapped_column(
        ForeignKey("masklets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), nullable=True
    )
    annotator: Mapped[str] = mapped_column(String(128))
    phase: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_s: Mapped[float] = mapped_column(Float)


class VerificationRow(Base):
    """A verifier's verdict on a masklet."""

    __tablename__ = "verifications"
    __table_args__ = (CheckConstraint(_in("verdict", VERDICTS), name="ck_verifications_verdict"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id", ondelete="CASCADE"), index=True)
    verifier: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    frames: Mapped[list[int] | None] = mapped_column(Json, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TrainingRunRow(Base):
    """One training run: what it was asked to do, which data it used, how it ended."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    dataset: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModelVersionRow(Base):
    """A registered model version: its lineage, configuration, weights and evaluation."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    weights_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), nullable=True
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ModelAliasRow(Base):
    """A movable name for a model version, such as ``champion``."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# The queue tables live in their own module; importing it here puts them on Base.metadata for
# everyone who imports the schema (migrations, the schema-vs-migration test).
from storage import queue_schema as _queue_schema  # noqa: E402,F401
from storage import user_schema as _user_schema  # noqa: E402,F401
