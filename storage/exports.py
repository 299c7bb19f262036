"""SA-V JSON and Parquet files in and out of the catalog.

Exports are how a dataset leaves the engine: one SA-V JSON per video and masklet type, named
and laid out exactly as Meta publishes SA-V (``{video_id}_manual.json``, ``{video_id}_auto.json``),
and Parquet tables of the whole catalog for analysis. Imports bring SA-V files in, as ground
truth or as dataset masklets, each in one transaction. Every file is written atomically: a
reader sees the previous file or the finished new one, never half of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Float, Select, case, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import BadAnnotationFileError, ExportError, NotFoundError
from engine.ingest import IngestResult, IngestStatus, frames_prefix, ingest_file
from engine.masklets import Masklet, MaskletSource
from engine.ports import ObjectStore
from engine.sav import SavAnnotation, SavVideo, from_sav, masklet_type, to_sav
from engine.settings import Settings
from engine.video import Video
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog
from storage.objects import write_file_atomically
from storage.schema import (
    AnnotationEventRow,
    FrameRow,
    MaskletFrameRow,
    MaskletRow,
    VerificationRow,
    VideoRow,
)
from storage.video_catalog import SqlVideoCatalog

SATISFACTORY = "satisfactory"
REFERENCE = "reference"
BATCH_ROWS = 10_000  # rows per Parquet batch: bounds memory whatever the catalog's size
SAV_TYPES = ("manual", "auto")  # the order in which a video's SA-V files are written


class MaskletSelection(StrEnum):
    """Which masklets an SA-V export holds."""

    DATASET = "dataset"  # satisfactory manual and auto masklets: the dataset the engine produced
    GROUND_TRUTH = "ground-truth"  # ground truth, exported as manual masklets (SA-V has no such type)


class ImportAs(StrEnum):
    """What the masklets of an imported SA-V file become in the catalog."""

    GROUND_TRUTH = "ground-truth"  # the reference that phases are evaluated against
    DATASET = "dataset"  # satisfactory masklets, as if annotated and verified here


@dataclass(frozen=True)
class ImportResult:
    """What one SA-V import recorded."""

    path: Path
    video_id: str
    imported_as: ImportAs
    imported: int  # masklets added to the catalog
    already_present: int = 0  # dataset masklets the catalog already held, identical, and skipped
    video_ingested: bool = False  # the video file was ingested by this import


# --- atomic files ----------------------------------------------------------------------------


def _write_atomic(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a fsynced temporary file renamed over it; OSError -> ExportError."""
    try:
        write_file_atomically(path, fill)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as compact JSON (as SA-V ships it) to ``path``, atomically."""
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    _write_atomic(path, lambda out: out.write(data))


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    """Write ``table`` as one Parquet file at ``path``, atomically."""
    _write_atomic(path, lambda out: pq.write_table(table, out))


# --- SA-V export ------------------------------------------------------------------------------


def export_sav(
    catalog: Catalog,
    video_ids: Sequence[str] | None,
    out_dir: Path,
    *,
    masklets: MaskletSelection | str = MaskletSelection.DATASET,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[Path]:
    """Write the SA-V files of ``video_ids`` (None: every video) into ``out_dir``; returns their paths.

    A video without masklets of the selection writes nothing and is passed to ``on_skip`` with
    the reason. Unknown ids raise NotFoundError before any file is written.
    """
    selection = MaskletSelection(masklets)
    written: list[Path] = []
    with catalog.read() as session:
        for video_id in _resolve_video_ids(session, video_ids):
            files = sav_objects(session, video_id, selection)
            if not files:
                if on_skip is not None:
                    on_skip(video_id, f"no {selection.value} masklets")
                continue
            for kind, obj in files:
                path = out_dir / f"{_file_stem(video_id)}_{kind}.json"
                write_json_atomic(path, obj)
                written.append(path)
    return written


def sav_objects(session: Session, video_id: str, selection: MaskletSelection) -> list[tuple[str, dict[str, Any]]]:
    """The SA-V JSON objects of one video, as ``(masklet type, object)``, manual first."""
    sav_video = sav_video_of(video_queries.get_video(session, video_id))
    groups = _newest_masklets(session, video_id, selection)
    return [(kind, to_sav(sav_video, groups[kind])) for kind in SAV_TYPES if groups[kind]]


def sav_video_of(video: Video) -> SavVideo:
    """SA-V's video fields describe the source file (e.g. 24 FPS), not the sampled frames."""
    duration = video.source_frame_count / video.source_fps if video.source_fps > 0 else video.duration_s
    return SavVideo(
        video_id=video.id,
        duration_s=duration,
        frame_count=video.source_frame_count,
        height=video.height,
        width=video.width,
        environment=video.environment,
        split=video.split,
    )


