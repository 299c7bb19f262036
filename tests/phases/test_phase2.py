"""Phase 2: Phase 1 on the first frame, SAM 2 Mask propagation, failing frames annotated again from scratch."""

from __future__ import annotations

import pytest

from engine.annotation import Action
from engine.masks import decode
from engine.simulated_annotator import Skill, frame_iou
from engine.simulated_segmenter import SimulatedSegmenters
from phases import phase2
from tests.phases.conftest import GOOD_TRACKER, POOR_TRACKER, RecordingSegmenters, make_job, object_with


def run(video, truth, quality, **kwargs):
    segmenters = RecordingSegmenters(SimulatedSegmenters(truth, quality, seed=1))
    return phase2.annotate(make_job(video, truth, segmenters=segmenters, **kwargs)), segmenters.calls


def test_with_a_good_tracker_only_the_first_appearance_is_annotated(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    first = truth.first_appeared_frame
    result, calls = run(tiny_video, truth, GOOD_TRACKER)
    assert result.edited_frames == (first,)
    assert calls.masks == [first] and calls.propagations == [first]
    assert not calls.tracker_clicks  # SAM 2 Mask takes masks only
    assert all(result.masklet.areas[f] == 0 for f in range(first))  # searched, empty, not edited
    examined = [e for e in result.events if e.action is Action.EXAMINE]
    assert sum(e.payload["frames"] for e in examined) == truth.frame_count - 1  # every frame but the annotated one


def test_a_failing_frame_is_annotated_again_from_scratch_and_propagated_from(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    result, calls = run(tiny_video, truth, POOR_TRACKER)
    first = truth.first_appeared_frame
    corrected = [f for f in result.edited_frames if f != first]
    assert corrected, "a poor tracker leaves frames to correct"
    cleared = {e.frame_index for e in result.events if e.action is Action.CLEAR_FRAME}
    assert set(corrected) <= cleared  # thrown away, then annotated from scratch
    assert calls.propagations == [first, *corrected] and calls.masks == [first, *corrected]
    for frame in corrected:
        relocated = [e for e in result.events if e.action is Action.CLICK and e.frame_index == frame]
        assert not relocated or relocated[0].payload["locate"] is True
    for frame in range(truth.frame_count):  # every frame passes in the end
        assert frame_iou(decode(result.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.9


def test_an_object_that_leaves_is_empty_where_it_is_gone(tiny_video) -> None:
    truth = object_with(tiny_video, leaves=True)
    result, _ = run(tiny_video, truth, POOR_TRACKER)  # the tracker keeps a ghost where the object left
    gone = [f for f in range(truth.frame_count) if truth.areas[f] == 0 and f > (truth.first_appeared_frame or 0)]
    assert gone, "the forced exit leaves frames without the object"
    assert all(result.masklet.areas[f] == 0 for f in gone)
    assert result.masklet.visibility_changes >= 2


def test_the_correction_budget_bounds_the_work(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    result, calls = run(tiny_video, truth, POOR_TRACKER, budget=1)
    assert len(result.edited_frames) == 2 and len(calls.propagations) == 2


@pytest.mark.slow
def test_phase_2_with_the_real_model(short_video, compact) -> None:
    truth = short_video.masklets[0]
    segmenters = RecordingSegmenters(compact)
    job = make_job(short_video, truth, segmenters=segmenters, skill=Skill(click_budget=1), budget=1, tick=None)
    result = phase2.annotate(job)
    assert result.masklet.frame_count == truth.frame_count
    assert 1 <= len(result.edited_frames) <= 2
    assert segmenters.calls.propagations and not segmenters.calls.tracker_clicks
    propagations = [e for e in result.events if e.action is Action.PROPAGATE]
    assert all(e.model_s > 0 and e.payload["frames"] >= 1 for e in propagations)
