"""SA-V and Parquet exports and SA-V imports, on SQLite and PostgreSQL.

The fixture video is 3 sampled frames of 24x32 (12 source frames at 24 FPS) with two objects:
object 3 appears late (frame 1), object 7 disappears for one frame (two visibility changes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from pycocotools import mask as coco_mask
from sqlalchemy import func, select
from typer.testing import CliRunner

from engine.errors import BadAnnotationFileError, NotFoundError
from engine.masklets import Masklet, MaskletSource
from engine.masks import decode, encode
from engine.sav import SAV_FIELDS
from engine.settings import Settings
from engine.video import Frame, Video
from flows.cli import sav_cmd
from storage import exports
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog
from engine.errors import ExportError
from storage.exports import ImportAs
from storage.objects import open_object_store
from storage.schema import (
    AnnotationEventRow,
    FrameRow,
    MaskletFrameRow,
    MaskletRow,
    VerificationRow,
    VideoRow,
)

H, W, FRAMES = 24, 32, 3
VIDEO_ID = "vid_a"


def _rect(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


EMPTY = np.zeros((H, W), dtype=bool)
MASKS: dict[int, list[np.ndarray]] = {
    3: [EMPTY, _rect(2, 6, 4, 10), _rect(3, 7, 5, 13)],  # areas 0, 24, 32
    7: [_rect(10, 20, 0, 10), EMPTY, _rect(12, 22, 20, 30)],  # areas 100, 0, 100
}
# SA-V statistics of MASKS, worked out by hand.
EXPECTED = {
    "masklet_id": [3, 7],
    "masklet_size_abs": [28.0, 100.0],
    "masklet_size_rel": [28.0 / 768, 100.0 / 768],
    "masklet_size_bucket": ["small", "small"],
    "masklet_visibility_changes": [0, 2],
    "masklet_first_appeared_frame": [1, 0],
    "masklet_frame_count": [3, 3],
}
STABILITY = {3: (0.5, 0.75, 1.0), 7: (0.25, 0.125, 0.875)}


# --- helpers -------------------------------------------------------------------------------


def make_video(video_id: str = VIDEO_ID, frames: int = FRAMES) -> Video:
    return Video(
        id=video_id,
        source_uri=f"file:///videos/{video_id}.mp4",
        content_hash=f"hash-{video_id}",
        width=W,
        height=H,
        source_fps=24.0,
        source_frame_count=4 * frames,
        duration_s=4 * frames / 24.0,
        sample_fps=6.0,
        frame_count=frames,
        environment="Indoor",
        split="train",
    )


def add_video(catalog: Catalog, video_id: str = VIDEO_ID) -> Video:
    video = make_video(video_id)
    frames = [Frame(video_id, i, 4 * i, i / 6.0, f"videos/{video_id}/frames/{i:05d}.jpg") for i in range(FRAMES)]
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [100] * FRAMES)
    return video


def masklet(
    object_id: int,
    source: MaskletSource = MaskletSource.MANUAL,
    masks: list[np.ndarray] | None = None,
    video_id: str = VIDEO_ID,
) -> Masklet:
    arrays = masks if masks is not None else MASKS[object_id]
    return Masklet(
        video_id=video_id,
        object_id=object_id,
        source=source,
        masks=tuple(encode(m) for m in arrays),
        edited_frame_count=1 if source is MaskletSource.MANUAL else 0,
        stability_scores=STABILITY[object_id] if source is MaskletSource.AUTO else None,
    )


def add_masklets(catalog: Catalog, masklets: list[Masklet], status: str = "satisfactory") -> list[int]:
    with catalog.write() as session:
        return [masklet_queries.add_masklet(session, m, status=status) for m in masklets]


def coco_json(mask: np.ndarray) -> dict[str, Any]:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def sav_dict(
    video_id: str = VIDEO_ID, *, kind: str = "manual", masks: dict[int, list[np.ndarray]] | None = None
) -> dict[str, Any]:
    """An SA-V object written out by hand, as Meta's files lay it out."""
    masks = masks if masks is not None else MASKS
    ids = sorted(masks)
    frames = len(masks[ids[0]])
    return {
        "video_id": video_id,
        "video_duration": 0.5,
        "video_frame_count": 12.0,
        "video_height": float(masks[ids[0]][0].shape[0]),
        "video_width": float(masks[ids[0]][0].shape[1]),
        "video_resolution": float(masks[ids[0]][0].size),
        "video_environment": "Outdoor",
        "video_split": "train",
        "masklet": [[coco_json(masks[o][f]) for o in ids] for f in range(frames)],
        "masklet_id": ids,
        "masklet_size_rel": [0.0] * len(ids),
        "masklet_size_abs": [0.0] * len(ids),
        "masklet_size_bucket": ["small"] * len(ids),
        "masklet_visibility_changes": [0] * len(ids),
        "masklet_first_appeared_frame": [0] * len(ids),
        "masklet_frame_count": [frames] * len(ids),
        "masklet_edited_frame_count": [1 if kind == "manual" else 0] * len(ids),
        "masklet_type": [kind] * len(ids),
        "masklet_stability_score": (
            [[STABILITY[o][f] for o in ids] for f in range(frames)] if kind == "auto" else [None] * len(ids)
        ),
        "masklet_num": len(ids),
    }


