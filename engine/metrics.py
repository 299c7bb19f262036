"""The data engine's per-phase metrics, side by side with the SAM 2 paper's Table 1.

From the annotation events, masklets, verdicts and ground truth the catalog holds
(:mod:`storage.annotation_metrics` loads them), per phase, model version or annotator:

- **seconds per frame**: annotation time (every event but verdicts, model time included)
  over the frames of the masklets made; ``model_seconds_per_frame`` is its measured model share;
  like **clicks per clicked frame**, pooled over the group (the paper says "average" and no more);
- **edited-frame percentage**: the share of a masklet's frames the annotator edited (clicks,
  strokes, annotated from scratch), averaged over masklets, as the paper's Table 1 averages it;
- **clicks per clicked frame**, **brush strokes per frame**, **masklets per hour**;
- **verification outcomes**: verdicts given on the group's masklets;
- **J&F** against ground truth, where there is ground truth (all frames scored);
- **mask alignment with Phase 1** (the paper's "Phase 1 Mask Alignment Score"): the share of
  masks (frames where either masklet shows the object) whose IoU with the Phase 1 mask of the
  same object exceeds 0.75, overall and by size bucket. The paper buckets a masklet by its mask
  area in the first frame (small: 1 to 32², medium: 32² to 96², large: 96² and more; SAM 2
  paper, appendix D.2.2); :func:`alignment_bucket` does that with the Phase 1 masklet's first
  visible frame.

Everything here is pure: records in, rows out.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from engine.annotation import STROKES, Action, AnnotationEvent
from engine.masklets import Masklet, SizeBucket, size_bucket
from engine.jf import score_object
from engine.masks import decode, iou_matrix

ALIGNMENT_IOU = 0.75  # the paper's threshold for a mask "aligned" with Phase 1's


class Work(StrEnum):
    """How a masklet was made: annotated in a phase, refined after verification, or generated."""

    ANNOTATE = "annotate"
    REFINE = "refine"
    AUTO = "auto"


class GroupBy(StrEnum):
    PHASE = "phase"
    MODEL = "model"
    ANNOTATOR = "annotator"


@dataclass(frozen=True)
class MaskletRecord:
    """A masklet as the metrics see it (drafts and ground truth never are)."""

    masklet_id: int
    video_id: str
    object_id: int
    phase: int | None
    work: Work
    annotator: str | None
    model_version_id: int | None
    frame_count: int
    edited_frame_count: int


@dataclass(frozen=True)
class MaskletQuality:
    """A masklet's quality: J&F against ground truth, IoU of its masks with Phase 1's."""

    jf: float | None = None
    alignment_ious: tuple[float, ...] = ()  # one per frame where either masklet shows the object
    phase1_bucket: SizeBucket | None = None  # the Phase 1 masklet's, by :func:`alignment_bucket`


@dataclass(frozen=True)
class MaskletStats:
    """What one masklet's annotation events add up to."""

    seconds: float = 0.0
    model_seconds: float = 0.0
    clicks: int = 0
    clicked_frames: int = 0
    strokes: int = 0


@dataclass(frozen=True)
class Alignment:
    """Share (%) of masks with IoU > 0.75 against Phase 1, overall and per size bucket (None: no masks)."""

    all: float | None = None
    small: float | None = None
    medium: float | None = None
    large: float | None = None


