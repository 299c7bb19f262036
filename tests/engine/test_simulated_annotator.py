"""The simulated annotator's click policy, strokes and judgement, and the simulated verifier."""

from __future__ import annotations

import numpy as np
import pytest

from engine.annotation import Click
from engine.errors import ConfigError, MissingGroundTruthError
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.queues import Verdict
from engine.simulated_annotator import (
    SimulatedAnnotator,
    SimulatedVerifier,
    Skill,
    VerifierSkill,
    centre,
    corrective_click,
    error_regions,
    frame_iou,
)
from engine.time_model import TimeModel

H, W = 48, 64


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def masklet_of(masks: list[np.ndarray], object_id: int = 0) -> Masklet:
    return Masklet("v", object_id, MaskletSource.GROUND_TRUTH, tuple(encode(m) for m in masks))


def test_centre_is_the_point_farthest_from_the_boundary() -> None:
    assert centre(box(10, 10, 31, 21)) == (20, 15)
    # A square with a long thin handle: the square's middle, not the middle of the bounding box.
    shape = box(2, 2, 32, 32) | box(32, 15, 64, 19)
    assert centre(shape) == (16, 16) or centre(shape) == (17, 17)


def test_the_frame_edge_counts_as_a_boundary() -> None:
    # A region touching the left edge: its centre is not on the edge.
    x, y = centre(box(0, 10, 20, 30))
    assert (x, y) == (10, 20) or (x in (9, 10) and y in (19, 20))


def test_first_click_lands_on_the_object_s_centre_and_is_positive() -> None:
    truth = box(10, 10, 31, 21)
    click = corrective_click(0, np.zeros((H, W), bool), truth)
    assert click == Click(0, 20.0, 15.0, positive=True)


def test_next_click_is_at_the_centre_of_the_largest_error_region() -> None:
    truth = box(10, 10, 50, 40)
    mask = truth.copy()
    mask[10:40, 30:50] = False  # a large missed part (20 x 30)
    mask[0:4, 0:4] = True  # a small spurious blob
    click = corrective_click(0, mask, truth)
    assert click is not None and click.positive
    assert 30 <= click.x < 50 and 10 <= click.y < 40
    assert (click.x, click.y) == centre(truth & ~mask)


def test_a_negative_click_on_the_largest_spurious_region() -> None:
    truth = box(10, 10, 30, 30)
    mask = truth | box(35, 5, 60, 45)  # a large spill beside the object
    click = corrective_click(0, mask, truth)
    assert click is not None and not click.positive
    assert mask[int(click.y), int(click.x)] and not truth[int(click.y), int(click.x)]


def test_error_regions_are_sorted_largest_first_with_their_sign() -> None:
    truth = box(10, 10, 40, 40)
    mask = truth.copy()
    mask[10:12, 10:40] = False  # missed: 60 px
    mask[44:47, 0:30] = True  # spurious: 90 px
    regions = error_regions(mask, truth)
    assert [(r.area, r.missed) for r in regions] == [(90, False), (60, True)]


def test_clicks_stop_at_the_target_or_the_budget() -> None:
    truth = box(10, 10, 40, 40)
    annotator = SimulatedAnnotator(masklet_of([truth]), name="a", skill=Skill(click_budget=2))
    assert annotator.next_click(0, truth, []) is None  # already right
    wrong = np.zeros((H, W), bool)
    assert annotator.next_click(0, wrong, []) is not None
    two = [Click(0, 1, 1, True), Click(0, 2, 2, True)]
    assert annotator.next_click(0, wrong, two) is None  # budget spent


def test_jitter_moves_clicks_but_keeps_them_inside_the_region_and_is_seeded() -> None:
    truth = box(5, 5, 60, 45)
    skill = Skill(click_jitter_px=6.0)
    first = [SimulatedAnnotator(masklet_of([truth]), name="a", skill=skill, seed=7).next_click(0, ~truth & truth, []) for _ in range(2)]
    assert first[0] == first[1]  # same seed, same click
    clicks = {(c.x, c.y) for s in range(20) if (c := SimulatedAnnotator(masklet_of([truth]), name="a", skill=skill, seed=s).next_click(0, np.zeros((H, W), bool), []))}
    assert len(clicks) > 1
    assert all(truth[int(y), int(x)] for x, y in clicks)


def test_strokes_fix_what_clicks_left_to_the_polish_target() -> None:
    truth = box(10, 10, 40, 40)
    mask = truth.copy()
    mask[10:20, 10:40] = False  # missed
    mask[40:44, 10:40] = True  # spurious
    annotator = SimulatedAnnotator(masklet_of([truth]), name="a", skill=Skill(polish_target=0.99))
    strokes = annotator.strokes(0, mask)
    assert {s.eraser for s in strokes} == {True, False}
    for stroke in strokes:
        mask = stroke.apply(mask)
    assert frame_iou(mask, truth) >= 0.99


def test_a_hopeless_mask_is_cleared_and_painted_anew() -> None:
    truth = box(20, 15, 40, 35)
    noise = np.random.default_rng(0).random((H, W)) < 0.3  # speckle, as a random model gives
    annotator = SimulatedAnnotator(masklet_of([truth]), name="a")
    assert annotator.starts_over(0, noise)
    nearly = truth.copy()
    nearly[15:17, 20:40] = False
    assert not annotator.starts_over(0, nearly)