def write_sav(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(json.dumps(obj))
    return path


def counts(catalog: Catalog) -> dict[str, int]:
    """Row counts of the tables an import may touch: equal before and after means unchanged."""
    with catalog.read() as session:
        return {
            row.__tablename__: session.scalar(select(func.count()).select_from(row)) or 0
            for row in (VideoRow, FrameRow, MaskletRow, MaskletFrameRow)
        }


def decoded(m: Masklet) -> list[np.ndarray]:
    return [decode(rle) for rle in m.masks]


# --- SA-V export ---------------------------------------------------------------------------


def test_sav_export_reads_back_through_our_reader(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    originals = [masklet(7), masklet(3)]
    add_masklets(catalog, originals)

    written = exports.export_sav(catalog, None, tmp_path / "out")

    assert written == [tmp_path / "out" / "vid_a_manual.json"]
    annotation = exports.read_sav_file(written[0])
    assert annotation.masklets == (masklet(3), masklet(7))
    assert annotation.video == exports.sav_video_of(make_video())


def test_sav_export_reads_back_with_plain_json_and_pycocotools(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_masklets(catalog, [masklet(3), masklet(7)])

    [path] = exports.export_sav(catalog, [VIDEO_ID], tmp_path)
    obj = json.loads(path.read_text())

    assert list(obj) == list(SAV_FIELDS)
    assert obj["video_id"] == VIDEO_ID
    video_numbers = {"video_duration": 0.5, "video_frame_count": 12.0, "video_height": 24.0,
                     "video_width": 32.0, "video_resolution": 768.0}
    for key, value in video_numbers.items():
        assert type(obj[key]) is float and obj[key] == value, key
    assert (obj["video_environment"], obj["video_split"]) == ("Indoor", "train")
    for key, values in EXPECTED.items():
        assert obj[key] == pytest.approx(values), key
        expected_type = float if key in ("masklet_size_abs", "masklet_size_rel") else type(values[0])
        assert all(type(v) is expected_type for v in obj[key]), key
    assert obj["masklet_edited_frame_count"] == [1, 1]
    assert obj["masklet_type"] == ["manual", "manual"]
    assert obj["masklet_stability_score"] == [None, None]
    assert type(obj["masklet_num"]) is int and obj["masklet_num"] == 2
    assert len(obj["masklet"]) == FRAMES
    for f, frame in enumerate(obj["masklet"]):
        for column, object_id in enumerate(obj["masklet_id"]):
            rle = frame[column]
            assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
            np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), MASKS[object_id][f])


def test_auto_masklets_export_with_stability_scores(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_masklets(catalog, [masklet(3), masklet(3, MaskletSource.AUTO), masklet(7, MaskletSource.AUTO)])

    written = exports.export_sav(catalog, [VIDEO_ID], tmp_path)

    assert written == [tmp_path / "vid_a_manual.json", tmp_path / "vid_a_auto.json"]
    manual, auto = (json.loads(p.read_text()) for p in written)
    assert manual["masklet_id"] == [3]
    assert auto["masklet_type"] == ["auto", "auto"]
    assert auto["masklet_edited_frame_count"] == [0, 0]
    assert auto["masklet_stability_score"] == [[STABILITY[3][f], STABILITY[7][f]] for f in range(FRAMES)]
    assert all(type(s) is float for row in auto["masklet_stability_score"] for s in row)
    assert exports.read_sav_file(written[1]).masklets == (
        masklet(3, MaskletSource.AUTO),
        masklet(7, MaskletSource.AUTO),
    )


def test_dataset_export_takes_the_newest_satisfactory_masklet_per_object(
    catalog: Catalog, tmp_path: Path
) -> None:
    add_video(catalog)
    first_round = masklet(3, masks=[EMPTY, EMPTY, _rect(0, 5, 0, 5)])
    add_masklets(catalog, [first_round, masklet(7)])
    add_masklets(catalog, [masklet(3)])  # a later round of object 3
    add_masklets(catalog, [masklet(9, masks=[_rect(0, 2, 0, 2)] * 3)], status="rejected")
    add_masklets(catalog, [masklet(3, MaskletSource.GROUND_TRUTH)], status="reference")

    [path] = exports.export_sav(catalog, None, tmp_path)

    assert exports.read_sav_file(path).masklets == (masklet(3), masklet(7))


def test_ground_truth_export_and_skipped_videos(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_video(catalog, "vid_b")
    truth = [masklet(3, MaskletSource.GROUND_TRUTH), masklet(7, MaskletSource.GROUND_TRUTH)]
    add_masklets(catalog, truth, status="reference")
    skipped: list[tuple[str, str]] = []

    written = exports.export_sav(
        catalog, None, tmp_path, masklets="ground-truth", on_skip=lambda v, r: skipped.append((v, r))
    )

    assert written == [tmp_path / "vid_a_manual.json"]
    assert skipped == [("vid_b", "no ground-truth masklets")]
    obj = json.loads(written[0].read_text())
    assert obj["masklet_type"] == ["manual", "manual"]
    exported = exports.read_sav_file(written[0]).masklets
    assert [m.masks for m in exported] == [t.masks for t in truth]

    skipped.clear()
    assert exports.export_sav(catalog, None, tmp_path / "ds", on_skip=lambda v, r: skipped.append((v, r))) == []
    assert [v for v, _ in skipped] == ["vid_a", "vid_b"]


def test_export_of_an_unknown_video_raises_and_writes_nothing(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_masklets(catalog, [masklet(3)])

    with pytest.raises(NotFoundError, match="nope"):
        exports.export_sav(catalog, [VIDEO_ID, "nope"], tmp_path / "out")

    assert not (tmp_path / "out").exists()


# --- SA-V import ---------------------------------------------------------------------------


def test_import_as_ground_truth(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    path = write_sav(tmp_path / "vid_a_manual.json", sav_dict())

    result = exports.import_sav(catalog, path)

    assert (result.video_id, result.imported_as, result.imported) == (VIDEO_ID, ImportAs.GROUND_TRUTH, 2)
    with catalog.read() as session:
        rows = [
            (r.object_id, r.source, r.status, r.first_appeared_frame, r.visibility_changes)
            for r in masklet_queries.masklet_rows_for_video(session, VIDEO_ID)
        ]
        truth = masklet_queries.ground_truth(session, VIDEO_ID)
    # The statistics are recomputed from the masks, not copied: the hand-written file's are zeros.
    assert rows == [(3, "ground_truth", "reference", 1, 0), (7, "ground_truth", "reference", 0, 2)]
    for m in truth:
        for got, want in zip(decoded(m), MASKS[m.object_id]):
            np.testing.assert_array_equal(got, want)


def test_import_as_dataset_twice_adds_nothing_and_a_corrected_file_adds_a_round(
    catalog: Catalog, tmp_path: Path
) -> None:
    add_video(catalog)
    path = write_sav(tmp_path / "vid_a_manual.json", sav_dict())

    first = exports.import_sav(catalog, path, as_="dataset")
    again = exports.import_sav(catalog, path, as_=ImportAs.DATASET)

    assert (first.imported, first.already_present) == (2, 0)
    assert (again.imported, again.already_present) == (0, 2)
    with catalog.read() as session:
        rows = [(r.object_id, r.source, r.status) for r in masklet_queries.masklet_rows_for_video(session, VIDEO_ID)]
    assert rows == [(3, "manual", "satisfactory"), (7, "manual", "satisfactory")]

    corrected = {3: [EMPTY, EMPTY, _rect(1, 4, 1, 4)], 7: MASKS[7]}
    fixed = exports.import_sav(catalog, write_sav(tmp_path / "fixed.json", sav_dict(masks=corrected)), as_="dataset")
    assert (fixed.imported, fixed.already_present) == (1, 1)
    [exported] = exports.export_sav(catalog, None, tmp_path / "out")
    newest_3 = exports.read_sav_file(exported).masklets[0]
    np.testing.assert_array_equal(decoded(newest_3)[2], corrected[3][2])


def test_import_auto_file_as_dataset(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    path = write_sav(tmp_path / "vid_a_auto.json", sav_dict(kind="auto"))

    exports.import_sav(catalog, path, as_="dataset")

    with catalog.read() as session:
        stored = masklet_queries.masklets_for_video(session, VIDEO_ID)
    assert stored == [masklet(3, MaskletSource.AUTO), masklet(7, MaskletSource.AUTO)]
    [auto] = exports.export_sav(catalog, None, tmp_path / "out")
    assert auto.name == "vid_a_auto.json"


BAD_FILES = {
    "malformed JSON": (lambda: '{"video_id": "vid_a", "masklet": [', BadAnnotationFileError, "not a readable"),
    "not an object": (lambda: "[1, 2]", BadAnnotationFileError, "top level"),
    "wrong frame count": (
        lambda: json.dumps(sav_dict(masks={o: m[:2] for o, m in MASKS.items()})),
        BadAnnotationFileError,
        "2 annotated frames.*3 sampled frames",
    ),
    "wrong size": (
        lambda: json.dumps(sav_dict(masks={3: [np.zeros((16, 16), bool)] * 3})),
        BadAnnotationFileError,
        "16x16.*24x32",
    ),
    "unknown video": (lambda: json.dumps(sav_dict("vid_zz")), NotFoundError, "vid_zz.*--video"),
    "bad masklet type": (
        lambda: json.dumps({**sav_dict(), "masklet_type": ["manual", "painted"]}),
        BadAnnotationFileError,
        "painted",
    ),
}


def test_bad_imports_raise_clear_errors_and_change_nothing(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_masklets(catalog, [masklet(3)])
    before = counts(catalog)
    path = tmp_path / "bad.json"

    for case, (content, error, message) in BAD_FILES.items():
        path.write_text(content())
        for as_ in ImportAs:
            with pytest.raises(error, match=message):
                exports.import_sav(catalog, path, as_=as_)
            assert counts(catalog) == before, (case, as_)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadAnnotationFileError, match="no such file"):
        exports.read_sav_file(tmp_path / "absent.json")


def test_duplicate_ground_truth_import_is_refused_whole(catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    exports.import_sav(catalog, write_sav(tmp_path / "first.json", sav_dict(masks={3: MASKS[3]})))
    before = counts(catalog)

    both = write_sav(tmp_path / "both.json", sav_dict())  # object 3 again, object 7 new
    with pytest.raises(BadAnnotationFileError, match=r"already has ground truth for objects \[3\]"):
        exports.import_sav(catalog, both, as_="ground-truth")

    assert counts(catalog) == before


# --- import with a video file --------------------------------------------------------------


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A real 12-frame 24 FPS video of 32x24: 3 sampled frames at 6 FPS."""
    path = tmp_path / "clips" / "clip_1.mp4"
    path.parent.mkdir()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (W, H))
    for i in range(12):
        writer.write(np.full((H, W, 3), 20 * i, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str) -> Settings:
    return Settings(catalog_url=catalog_url, object_store_url=f"file://{tmp_path / 'objects'}")


def test_import_with_video_file_ingests_it_and_ignores_the_json_beside_it(
    catalog: Catalog, tmp_path: Path, video_file: Path, settings: Settings
) -> None:
    store = open_object_store(settings)
    # A JSON beside the video would be ingested as ground truth; importing as dataset must not.
    write_sav(video_file.with_suffix(".json"), sav_dict("clip_1"))
    path = write_sav(tmp_path / "clip_1_manual.json", sav_dict("clip_1"))

    result = exports.import_sav(catalog, path, as_="dataset", video_file=video_file, store=store, settings=settings)

    assert (result.video_id, result.imported, result.video_ingested) == ("clip_1", 2, True)
    with catalog.read() as session:
        video = video_queries.get_video(session, "clip_1")
        sources = {r.source for r in masklet_queries.masklet_rows_for_video(session, "clip_1")}
    assert (video.frame_count, video.environment) == (3, "Outdoor")  # the file's environment adopted
    assert sources == {"manual"}
    assert len(list(store.list("videos/clip_1/frames/"))) == 3

    truth = exports.import_sav(catalog, path, video_file=video_file, store=store, settings=settings)
    assert (truth.imported, truth.video_ingested) == (2, False)


def test_refused_masklets_remove_the_video_the_import_ingested(
    catalog: Catalog, tmp_path: Path, video_file: Path, settings: Settings
) -> None:
    store = open_object_store(settings)
    two_frames = sav_dict("clip_1", masks={o: m[:2] for o, m in MASKS.items()})
    path = write_sav(tmp_path / "clip_1_manual.json", two_frames)

    with pytest.raises(BadAnnotationFileError, match="2 annotated frames"):
        exports.import_sav(catalog, path, video_file=video_file, store=store, settings=settings)

    assert counts(catalog) == {"videos": 0, "frames": 0, "masklets": 0, "masklet_frames": 0}
    assert list(store.list("")) == []


# --- Parquet export ------------------------------------------------------------------------


def _add_event_and_verification(catalog: Catalog, masklet_id: int) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with catalog.write() as session:
        session.add(AnnotationEventRow(
            masklet_id=masklet_id, video_id=VIDEO_ID, annotator="ann_1", phase=1, frame_index=2,
            action="click", payload={"x": 3, "y": 4, "positive": True}, started_at=now, duration_s=1.5,
        ))
        session.add(VerificationRow(
            masklet_id=masklet_id, verifier="ver_1", verdict="unsatisfactory", reason="leaks", frames=[1, 2],
        ))


def test_parquet_export_streams_every_table(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "BATCH_ROWS", 2)  # several batches per table
    add_video(catalog)
    add_video(catalog, "vid_b")
    ids = add_masklets(catalog, [masklet(3), masklet(7), masklet(3, MaskletSource.AUTO)])
    add_masklets(catalog, [masklet(7, MaskletSource.GROUND_TRUTH)], status="reference")
    _add_event_and_verification(catalog, ids[0])

    written = exports.export_parquet(catalog, tmp_path / "pq")

    tables = {p.name: pq.read_table(p) for p in written}
    assert {name: t.num_rows for name, t in tables.items()} == {
        "videos.parquet": 2,
        "frames.parquet": 6,
        "masklets.parquet": 4,
        "masklet_frames.parquet": 12,
        "annotation_events.parquet": 1,
        "verifications.parquet": 1,
    }
    for spec in exports.PARQUET_TABLES:
        assert tables[spec.file_name].schema.equals(spec.schema), spec.file_name
    masklets = tables["masklets.parquet"].to_pylist()
    assert [(m["object_id"], m["source"], m["masklet_type"], m["status"]) for m in masklets] == [
        (3, "manual", "manual", "satisfactory"),
        (7, "manual", "manual", "satisfactory"),
        (3, "auto", "auto", "satisfactory"),
        (7, "ground_truth", "manual", "reference"),
    ]
    assert masklets[0]["size_rel"] == pytest.approx(28.0 / 768)
    assert masklets[1]["visibility_changes"] == 2
    frames = tables["masklet_frames.parquet"].to_pylist()
    first = [f for f in frames if f["masklet_id"] == ids[0]]
    assert [f["area"] for f in first] == [0, 24, 32]
    assert [f["stability_score"] for f in frames if f["masklet_id"] == ids[2]] == list(STABILITY[3])
    np.testing.assert_array_equal(
        coco_mask.decode({"size": [H, W], "counts": first[1]["rle"]}).astype(bool), MASKS[3][1]
    )
    [event] = tables["annotation_events.parquet"].to_pylist()
    assert json.loads(event["payload"]) == {"x": 3, "y": 4, "positive": True}
    assert event["started_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    [verification] = tables["verifications.parquet"].to_pylist()
    assert (verification["verdict"], verification["frames"]) == ("unsatisfactory", [1, 2])


def test_parquet_export_of_an_empty_catalog_writes_typed_empty_tables(catalog: Catalog, tmp_path: Path) -> None:
    written = exports.export_parquet(catalog, tmp_path)

    assert [p.name for p in written] == [t.file_name for t in exports.PARQUET_TABLES]
    for path, spec in zip(written, exports.PARQUET_TABLES):
        table = pq.read_table(path)
        assert table.num_rows == 0
        assert table.schema.equals(spec.schema)


def test_failed_writes_leave_no_temporary_files(
    sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_video(sqlite_catalog)
    add_masklets(sqlite_catalog, [masklet(3)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "vid_a_manual.json").write_text("previous")

    def no_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(ExportError, match="No space left"):
        exports.export_sav(sqlite_catalog, None, out)
    with pytest.raises(ExportError, match="videos.parquet"):
        exports.export_parquet(sqlite_catalog, out)
    with pytest.raises(ExportError):
        exports.write_json_atomic(out / "x.json", {"a": 1})

    assert sorted(p.name for p in out.iterdir()) == ["vid_a_manual.json"]
    assert (out / "vid_a_manual.json").read_text() == "previous"


# --- CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", catalog_url)
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'objects'}")
    app = typer.Typer()
    sav_cmd.register(app)
    yield app


def test_cli_imports_and_exports(cli: typer.Typer, catalog: Catalog, tmp_path: Path) -> None:
    add_video(catalog)
    add_video(catalog, "vid_b")
    path = write_sav(tmp_path / "vid_a_manual.json", sav_dict())
    runner = CliRunner()

    imported = runner.invoke(cli, ["import-sav", str(path), "--as", "dataset"])
    assert imported.exit_code == 0, imported.output
    assert "imported 2 dataset masklets for video vid_a" in imported.output

    exported = runner.invoke(cli, ["export-sav", "--out", str(tmp_path / "sav")])
    assert exported.exit_code == 0, exported.output
    assert f"wrote {tmp_path / 'sav' / 'vid_a_manual.json'}" in exported.output
    assert "skipped vid_b: no dataset masklets" in exported.output

    truth = runner.invoke(cli, ["export-sav", "vid_a", "--out", str(tmp_path / "gt"), "--masklets", "ground-truth"])
    assert truth.exit_code == 0 and "skipped vid_a" in truth.output

    parquet = runner.invoke(cli, ["export-parquet", "--out", str(tmp_path / "pq")])
    assert parquet.exit_code == 0, parquet.output
    assert parquet.output.count("wrote ") == len(exports.PARQUET_TABLES)
    assert pq.read_table(tmp_path / "pq" / "masklets.parquet").num_rows == 2


def test_cli_reports_errors_in_one_line(cli: typer.Typer, catalog: Catalog, tmp_path: Path) -> None:
    runner = CliRunner()

    unknown = runner.invoke(cli, ["export-sav", "ghost", "--out", str(tmp_path / "sav")])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    bad = runner.invoke(cli, ["import-sav", str(broken)])

    assert unknown.exit_code == 2 and "error: no videos ['ghost']" in unknown.output
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
