"""Per-phase metrics from events, verdicts and masks, and the paper-style table."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from types import MappingProxyType

import numpy as np
import pytest

from engine.annotation import Action, AnnotationEvent
from engine.masklets import Masklet, MaskletSource, SizeBucket
from engine.masks import encode
from engine.metrics import (
    PAPER_TABLE_1,
    Alignment,
    GroupBy,
    MaskletQuality,
    MaskletRecord,
    Work,
    alignment_bucket,
    alignment_ious,
    format_table,
    masklet_jf,
    masklet_stats,
    summarize,
    to_json,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(masklet_id: int, action: Action, frame: int | None, seconds: float, model_s: float = 0.0) -> AnnotationEvent:
    payload = MappingProxyType({"model_s": model_s} if model_s else {})
    return AnnotationEvent(None, masklet_id, "v", "ann", 1, frame, action, payload, T0, seconds)


def record(masklet_id: int, phase: int | None, *, frames: int = 10, edited: int = 10, work: Work = Work.ANNOTATE,
           annotator: str = "ann", model: int | None = None) -> MaskletRecord:
    return MaskletRecord(masklet_id, "v", masklet_id, phase, work, annotator, model, frames, edited)


def test_masklet_stats_count_clicks_per_clicked_frame_strokes_and_time() -> None:
    events = [
        event(1, Action.CLICK, 0, 2.5, 0.5),
        event(1, Action.CLICK, 0, 1.5),
        event(1, Action.CLICK, 3, 1.5),
        event(1, Action.BRUSH, 3, 10.0),
        event(1, Action.ERASER, 4, 5.0),
        event(1, Action.PROPAGATE, 0, 2.0, 2.0),
        event(1, Action.VERDICT, None, 9.0),  # verification: not annotation time
    ]
    stats = masklet_stats(events)
    assert stats.seconds == pytest.approx(22.5)
    assert stats.model_seconds == pytest.approx(2.5)
    assert (stats.clicks, stats.clicked_frames, stats.strokes) == (3, 2, 2)


def test_summarize_gives_one_row_per_phase_with_the_table_s_measures() -> None:
    masklets = [record(1, 1), record(2, 1), record(3, 3, edited=2)]
    events = [
        event(1, Action.CLICK, 0, 100.0), event(2, Action.CLICK, 0, 200.0),
        event(3, Action.CLICK, 0, 10.0), event(3, Action.CLICK, 0, 10.0), event(3, Action.CLICK, 5, 10.0),
    ]
    verdicts = [(1, "satisfactory"), (2, "unsatisfactory"), (3, "satisfactory")]
    quality = {3: MaskletQuality(0.9, (0.8, 0.7, 0.9, 0.95), SizeBucket.SMALL), 1: MaskletQuality(0.95)}
    rows = summarize(masklets, events, verdicts, quality)
    phase1, phase3 = rows
    assert (phase1.phase, phase3.phase) == (1, 3)
    assert phase1.seconds_per_frame == pytest.approx(300.0 / 20)
    assert phase1.edited_frame_pct == pytest.approx(100.0)
    assert phase1.verdicts == {"satisfactory": 1, "unsatisfactory": 1}
    assert phase1.jf == pytest.approx(0.95)
    assert phase3.seconds_per_frame == pytest.approx(3.0)
    assert phase3.edited_frame_pct == pytest.approx(20.0)
    assert phase3.clicks_per_clicked_frame == pytest.approx(1.5)
    assert phase3.masklets_per_hour == pytest.approx(3600.0 / 30.0)
    assert phase3.alignment.all == pytest.approx(75.0) and phase3.alignment.small == pytest.approx(75.0)
    assert phase3.alignment.large is None


def test_rows_by_annotator_and_model_version_and_refinements_apart() -> None:
    masklets = [
        record(1, 3, annotator="a"), record(2, 3, annotator="b"), record(3, 3, work=Work.REFINE, annotator="a"),
        record(4, None, work=Work.AUTO, annotator=None, model=7),
    ]
    by_annotator = summarize(masklets, [], [], {}, GroupBy.ANNOTATOR)
    assert [(r.phase, r.work, r.annotator) for r in by_annotator] == [
        (3, Work.ANNOTATE, "a"), (3, Work.ANNOTATE, "b"), (3, Work.REFINE, "a"), (None, Work.AUTO, None),
    ]
    by_model = summarize(masklets, [], [], {}, GroupBy.MODEL)
    assert [r.model_version_id for r in by_model] == [None, None, 7]


def test_json_records_have_the_documented_keys_and_no_nan() -> None:
    rows = summarize([record(1, 2)], [], [], {})
    records = json.loads(to_json(rows))
    assert records[0]["phase"] == 2
    for key in ("seconds_per_frame", "edited_frame_pct", "clicks_per_clicked_frame", "masklets", "jf", "alignment_all"):
        assert key in records[0]
    assert records[0]["clicks_per_clicked_frame"] is None  # no clicks: not NaN in JSON
    assert math.isnan(rows[0].clicks_per_clicked_frame)


def test_table_prints_the_paper_beside_ours_with_speedups() -> None:
    masklets = [record(1, 1), record(2, 2), record(3, 3)]
    events = [event(1, Action.BRUSH, 0, 378.0), event(2, Action.BRUSH, 0, 74.0), event(3, Action.BRUSH, 0, 45.0)]
    table = format_table(summarize(masklets, events, [], {}))
    assert "paper: SAM only" in table and "paper: SAM 2" in table
    assert "8.4x" in table and "5.1x" in table  # ours equal the paper's here: 37.8 / 4.5 and 37.8 / 7.4


def test_the_paper_s_table_agrees_with_the_speedups_its_text_states() -> None:
    """Section 5.1 says Phase 2 is ~5.1x and Phase 3 ~8.4x faster than Phase 1: Table 1's times must give that."""
    phase1, phase2, phase3 = PAPER_TABLE_1
    assert round(phase1.seconds_per_frame / phase2.seconds_per_frame, 1) == 5.1
    assert round(phase1.seconds_per_frame / phase3.seconds_per_frame, 1) == 8.4
    assert phase1.alignment == Alignment()  # the reference: no alignment of its own
    # "Phase 3 ... has the lowest edited frame percentage and clicks per frame, and results in better alignment"
    assert phase3.edited_frame_pct < phase2.edited_frame_pct < phase1.edited_frame_pct
    assert phase3.clicks_per_clicked_frame < phase2.clicks_per_clicked_frame < phase1.clicks_per_clicked_frame
    assert phase3.alignment.all > phase2.alignment.all


