"""Phase 3: SAM 2 in the loop (clicks, propagation, refinement clicks with memory), and refinement of a masklet."""

from __future__ import annotations

import pytest

import numpy as np

from engine.annotation import Action, Click
from engine.errors import BadMaskError
from engine.masklets import Masklet, MaskletSource
from engine.masks import decode, encode
from engine.metrics import masklet_stats
from engine.simulated_annotator import Skill, frame_iou
from engine.simulated_segmenter import ModelQuality, SimulatedSegmenters
from phases import phase2, phase3
from tests.phases.conftest import GOOD_TRACKER, POOR_TRACKER, RecordingSegmenters, make_job, object_with, rgb_frames


def run(video, truth, quality, **kwargs):
    segmenters = RecordingSegmenters(SimulatedSegmenters(truth, quality, seed=1))
    return phase3.annotate(make_job(video, truth, segmenters=segmenters, **kwargs)), segmenters.calls


def test_clicks_go_to_the_video_model_and_a_good_track_needs_nothing_more(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    first = truth.first_appeared_frame
    result, calls = run(tiny_video, truth, GOOD_TRACKER)
    assert result.phase == 3 and result.edited_frames == (first,)
    assert set(calls.tracker_clicks) == {first} and not calls.image_clicks
    assert calls.propagations == [first]


def test_failing_frames_get_refinement_clicks_not_a_fresh_start(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    result, calls = run(tiny_video, truth, POOR_TRACKER)
    first = truth.first_appeared_frame
    corrected = [f for f in result.edited_frames if f != first]
    assert corrected
    assert not calls.image_clicks  # corrected in SAM 2, with its memory, never from scratch with SAM
    assert set(corrected) <= set(calls.tracker_clicks) | set(calls.masks)
    assert calls.propagations[0] == first and set(calls.propagations[1:]) <= set(corrected)
    for frame in range(truth.frame_count):
        assert frame_iou(decode(result.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.9


def test_phase_3_is_quicker_than_phase_2_with_the_same_models(tiny_video) -> None:
    quality = ModelQuality(mask_side=256, image_errors=3.0, drift_per_frame=0.5, ghost_chance=0.5, lost_chance=0.5)
    seconds = {}
    for phase in (phase2, phase3):
        seconds[phase] = sum(
            masklet_stats(phase.annotate(make_job(tiny_video, t, quality=quality)).events).seconds
            for t in tiny_video.masklets
        )
    assert seconds[phase3] < seconds[phase2]


def test_a_lost_object_is_found_again_with_a_click(tiny_video) -> None:
    truth = object_with(tiny_video, leaves=True)
    lost = ModelQuality(mask_side=256, image_errors=0.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=1.0)
    result, _ = run(tiny_video, truth, lost)
    back = [f for f in range(1, truth.frame_count) if truth.areas[f] and not truth.areas[f - 1]]
    assert back and all(result.masklet.areas[f] > 0 for f in back)


def test_refine_corrects_only_the_frames_that_fail(tiny_video) -> None:
    truth = tiny_video.masklets[0]
    masks = [decode(m).copy() for m in truth.masks]
    broken = [f for f in range(truth.frame_count) if masks[f].any()][-2:]
    for f in broken:
        masks[f] = np.zeros_like(masks[f])
    old = Masklet(truth.video_id, truth.object_id, MaskletSource.MANUAL, tuple(encode(m) for m in masks))
    job = make_job(tiny_video, truth, quality=GOOD_TRACKER)
    result = phase3.refine(job, old, refines=41, round_=1)
    assert set(result.edited_frames) <= set(broken) and result.edited_frames
    for frame in range(truth.frame_count):
        assert frame_iou(decode(result.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.9
    submit = [e for e in result.events if e.action is Action.SUBMIT][-1]
    assert submit.payload["refines"] == 41 and submit.payload["round"] == 1


@pytest.mark.slow
def test_phase_3_with_the_real_model(short_video, compact) -> None:
    truth = short_video.masklets[0]
    segmenters = RecordingSegmenters(compact)
    job = make_job(short_video, truth, segmenters=segmenters, skill=Skill(click_budget=1), budget=1, tick=None)
    result = phase3.annotate(job)
    first = truth.first_appeared_frame
    assert result.masklet.frame_count == truth.frame_count and first in result.edited_frames
    assert first in segmenters.calls.tracker_clicks and not segmenters.calls.image_clicks
    assert all(e.model_s > 0 for e in result.events if e.action in (Action.CLICK, Action.PROPAGATE))
    assert frame_iou(decode(result.masklet.masks[first]), decode(truth.masks[first])) >= 0.95


def test_the_simulated_tracker_corrects_the_mask_it_is_told_to(tiny_video) -> None:
    """As a VideoSession does: its own output by default, none (anew), or a given (brushed) mask."""
    truth = object_with(tiny_video, late=True)
    first = truth.first_appeared_frame
    segmenters = SimulatedSegmenters(truth, POOR_TRACKER, seed=1)
    tracker = segmenters.tracker(rgb_frames(tiny_video), truth.object_id, mask_only=False)
    tracker.add_mask(first, decode(truth.masks[first]))
    tracked = dict(tracker.propagate(first))
    frame = first + 1
    target = decode(truth.masks[frame])
    y, x = np.argwhere(target)[np.count_nonzero(target) // 2]
    click = Click(frame, x + 0.5, y + 0.5, True)
    given = np.zeros_like(target)
    given[:5, :5] = True  # a brushed mask far from the object

    assert np.array_equal(tracker.click(frame, [click], refine=given), given)  # that mask, corrected (nothing to fix here)
    anew = tracker.click(frame, [click], refine=False)
    assert np.array_equal(anew, segmenters.image(rgb_frames(tiny_video)).click(frame, [click]))  # from scratch, as SAM
    assert not np.array_equal(anew, given) and tracked[frame].any()
    with pytest.raises(BadMaskError):
        tracker.click(frame, [click], refine=np.zeros((3, 3), dtype=bool))