@dataclass(frozen=True)
class PhaseMetrics:
    """One row of the table: a group of masklets (a phase, a model version, an annotator)."""

    phase: int | None
    work: Work
    model_version_id: int | None
    annotator: str | None
    masklets: int
    frames: int
    seconds_per_frame: float
    model_seconds_per_frame: float
    edited_frame_pct: float
    clicks_per_clicked_frame: float
    brush_strokes_per_frame: float
    masklets_per_hour: float
    verdicts: Mapping[str, int]
    jf: float | None
    alignment: Alignment

    @property
    def label(self) -> str:
        name = "auto masklets" if self.phase is None else f"Phase {self.phase}"
        if self.work is Work.REFINE:
            name += " refine"
        if self.model_version_id is not None:
            name += f" model {self.model_version_id}"
        if self.annotator is not None:
            name += f" {self.annotator}"
        return name

    def as_record(self) -> dict[str, Any]:
        """A flat JSON record (NaN and infinities as null), for ``dataengine metrics --format json``."""
        record: dict[str, Any] = {
            "phase": self.phase,
            "work": self.work.value,
            "model_version_id": self.model_version_id,
            "annotator": self.annotator,
            "masklets": self.masklets,
            "frames": self.frames,
            "seconds_per_frame": self.seconds_per_frame,
            "model_seconds_per_frame": self.model_seconds_per_frame,
            "edited_frame_pct": self.edited_frame_pct,
            "clicks_per_clicked_frame": self.clicks_per_clicked_frame,
            "brush_strokes_per_frame": self.brush_strokes_per_frame,
            "masklets_per_hour": self.masklets_per_hour,
            "verdicts": dict(self.verdicts),
            "jf": self.jf,
            "alignment_all": self.alignment.all,
            "alignment_small": self.alignment.small,
            "alignment_medium": self.alignment.medium,
            "alignment_large": self.alignment.large,
        }
        return {k: _finite(v) for k, v in record.items()}


@dataclass(frozen=True)
class PaperRow:
    """One row of the SAM 2 paper's Table 1 (the data engine's phases), to print beside ours.

    The columns as the paper defines them (section 5.1, "Analysis", and appendix D.2.2): the
    average annotation time per frame; the average percentage of manually edited frames per
    masklet; the number of manual clicks per clicked frame; and the Phase 1 Mask Alignment
    Score, the percentage of masks whose IoU with the corresponding Phase 1 mask exceeds 0.75,
    overall and by the masklet's mask area in the first frame. Phase 1 is the reference of the
    alignment, so its row has none. The paper measured them in a controlled experiment (169
    videos, 452 masklets, the same objects annotated under each phase's protocol), so they
    compare protocols, not the phases' production runs.
    """

    phase: int
    model: str
    seconds_per_frame: float
    edited_frame_pct: float
    clicks_per_clicked_frame: float
    alignment: Alignment = field(default_factory=Alignment)


# SAM 2 paper: N. Ravi et al., "SAM 2: Segment Anything in Images and Videos", arXiv:2408.00714
# (v1, 2024), section 5.1 "Data engine", Table 1 ("Evolution of data engine phases ..."). Every
# number below was checked against that table, column by column (time per frame, edited
# frames %, clicks per clicked frame, alignment all/small/medium/large with IoU > 0.75); the
# Phase 1 alignment cells are "-" in the paper. Phase 2 is "SAM + SAM 2 Mask", Phase 3 "SAM 2".
PAPER_TABLE_1 = (
    PaperRow(1, "SAM only", 37.8, 100.0, 4.80),
    PaperRow(2, "SAM + SAM 2 Mask", 7.4, 23.25, 3.61, Alignment(86.4, 71.3, 80.4, 97.9)),
    PaperRow(3, "SAM 2", 4.5, 19.04, 2.68, Alignment(89.1, 72.8, 81.8, 100.0)),
)


def masklet_stats(events: Iterable[AnnotationEvent]) -> MaskletStats:
    """Seconds, model seconds, clicks, clicked frames and strokes of one masklet's annotation."""
    seconds = model_seconds = 0.0
    clicks = strokes = 0
    clicked: set[int | None] = set()
    for event in events:
        if event.action is Action.VERDICT:
            continue
        seconds += event.duration_s
        model_seconds += event.model_s
        if event.action is Action.CLICK:
            clicks += 1
            clicked.add(event.frame_index)
        elif event.action in STROKES:
            strokes += 1
    return MaskletStats(seconds, model_seconds, clicks, len(clicked), strokes)


def masklet_jf(masklet: Masklet, truth: Masklet) -> float:
    """J&F of a masklet against its ground truth over all its frames (the first and last count too)."""
    pairs = ((decode(m), decode(t)) for m, t in zip(masklet.masks, truth.masks, strict=True))
    score = score_object(masklet.video_id, masklet.object_id, pairs, skip_first_last=False)
    if score is None:  # the truth never shows the object: right only if the masklet agrees
        return 1.0 if masklet.first_appeared_frame is None else 0.0
    return float(score.jf)