def test_edited_frame_percentage_is_averaged_per_masklet_as_in_the_paper() -> None:
    rows = summarize([record(1, 2, frames=10, edited=10), record(2, 2, frames=30, edited=0)], [], [], {})
    assert rows[0].edited_frame_pct == pytest.approx(50.0)  # not 10 / 40 = 25 %


def test_alignment_buckets_by_the_first_frame_s_mask_area() -> None:
    def masklet(*sides: int) -> Masklet:
        masks = []
        for side in sides:
            mask = np.zeros((128, 128), bool)
            mask[:side, :side] = True
            masks.append(encode(mask))
        return Masklet("v", 0, MaskletSource.MANUAL, tuple(masks))

    # Small in its first visible frame, large on average: the paper's bucket is the first frame's.
    grows = masklet(0, 20, 120, 120)
    assert grows.size_bucket is SizeBucket.LARGE and alignment_bucket(grows) is SizeBucket.SMALL
    assert alignment_bucket(masklet(32, 1)) is SizeBucket.MEDIUM  # 32² is medium: small is below it
    assert alignment_bucket(masklet(96)) is SizeBucket.LARGE
    assert alignment_bucket(masklet(0, 0)) is None


def test_alignment_ious_count_frames_where_either_masklet_shows_the_object() -> None:
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    half = full.copy()
    half[:4] = False
    a = Masklet("v", 0, MaskletSource.MANUAL, tuple(encode(m) for m in (empty, full, half)))
    b = Masklet("v", 0, MaskletSource.MANUAL, tuple(encode(m) for m in (empty, full, full)))
    assert alignment_ious(a, b) == pytest.approx((1.0, 0.5))


def test_masklet_jf_is_one_for_the_truth_itself() -> None:
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    truth = Masklet("v", 0, MaskletSource.GROUND_TRUTH, (encode(mask),) * 3)
    assert masklet_jf(truth, truth) == pytest.approx(1.0)