def test_a_mostly_wrong_mask_that_one_stroke_fixes_is_fixed_rather_than_outlined_anew() -> None:
    """Below IoU 0.5 the annotator weighs the fix against a clear and an outline (79.2 s), and takes the cheaper."""
    truth = box(20, 15, 40, 35)
    half = truth.copy()
    half[:, 28:] = False  # the left 40 % of the object: IoU 0.4, one brush stroke from the truth
    annotator = SimulatedAnnotator(masklet_of([truth]), name="a")
    assert frame_iou(half, truth) < annotator.skill.restart_below
    assert len(annotator.strokes(0, half)) == 1
    assert not annotator.starts_over(0, half)
    # With outlines priced like a stroke, clearing and drawing anew would be the cheaper way.
    cheap_outlines = SimulatedAnnotator(masklet_of([truth]), name="a", time_model=TimeModel(outline_s=1.0))
    assert cheap_outlines.starts_over(0, half)


def test_the_strokes_weighed_by_starts_over_are_the_strokes_given_and_are_not_painted_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truth = box(20, 15, 40, 35)
    half = truth.copy()
    half[:, 28:] = False
    half[0:4, 0:6] = True  # and a spill: two strokes fix it
    expected = SimulatedAnnotator(masklet_of([truth]), name="a").strokes(0, half)
    annotator = SimulatedAnnotator(masklet_of([truth]), name="a")
    painted = []
    original = SimulatedAnnotator._fixing_strokes

    def counted(self, frame, mask, *, polish):
        painted.append(frame)
        return original(self, frame, mask, polish=polish)

    monkeypatch.setattr(SimulatedAnnotator, "_fixing_strokes", counted)
    assert not annotator.starts_over(0, half)
    strokes = annotator.strokes(0, half)
    assert [(s.region, s.eraser) for s in strokes] == [(s.region, s.eraser) for s in expected] and len(strokes) == 2
    assert painted == [0]
    # Another mask (or target) is planned afresh, never answered from the plan.
    assert not annotator.starts_over(0, half)
    other = half.copy()
    other[0:4, 0:6] = False
    assert len(annotator.strokes(0, other)) == 1
    assert len(annotator.strokes(0, half, polish=False)) >= 1 and painted == [0, 0, 0, 0]


def test_examining_accepts_a_failing_frame_only_by_overlooking() -> None:
    truth = box(10, 10, 40, 40)
    wrong = box(0, 0, 5, 5)
    careful = SimulatedAnnotator(masklet_of([truth]), name="a", skill=Skill(overlook_chance=0.0))
    careless = SimulatedAnnotator(masklet_of([truth]), name="a", skill=Skill(overlook_chance=1.0))
    assert careful.accepts(0, truth) and not careful.accepts(0, wrong)
    assert careless.accepts(0, wrong)


def test_first_appearance_of_a_late_object() -> None:
    frames = [np.zeros((H, W), bool), np.zeros((H, W), bool), box(1, 1, 9, 9)]
    assert SimulatedAnnotator(masklet_of(frames), name="a").first_appearance() == 2


def test_no_ground_truth_is_a_clear_error() -> None:
    with pytest.raises(MissingGroundTruthError, match="ground truth"):
        SimulatedAnnotator(None, name="a")
    with pytest.raises(MissingGroundTruthError, match="ground truth"):
        SimulatedVerifier(None, name="v")


def test_skill_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError):
        Skill(iou_target=0.99, polish_target=0.9)
    with pytest.raises(ConfigError):
        VerifierSkill(jf_threshold=0.2, reject_below=0.5)


def test_verifier_routes_by_j_and_f() -> None:
    truth = [box(10, 10, 40, 40), box(12, 10, 42, 40), box(14, 10, 44, 40)]
    gt = masklet_of(truth)
    verifier = SimulatedVerifier(gt, name="v")
    good = verifier.judge(Masklet("v", 0, MaskletSource.MANUAL, gt.masks))
    assert good.verdict is Verdict.SATISFACTORY and good.jf == pytest.approx(1.0)

    off = [m.copy() for m in truth]
    off[1] = box(12, 10, 42, 22)  # one frame badly cut
    unsatisfactory = verifier.judge(masklet_of(off))
    assert unsatisfactory.verdict is Verdict.UNSATISFACTORY
    assert unsatisfactory.frames == (1,) and "J&F" in unsatisfactory.reason

    nothing = verifier.judge(masklet_of([np.zeros((H, W), bool)] * 3))
    assert nothing.verdict is Verdict.REJECTED and "does not follow" in nothing.reason


def test_verifier_error_rate_flips_the_verdict() -> None:
    truth = masklet_of([box(10, 10, 40, 40)] * 3)
    wrong = SimulatedVerifier(truth, name="v", skill=VerifierSkill(error_rate=1.0))
    assert wrong.judge(truth).verdict is Verdict.UNSATISFACTORY


def test_verifier_refuses_a_masklet_of_another_length() -> None:
    verifier = SimulatedVerifier(masklet_of([box(1, 1, 5, 5)] * 3), name="v")
    with pytest.raises(MissingGroundTruthError, match="not of the same video"):
        verifier.judge(masklet_of([box(1, 1, 5, 5)] * 2))