def _resolve_video_ids(session: Session, video_ids: Sequence[str] | None) -> list[str]:
    known = list(session.scalars(select(VideoRow.id).order_by(VideoRow.id)))
    if video_ids is None:
        return known
    missing = sorted(set(video_ids) - set(known))
    if missing:
        raise NotFoundError(f"no videos {missing} in the catalog (see `dataengine videos list`)")
    return list(dict.fromkeys(video_ids))


def _newest_masklets(session: Session, video_id: str, selection: MaskletSelection) -> dict[str, list[Masklet]]:
    """The selected masklets by SA-V type, the newest per object id.

    An object may hold several satisfactory masklets (one per annotation round); the dataset
    is the latest of them.
    """
    if selection is MaskletSelection.DATASET:
        rows = masklet_queries.masklet_rows_for_video(
            session, video_id, [MaskletSource.MANUAL, MaskletSource.AUTO], [SATISFACTORY]
        )
    else:
        rows = masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.GROUND_TRUTH])
    newest: dict[tuple[str, int], MaskletRow] = {}
    for row in rows:
        key = (masklet_type(MaskletSource(row.source)), row.object_id)
        if key not in newest or (row.created_at, row.id) > (newest[key].created_at, newest[key].id):
            newest[key] = row
    groups: dict[str, list[Masklet]] = {kind: [] for kind in SAV_TYPES}
    for (kind, _), row in sorted(newest.items()):
        groups[kind].append(masklet_queries.get_masklet(session, row.id))
    return groups


def _file_stem(video_id: str) -> str:
    # Ids come from file names and are checked at ingestion; this guards the export folder anyway.
    if not video_id or video_id in (".", "..") or "/" in video_id or "\\" in video_id:
        raise ExportError(f"video id {video_id!r} cannot name a file")
    return video_id


# --- SA-V import ------------------------------------------------------------------------------


def read_sav_file(path: Path) -> SavAnnotation:
    """Parse one SA-V JSON file; anything unreadable or malformed raises BadAnnotationFileError."""
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise BadAnnotationFileError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadAnnotationFileError(f"{path}: not a readable SA-V JSON ({exc})") from exc
    try:
        return from_sav(obj, origin=str(path))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # from_sav names most problems itself; this catches values of absurd types it did not foresee.
        raise BadAnnotationFileError(f"{path}: malformed SA-V content ({type(exc).__name__}: {exc})") from exc


