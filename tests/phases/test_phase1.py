"""Phase 1: every frame from scratch with the image model and the brush; no propagation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.annotation import Action
from engine.errors import AnnotationError, SegmenterFailedError
from engine.masklets import Masklet, MaskletSource
from engine.masks import decode, encode
from engine.simulated_annotator import Skill, centre, frame_iou
from engine.simulated_segmenter import SimulatedSegmenters
from phases import phase1
from tests.phases.conftest import GOOD_TRACKER, RecordingSegmenters, make_job, object_with


def test_every_frame_is_annotated_from_scratch(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    segmenters = RecordingSegmenters(SimulatedSegmenters(truth, GOOD_TRACKER, seed=1))
    result = phase1.annotate(make_job(tiny_video, truth, segmenters=segmenters))

    frames = truth.frame_count
    assert result.phase == 1 and result.edited_frames == tuple(range(frames))
    assert result.masklet.edited_frame_count == frames and result.masklet.source is MaskletSource.MANUAL
    assert not segmenters.calls.propagations and not segmenters.calls.tracker_clicks
    for frame in range(frames):
        assert frame_iou(decode(result.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.95


def test_first_click_of_each_frame_is_at_the_object_s_centre_after_locating_it(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    result = phase1.annotate(make_job(tiny_video, truth))
    clicks = [e for e in result.events if e.action is Action.CLICK]
    first_of_frame = {}
    for e in clicks:
        first_of_frame.setdefault(e.frame_index, e)
    assert first_of_frame, "the object is visible on some frames"
    for frame, e in first_of_frame.items():
        assert e.payload["locate"] is True and e.payload["positive"] is True
        assert (e.payload["x"], e.payload["y"]) == centre(decode(truth.masks[frame]))
        assert e.duration_s == pytest.approx(2.5 + 0.01)  # locate 1 s + click 1.5 s + the measured model call


def test_a_late_object_s_early_frames_are_searched_and_left_empty(tiny_video) -> None:
    truth = object_with(tiny_video, late=True)
    first = truth.first_appeared_frame
    assert first is not None and first > 0
    result = phase1.annotate(make_job(tiny_video, truth))
    accepted = {e.frame_index for e in result.events if e.action is Action.ACCEPT_FRAME}
    assert set(range(first)) <= accepted
    assert all(result.masklet.areas[f] == 0 for f in range(first))
    assert result.masklet.first_appeared_frame == first


def test_an_object_never_visible_is_not_a_task(tiny_video) -> None:
    empty = np.zeros((tiny_video.spec.height, tiny_video.spec.width), bool)
    nothing = Masklet(tiny_video.video_id, 9, MaskletSource.GROUND_TRUTH, (encode(empty),) * 8)
    with pytest.raises(AnnotationError, match="never visible"):
        phase1.annotate(make_job(tiny_video, nothing))


def test_a_model_failing_mid_masklet_fails_the_whole_masklet(tiny_video) -> None:
    truth = tiny_video.masklets[0]

    class Breaking(SimulatedSegmenters):
        def image(self, frames):
            inner = super().image(frames)

            class Image:
                def click(self, frame, clicks):
                    if frame >= 3:
                        raise RuntimeError("CUDA error: out of memory")
                    return inner.click(frame, clicks)

            return Image()

    with pytest.raises(SegmenterFailedError, match=r"frame 3: RuntimeError: CUDA error.*nothing of this masklet was kept"):
        phase1.annotate(make_job(tiny_video, truth, segmenters=Breaking(truth, GOOD_TRACKER)))


@pytest.mark.slow
def test_phase_1_with_the_real_model(short_video, compact) -> None:
    """sam2-compact (random weights) in the loop: its masks are useless, the brush does the work."""
    truth = short_video.masklets[0]
    result = phase1.annotate(make_job(short_video, truth, segmenters=compact, skill=Skill(click_budget=1), tick=None))
    frames = truth.frame_count
    assert result.masklet.frame_count == frames and len(result.edited_frames) == frames
    for frame in range(frames):
        assert frame_iou(decode(result.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.95
    assert all(e.model_s > 0 for e in result.events if e.action is Action.CLICK)


class _FindsNothing:
    """An image model whose every mask is empty (a model that has learnt nothing)."""

    model_version_id = None
    description = "finds nothing"

    def image(self, frames):
        class Image:
            def click(self, frame, clicks):
                height, width = frames.size
                return np.zeros((height, width), bool)

        return Image()


def test_a_model_that_finds_nothing_leaves_every_visible_frame_to_be_outlined_by_hand(tiny_video) -> None:
    """Drawn from nothing is COCO's 79.2 s a mask: a useless model must not be the cheapest one."""
    truth = object_with(tiny_video, late=True)
    useless = phase1.annotate(make_job(tiny_video, truth, segmenters=_FindsNothing()))
    helpful = phase1.annotate(make_job(tiny_video, truth))

    visible = [f for f in range(truth.frame_count) if truth.areas[f] > 0]
    outlines = [e for e in useless.events if e.payload.get("outline")]
    assert sorted(e.frame_index for e in outlines) == visible  # one per visible frame, on the empty mask
    assert all(e.action is Action.BRUSH and e.duration_s == pytest.approx(79.2) for e in outlines)
    assert not any(e.payload.get("outline") for e in helpful.events)  # its masks always had something
    for frame in visible:
        assert frame_iou(decode(useless.masklet.masks[frame]), decode(truth.masks[frame])) >= 0.95
    assert useless.seconds > helpful.seconds