def alignment_ious(masklet: Masklet, phase1: Masklet) -> tuple[float, ...]:
    """Per-frame IoU of a masklet with the Phase 1 masklet of the same object, where either shows it."""
    if masklet.frame_count != phase1.frame_count:
        return ()
    ious = []
    for mask, reference, area, reference_area in zip(masklet.masks, phase1.masks, masklet.areas, phase1.areas):
        if area or reference_area:
            ious.append(float(iou_matrix([mask], [reference])[0, 0]))
    return tuple(ious)


def alignment_bucket(phase1: Masklet) -> SizeBucket | None:
    """The size bucket the paper's alignment columns put a masklet in: its mask area in its first frame.

    SAM 2 paper, appendix D.2.2: small 1 to 32², medium 32² to 96², large 96² and more, of the
    first frame's mask (there every object was annotated from the video's first frame). Our
    objects may enter late, so the first frame is the Phase 1 masklet's first visible frame;
    None when it never shows the object (no mask to align with).
    """
    first = phase1.first_appeared_frame
    return None if first is None else size_bucket(phase1.areas[first])


def best_match(masklet: Masklet, truths: Sequence[Masklet]) -> Masklet | None:
    """The masklet of ``truths`` that ``masklet`` follows best (mean IoU where either shows its object).

    For masklets that are not annotations of a known object (automatic ones, and refinements
    of them): None when it overlaps none of them.
    """
    best, best_score = None, 0.0
    for truth in truths:
        ious = alignment_ious(masklet, truth)
        score = sum(ious) / len(ious) if ious else 0.0
        if score > best_score:
            best, best_score = truth, score
    return best


