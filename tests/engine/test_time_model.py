"""The time model (the paper's figures, stroke costs) and the action log's timeline with measured model time."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from engine.annotation import Action, ActionLog, Click, EventContext, Stroke
from engine.errors import AnnotationError, ConfigError
from engine.frame_source import ArrayFrames
from engine.metrics import masklet_stats
from engine.queues import Verdict
from engine.simulated_annotator import SimulatedAnnotator
from engine.simulated_segmenter import STRONG_IMAGE_MODEL, SimulatedSegmenters
from engine.synthetic import SyntheticSpec, generate_video
from engine.time_model import ManualClock, Stopwatch, TimeModel, stroke_length
from phases import phase1
from phases.procedure import PhaseJob


def test_the_paper_s_figures() -> None:
    model = TimeModel()
    assert model.locate_s == 1.0
    assert model.click_s == 1.5
    assert model.examine(300) == pytest.approx(30.0)
    assert model.click(locate=True) == 2.5 and model.click(locate=False) == 1.5


def test_a_stroke_costs_more_the_larger_the_correction() -> None:
    model = TimeModel()
    small, large = np.zeros((100, 100), bool), np.zeros((100, 100), bool)
    small[10:14, 10:14] = True
    large[10:60, 10:60] = True
    assert model.stroke_base_s < model.stroke(small) < model.stroke(large)
    assert model.stroke(np.zeros((100, 100), bool)) == model.stroke_base_s


def test_stroke_length_does_not_depend_on_resolution() -> None:
    low, high = np.zeros((48, 64), bool), np.zeros((96, 128), bool)
    low[10:30, 10:40] = True
    high[20:60, 20:80] = True
    assert stroke_length(low) == pytest.approx(stroke_length(high), rel=0.05)


def test_a_negative_figure_is_refused() -> None:
    with pytest.raises(ConfigError, match="click_s"):
        TimeModel(click_s=-1.0)


def test_manual_clock_makes_measured_model_time_exact() -> None:
    clock = ManualClock(tick=0.25)
    with Stopwatch(clock) as stopwatch:
        pass
    assert stopwatch.seconds == pytest.approx(0.25)


def _log(clock: ManualClock, frames: int = 10) -> ActionLog:
    return ActionLog(EventContext("v", "ann", 1, task_id=7), frame_count=frames, time_model=TimeModel(), clock=clock)


def test_events_follow_each_other_on_the_timeline_with_human_and_model_time() -> None:
    clock = ManualClock()
    log = _log(clock)
    log.click(Click(0, 3, 4, True), locate=True, model_s=0.2)
    log.click(Click(0, 5, 4, False), locate=False, model_s=0.1)
    region = np.zeros((20, 30), bool)
    region[2:5, 2:9] = True
    log.stroke(Stroke.painting(0, region, eraser=True))
    log.examine(1)
    log.examine(2)
    log.examine(3)
    log.propagate(3, 7, model_s=1.5)
    log.verdict(Verdict.SATISFACTORY, reason=None, jf=0.9, frames=10)
    events = log.events
    assert [e.action for e in events] == [
        Action.CLICK, Action.CLICK, Action.ERASER, Action.EXAMINE, Action.PROPAGATE, Action.VERDICT,
    ]
    assert events[0].duration_s == pytest.approx(2.5 + 0.2) and events[0].model_s == pytest.approx(0.2)
    assert events[1].duration_s == pytest.approx(1.6)
    assert events[3].payload["frames"] == 3 and events[3].duration_s == pytest.approx(0.3)
    assert events[4].duration_s == pytest.approx(1.5) and events[4].payload["frames"] == 7
    assert events[5].duration_s == pytest.approx(1.0 + 1.5)  # ten frames looked over, one click
    for before, after in zip(events, events[1:]):
        assert after.started_at == before.started_at + timedelta(seconds=before.duration_s)
    assert {e.task_id for e in events} == {7} and {e.annotator for e in events} == {"ann"}


def test_an_action_on_a_frame_outside_the_video_is_refused() -> None:
    log = _log(ManualClock(), frames=5)
    with pytest.raises(AnnotationError, match="frame 5 is outside the video"):
        log.click(Click(5, 1, 1, True), locate=True, model_s=0.0)
    with pytest.raises(AnnotationError, match="outside"):
        log.examine(-1)
    assert log.events == ()


def test_simulated_phase_1_with_a_strong_model_lands_near_the_paper_s_37_8_s() -> None:
    """A small version of bench/calibrate_time_model.py: the calibration holds within its noise."""
    spec = SyntheticSpec(source_frames=48, objects=2, parts=1)
    video = generate_video("calibration", 11, spec)
    frames = ArrayFrames(video.frames[spec.sampled_frames][..., ::-1].copy())
    seconds = frame_count = 0.0
    clicks = clicked = 0
    for truth in video.masklets:
        job = PhaseJob(
            video.video_id, truth.object_id, frames, SimulatedAnnotator(truth, name="a", seed=truth.object_id),
            SimulatedSegmenters(truth, STRONG_IMAGE_MODEL, seed=truth.object_id), clock=ManualClock(),
        )
        stats = masklet_stats(phase1.annotate(job).events)
        seconds += stats.seconds
        frame_count += truth.frame_count
        clicks += stats.clicks
        clicked += stats.clicked_frames
    assert 37.8 * 0.7 < seconds / frame_count < 37.8 * 1.3
    assert 4.8 * 0.7 < clicks / clicked < 4.8 * 1.3


def test_the_time_model_is_a_plain_record() -> None:
    assert dataclasses.replace(TimeModel(), click_s=2.0).click(locate=False) == 2.0


def test_drawing_an_object_on_an_empty_mask_costs_coco_s_outline_time_whatever_its_size() -> None:
    model = TimeModel()
    assert model.outline_s == pytest.approx(79.2)  # COCO: 22 worker-hours per 1,000 instance masks
    small, large = np.zeros((100, 100), bool), np.zeros((100, 100), bool)
    small[10:14, 10:14] = True
    large[10:60, 10:60] = True
    assert model.stroke(small, outline=True) == model.stroke(large, outline=True) == model.outline_s
    assert model.stroke(large) < model.outline_s  # a touch-up, however large, costs less than drawing anew


def test_an_outline_is_logged_as_a_brush_stroke_marked_as_such() -> None:
    log = _log(ManualClock())
    region = np.zeros((20, 30), bool)
    region[2:9, 2:9] = True
    log.stroke(Stroke.painting(0, region, eraser=False), outline=True)
    log.stroke(Stroke.painting(1, region, eraser=False))
    outline, touch_up = log.events
    assert outline.action is touch_up.action is Action.BRUSH
    assert outline.payload["outline"] is True and "outline" not in touch_up.payload
    assert outline.duration_s == pytest.approx(79.2) and touch_up.duration_s == pytest.approx(TimeModel().stroke(region))
    with pytest.raises(AnnotationError, match="eraser stroke cannot outline"):
        log.stroke(Stroke.painting(2, region, eraser=True), outline=True)
    assert len(log.events) == 2