def import_sav(
    catalog: Catalog,
    path: Path,
    *,
    as_: ImportAs | str = ImportAs.GROUND_TRUTH,
    video_file: Path | None = None,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> ImportResult:
    """Record the masklets of an SA-V file for its video, all of them or none.

    With ``video_file`` the masklets belong to that file's video, ingested first when the
    catalog does not hold it (``store`` and ``settings`` are needed then); if the masklets are
    refused, a video ingested by this call is removed again. Without it, the file's
    ``video_id`` must be in the catalog.
    """
    imported_as = ImportAs(as_)
    annotation = read_sav_file(path)
    masklets = _masklets_to_import(annotation, imported_as, path)
    if video_file is None:
        added, present = _record_masklets(catalog, annotation.video.video_id, masklets, imported_as, path, None)
        return ImportResult(path, annotation.video.video_id, imported_as, added, present)
    ingest = _ingest_without_ground_truth(video_file, catalog, store, settings)
    video_id = ingest.video_id or ""
    ingested = ingest.status is IngestStatus.INGESTED
    try:
        added, present = _record_masklets(
            catalog, video_id, masklets, imported_as, path, annotation.video if ingested else None
        )
    except BaseException:
        if ingested:
            # Best effort: the error that refused the masklets is the one to report.
            with contextlib.suppress(Exception):
                _remove_video(catalog, store, video_id)
        raise
    return ImportResult(path, video_id, imported_as, added, present, ingested)


def _masklets_to_import(annotation: SavAnnotation, imported_as: ImportAs, path: Path) -> list[Masklet]:
    """The file's masklets with the source they get: ground truth, or the file's masklet_type."""
    if not annotation.masklets:
        raise BadAnnotationFileError(f"{path}: holds no masklets, nothing to import")
    if imported_as is ImportAs.GROUND_TRUTH:
        return [dataclasses.replace(m, source=MaskletSource.GROUND_TRUTH) for m in annotation.masklets]
    return list(annotation.masklets)


def _ingest_without_ground_truth(
    video_file: Path, catalog: Catalog, store: ObjectStore | None, settings: Settings | None
) -> IngestResult:
    """Ingest ``video_file`` (or find it in the catalog) without the SA-V JSON lying beside it:
    an import decides itself what its file's masklets become."""
    if store is None or settings is None:
        raise ValueError("importing with a video file needs the object store and the settings")
    return ingest_file(
        video_file, store=store, catalog=SqlVideoCatalog(catalog), settings=settings, load_ground_truth=False
    )


def _record_masklets(
    catalog: Catalog,
    video_id: str,
    masklets: list[Masklet],
    imported_as: ImportAs,
    path: Path,
    adopt: SavVideo | None,
) -> tuple[int, int]:
    """Check and store the masklets in one transaction; returns (added, already present)."""
    try:
        with catalog.write() as session:
            video = _video_for_import(session, video_id, path)
            masklets = [dataclasses.replace(m, video_id=video.id) for m in masklets]
            _check_fits(masklets, video, path)
            if imported_as is ImportAs.GROUND_TRUTH:
                _refuse_existing_ground_truth(session, video.id, masklets, path)
                new, status = masklets, REFERENCE
            else:
                new, status = _not_yet_recorded(session, video.id, masklets), SATISFACTORY
            for masklet in new:
                masklet_queries.add_masklet(session, masklet, status=status)
            if adopt is not None:
                _adopt_video_fields(session, video.id, adopt)
    except IntegrityError as exc:
        raise BadAnnotationFileError(
            f"{path}: the catalog refused the masklets of video {video_id} (another import of the "
            f"same ground truth may have finished first); nothing was imported"
        ) from exc
    return len(new), len(masklets) - len(new)


def _video_for_import(session: Session, video_id: str, path: Path) -> Video:
    try:
        return video_queries.get_video(session, video_id)
    except NotFoundError:
        raise NotFoundError(
            f"{path}: video {video_id!r} is not in the catalog; ingest it first, or pass the video "
            f"file (--video FILE) to ingest it with its annotations"
        ) from None


def _check_fits(masklets: Sequence[Masklet], video: Video, path: Path) -> None:
    """Frame ``i`` of a masklet is sampled frame ``i`` of its video, so counts and sizes must agree."""
    for m in masklets:
        if m.frame_count != video.frame_count:
            raise BadAnnotationFileError(
                f"{path}: masklet {m.object_id} has {m.frame_count} annotated frames, video "
                f"{video.id} has {video.frame_count} sampled frames (at {video.sample_fps:g} FPS)"
            )
        if (m.height, m.width) != (video.height, video.width):
            raise BadAnnotationFileError(
                f"{path}: masklet {m.object_id} masks are {m.height}x{m.width}, video {video.id} "
                f"is {video.height}x{video.width}"
            )


def _refuse_existing_ground_truth(
    session: Session, video_id: str, masklets: Sequence[Masklet], path: Path
) -> None:
    existing = {
        row.object_id
        for row in masklet_queries.masklet_rows_for_video(session, video_id, [MaskletSource.GROUND_TRUTH])
    }
    clash = sorted(existing & {m.object_id for m in masklets})
    if clash:
        raise BadAnnotationFileError(
            f"{path}: video {video_id} already has ground truth for objects {clash}; "
            f"nothing was imported (an object has one ground-truth masklet)"
        )


def _not_yet_recorded(session: Session, video_id: str, masklets: Sequence[Masklet]) -> list[Masklet]:
    """The masklets the catalog does not already hold as satisfactory, mask for mask.

    Importing a file again then adds nothing, while a corrected file (other masks for the same
    objects) adds a new round that exports prefer as the newest.
    """
    existing = masklet_queries.masklets_for_video(
        session, video_id, [MaskletSource.MANUAL, MaskletSource.AUTO], [SATISFACTORY]
    )
    known = {(m.source, m.object_id, m.masks) for m in existing}
    return [m for m in masklets if (m.source, m.object_id, m.masks) not in known]


def _adopt_video_fields(session: Session, video_id: str, sav_video: SavVideo) -> None:
    """A video ingested for an import takes the file's environment and split (SA-V round trip)."""
    row = session.get(VideoRow, video_id)
    if row is None:
        raise NotFoundError(f"video {video_id} vanished from the catalog during the import")
    if _fits_column(sav_video.environment, "environment"):
        row.environment = sav_video.environment
    if _fits_column(sav_video.split, "split"):
        row.split = sav_video.split


def _fits_column(value: str, column: str) -> bool:
    length = VideoRow.__table__.c[column].type.length
    return bool(value) and (length is None or len(value) <= length)


def _remove_video(catalog: Catalog, store: ObjectStore | None, video_id: str) -> None:
    """Undo this import's ingestion: the video's rows (frames cascade) and its stored frames."""
    with catalog.write() as session:
        video_queries.delete_video(session, video_id)
    if store is not None:
        store.delete_prefix(frames_prefix(video_id))


# --- Parquet export ---------------------------------------------------------------------------

_TS = pa.timestamp("us", tz="UTC")


def _field(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


@dataclass(frozen=True)
class ParquetTable:
    """One exported table: its file, its fixed schema, and the query whose columns fill it in order."""

    file_name: str
    schema: pa.Schema
    query: Callable[[], Select[Any]]
    convert: dict[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


PARQUET_TABLES: tuple[ParquetTable, ...] = (
    ParquetTable(
        "videos.parquet",
        pa.schema([
            _field("video_id", pa.string()),
            _field("source_uri", pa.string()),
            _field("content_hash", pa.string()),
            _field("width", pa.int32()),
            _field("height", pa.int32()),
            _field("source_fps", pa.float64()),
            _field("source_frame_count", pa.int32()),
            _field("duration_s", pa.float64()),
            _field("sample_fps", pa.float64()),
            _field("frame_count", pa.int32()),
            _field("environment", pa.string()),
            _field("split", pa.string()),
            _field("created_at", _TS),
        ]),
        lambda: select(
            VideoRow.id, VideoRow.source_uri, VideoRow.content_hash, VideoRow.width, VideoRow.height,
            VideoRow.source_fps, VideoRow.source_frame_count, VideoRow.duration_s, VideoRow.sample_fps,
            VideoRow.frame_count, VideoRow.environment, VideoRow.split, VideoRow.created_at,
        ).order_by(VideoRow.id),
    ),
    ParquetTable(
        "frames.parquet",
        pa.schema([
            _field("video_id", pa.string()),
            _field("frame_index", pa.int32()),
            _field("source_frame_index", pa.int32()),
            _field("timestamp_s", pa.float64()),
            _field("object_key", pa.string()),
            _field("byte_size", pa.int64()),
        ]),
        lambda: select(
            FrameRow.video_id, FrameRow.frame_index, FrameRow.source_frame_index, FrameRow.timestamp_s,
            FrameRow.object_key, FrameRow.byte_size,
        ).order_by(FrameRow.video_id, FrameRow.frame_index),
    ),
    ParquetTable(
        "masklets.parquet",
        pa.schema([
            _field("masklet_id", pa.int64()),
            _field("video_id", pa.string()),
            _field("object_id", pa.int32()),
            _field("source", pa.string()),
            _field("masklet_type", pa.string()),  # SA-V's type: ground truth counts as manual
            _field("status", pa.string()),
            _field("phase", pa.int32(), nullable=True),
            _field("annotator", pa.string(), nullable=True),
            _field("model_version_id", pa.int64(), nullable=True),
            _field("frame_count", pa.int32()),
            _field("height", pa.int32()),
            _field("width", pa.int32()),
            _field("edited_frame_count", pa.int32()),
            _field("first_appeared_frame", pa.int32(), nullable=True),
            _field("visibility_changes", pa.int32()),
            _field("size_abs", pa.float64()),
            _field("size_rel", pa.float64()),
            _field("size_bucket", pa.string()),
            _field("created_at", _TS),
        ]),
        lambda: select(
            MaskletRow.id, MaskletRow.video_id, MaskletRow.object_id, MaskletRow.source,
            case((MaskletRow.source == MaskletSource.AUTO.value, "auto"), else_="manual"),
            MaskletRow.status, MaskletRow.phase, MaskletRow.annotator, MaskletRow.model_version_id,
            MaskletRow.frame_count, MaskletRow.height, MaskletRow.width, MaskletRow.edited_frame_count,
            MaskletRow.first_appeared_frame, MaskletRow.visibility_changes, MaskletRow.size_abs,
            MaskletRow.size_abs / cast(MaskletRow.height * MaskletRow.width, Float),
            MaskletRow.size_bucket, MaskletRow.created_at,
        ).order_by(MaskletRow.id),
    ),
    ParquetTable(
        "masklet_frames.parquet",
        pa.schema([
            _field("masklet_id", pa.int64()),
            _field("frame_index", pa.int32()),
            _field("area", pa.int64()),
            _field("edited", pa.bool_()),
            _field("stability_score", pa.float64(), nullable=True),
            _field("rle", pa.binary()),  # pycocotools' compressed counts; size is the masklet's
        ]),
        lambda: select(
            MaskletFrameRow.masklet_id, MaskletFrameRow.frame_index, MaskletFrameRow.area,
            MaskletFrameRow.edited, MaskletFrameRow.stability_score, MaskletFrameRow.rle,
        ).order_by(MaskletFrameRow.masklet_id, MaskletFrameRow.frame_index),
        {"rle": bytes},
    ),
    ParquetTable(
        "annotation_events.parquet",
        pa.schema([
            _field("annotation_event_id", pa.int64()),
            _field("task_id", pa.int64(), nullable=True),
            _field("masklet_id", pa.int64(), nullable=True),
            _field("video_id", pa.string(), nullable=True),
            _field("annotator", pa.string()),
            _field("phase", pa.int32(), nullable=True),
            _field("frame_index", pa.int32(), nullable=True),
            _field("action", pa.string()),
            _field("payload", pa.string()),  # JSON text: payloads differ per action
            _field("started_at", _TS),
            _field("duration_s", pa.float64()),
        ]),
        lambda: select(
            AnnotationEventRow.id, AnnotationEventRow.task_id, AnnotationEventRow.masklet_id,
            AnnotationEventRow.video_id, AnnotationEventRow.annotator, AnnotationEventRow.phase,
            AnnotationEventRow.frame_index, AnnotationEventRow.action, AnnotationEventRow.payload,
            AnnotationEventRow.started_at, AnnotationEventRow.duration_s,
        ).order_by(AnnotationEventRow.id),
        {"payload": _json_text},
    ),
    ParquetTable(
        "verifications.parquet",
        pa.schema([
            _field("verification_id", pa.int64()),
            _field("masklet_id", pa.int64()),
            _field("verifier", pa.string()),
            _field("verdict", pa.string()),
            _field("reason", pa.string(), nullable=True),
            _field("frames", pa.list_(pa.int32()), nullable=True),
            _field("created_at", _TS),
        ]),
        lambda: select(
            VerificationRow.id, VerificationRow.masklet_id, VerificationRow.verifier,
            VerificationRow.verdict, VerificationRow.reason, VerificationRow.frames,
            VerificationRow.created_at,
        ).order_by(VerificationRow.id),
    ),
)


def export_parquet(catalog: Catalog, out_dir: Path) -> list[Path]:
    """Write every catalog table of :data:`PARQUET_TABLES` into ``out_dir``; returns the paths.

    Rows are streamed in batches of :data:`BATCH_ROWS` into each file, and all tables are read
    in one transaction (on PostgreSQL a repeatable-read snapshot), so the files agree.
    """
    written = []
    with catalog.read() as session:
        if not catalog.is_sqlite:
            # SQLite's WAL read transaction is a snapshot already; PostgreSQL's default is per statement.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        for table in PARQUET_TABLES:
            path = out_dir / table.file_name
            _write_atomic(path, lambda out, table=table: _stream_table(session, table, out))
            written.append(path)
    return written


def _stream_table(session: Session, table: ParquetTable, out: BinaryIO) -> None:
    result = session.execute(table.query().execution_options(yield_per=BATCH_ROWS))
    with pq.ParquetWriter(out, table.schema) as writer:
        for rows in result.partitions():
            writer.write_batch(_record_batch(rows, table))


def _record_batch(rows: Sequence[Any], table: ParquetTable) -> pa.RecordBatch:
    columns = []
    for index, field in enumerate(table.schema):
        values = [row[index] for row in rows]
        convert = table.convert.get(field.name)
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        columns.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(columns, schema=table.schema)