def summarize(
    masklets: Sequence[MaskletRecord],
    events: Iterable[AnnotationEvent],
    verdicts: Iterable[tuple[int, str]],
    quality: Mapping[int, MaskletQuality],
    group_by: GroupBy = GroupBy.PHASE,
) -> list[PhaseMetrics]:
    """One row per (phase, work) and, by ``group_by``, per model version or annotator."""
    by_masklet: dict[int, list[AnnotationEvent]] = defaultdict(list)
    for event in events:
        if event.masklet_id is not None:
            by_masklet[event.masklet_id].append(event)
    stats = {m.masklet_id: masklet_stats(by_masklet.get(m.masklet_id, ())) for m in masklets}
    verdicts_of: dict[int, list[str]] = defaultdict(list)
    for masklet_id, verdict in verdicts:
        verdicts_of[masklet_id].append(verdict)

    groups: dict[tuple[Any, ...], list[MaskletRecord]] = defaultdict(list)
    for m in masklets:
        groups[_group_key(m, group_by)].append(m)
    rows = [
        _row(key, members, stats, verdicts_of, quality)
        for key, members in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    return rows


def _group_key(m: MaskletRecord, group_by: GroupBy) -> tuple[Any, ...]:
    model = m.model_version_id if group_by is GroupBy.MODEL else None
    annotator = m.annotator if group_by is GroupBy.ANNOTATOR else None
    return (m.phase, m.work, model, annotator)


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    phase, work, model, annotator = key
    order = list(Work).index(work)
    return (phase is None, phase or 0, order, model is not None, model or 0, annotator or "")


def _row(
    key: tuple[Any, ...],
    members: list[MaskletRecord],
    stats: Mapping[int, MaskletStats],
    verdicts_of: Mapping[int, list[str]],
    quality: Mapping[int, MaskletQuality],
) -> PhaseMetrics:
    phase, work, model, annotator = key
    frames = sum(m.frame_count for m in members)
    own = [stats[m.masklet_id] for m in members]
    seconds = sum(s.seconds for s in own)
    clicked = sum(s.clicked_frames for s in own)
    counts: dict[str, int] = defaultdict(int)
    for m in members:
        for verdict in verdicts_of.get(m.masklet_id, ()):
            counts[verdict] += 1
    scores = [q.jf for m in members if (q := quality.get(m.masklet_id)) is not None and q.jf is not None]
    return PhaseMetrics(
        phase=phase,
        work=work,
        model_version_id=model,
        annotator=annotator,
        masklets=len(members),
        frames=frames,
        seconds_per_frame=_ratio(seconds, frames),
        model_seconds_per_frame=_ratio(sum(s.model_seconds for s in own), frames),
        edited_frame_pct=_edited_pct(members),
        clicks_per_clicked_frame=_ratio(sum(s.clicks for s in own), clicked),
        brush_strokes_per_frame=_ratio(sum(s.strokes for s in own), frames),
        masklets_per_hour=_ratio(3600.0 * len(members), seconds),
        verdicts=dict(sorted(counts.items())),
        jf=float(np.mean(scores)) if scores else None,
        alignment=_alignment([quality[m.masklet_id] for m in members if m.masklet_id in quality]),
    )


def _edited_pct(members: Sequence[MaskletRecord]) -> float:
    """Mean over masklets of the share of their frames edited (the paper's "per masklet" average).

    A frame-weighted share would let one long masklet outweigh many short ones.
    """
    shares = [m.edited_frame_count / m.frame_count for m in members if m.frame_count]
    return 100.0 * float(np.mean(shares)) if shares else math.nan


def _alignment(qualities: Sequence[MaskletQuality]) -> Alignment:
    ious: dict[SizeBucket | None, list[float]] = defaultdict(list)
    for q in qualities:
        if q.alignment_ious:
            ious[None].extend(q.alignment_ious)
            ious[q.phase1_bucket].extend(q.alignment_ious)

    def share(values: list[float]) -> float | None:
        return 100.0 * sum(v > ALIGNMENT_IOU for v in values) / len(values) if values else None

    return Alignment(
        share(ious[None]), share(ious[SizeBucket.SMALL]), share(ious[SizeBucket.MEDIUM]), share(ious[SizeBucket.LARGE])
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- printing ---------------------------------------------------------------------------------


def format_table(rows: Sequence[PhaseMetrics], *, with_paper: bool = True) -> str:
    """The paper-style table: our rows, each phase's paper row beside it, and speedups over Phase 1."""
    phase1 = next((r for r in rows if r.phase == 1 and r.work is Work.ANNOTATE), None)
    header = (
        f"{'':<26} {'s/frame':>8} {'model s':>8} {'speedup':>8} {'edited %':>9} {'clicks/cf':>9} "
        f"{'strokes/f':>9} {'J&F':>6} {'align all/S/M/L (IoU>0.75, %)':>32} {'verdicts'}"
    )
    lines = [header, "-" * len(header)]
    paper = {p.phase: p for p in PAPER_TABLE_1}
    for row in rows:
        speedup = _ratio(phase1.seconds_per_frame, row.seconds_per_frame) if phase1 is not None else math.nan
        verdicts = ", ".join(f"{k} {v}" for k, v in row.verdicts.items()) or "-"
        lines.append(
            f"{row.label:<26} {_num(row.seconds_per_frame, 8, 1)} {_num(row.model_seconds_per_frame, 8, 2)} "
            f"{_num(speedup, 7, 1)}x {_num(row.edited_frame_pct, 9, 1)} {_num(row.clicks_per_clicked_frame, 9, 2)} "
            f"{_num(row.brush_strokes_per_frame, 9, 2)} {_num(row.jf, 6, 3)} {_alignment_text(row.alignment):>32} {verdicts}"
        )
        reference = paper.get(row.phase) if row.work is Work.ANNOTATE and row.annotator is None else None
        if with_paper and reference is not None and row.model_version_id is None:
            paper_speedup = PAPER_TABLE_1[0].seconds_per_frame / reference.seconds_per_frame
            lines.append(
                f"{'  paper: ' + reference.model:<26} {_num(reference.seconds_per_frame, 8, 1)} {'':>8} "
                f"{_num(paper_speedup, 7, 1)}x {_num(reference.edited_frame_pct, 9, 2)} "
                f"{_num(reference.clicks_per_clicked_frame, 9, 2)} {'':>9} {'':>6} {_alignment_text(reference.alignment):>32}"
            )
    return "\n".join(lines)


def to_json(rows: Sequence[PhaseMetrics]) -> str:
    return json.dumps([r.as_record() for r in rows], indent=2)


def _num(value: float | None, width: int, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def _alignment_text(a: Alignment) -> str:
    values = (a.all, a.small, a.medium, a.large)
    if all(v is None for v in values):
        return "-"
    return " / ".join("-" if v is None else f"{v:.1f}" for v in values)
