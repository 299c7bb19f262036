"""Fixtures for the phase procedures: a tiny seeded synthetic video, jobs, simulated and real models."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from engine.annotation import Click
from engine.frame_source import ArrayFrames, FrameSource
from engine.masklets import Masklet
from engine.mask_upsampling import BILINEAR
from engine.model_loading import build_model, image_model_from
from engine.segmenter_config import COMPACT
from engine.model_segmenters import ModelSegmenters
from engine.segmenters import ClickSegmenter, Segmenters, Tracker
from engine.simulated_annotator import SimulatedAnnotator, Skill
from engine.simulated_segmenter import ModelQuality, SimulatedSegmenters
from engine.synthetic import SyntheticSpec, SyntheticVideo, generate_video
from engine.time_model import ManualClock, SystemClock
from phases.procedure import PhaseJob
from tests.engine.sam_fixtures import CPU

# 8 sampled frames: enough for the forced late entry, exit and return, and occlusion.
TINY = SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0)
# For the real model (slow on CPU): 4 sampled frames, one object.
SHORT = SyntheticSpec(width=64, height=48, source_frames=16, objects=1, parts=0, force_events=False)
GOOD_TRACKER = ModelQuality(mask_side=256, image_errors=1.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=0.0)
POOR_TRACKER = ModelQuality(mask_side=256, image_errors=2.0, drift_per_frame=3.0, ghost_chance=1.0, lost_chance=1.0)


@pytest.fixture(scope="session")
def tiny_video() -> SyntheticVideo:
    return generate_video("tiny", 5, TINY)


@pytest.fixture(scope="session")
def short_video() -> SyntheticVideo:
    return generate_video("short", 3, SHORT)


def rgb_frames(video: SyntheticVideo) -> ArrayFrames:
    return ArrayFrames(video.frames[video.sampled_frames][..., ::-1].copy())


def object_with(video: SyntheticVideo, *, late: bool = False, leaves: bool = False) -> Masklet:
    """The truth of the object that enters late (or leaves and returns)."""
    for obj in video.scene.objects:
        if (late and obj.enters_late) or (leaves and obj.leaves_and_returns):
            return video.masklets[obj.object_id]
    raise AssertionError("the synthetic video lacks the forced event")


def make_job(
    video: SyntheticVideo,
    truth: Masklet,
    *,
    segmenters: Segmenters | None = None,
    quality: ModelQuality = GOOD_TRACKER,
    skill: Skill = Skill(),
    budget: int | None = None,
    tick: float | None = 0.01,  # None: the system clock (real model time)
) -> PhaseJob:
    return PhaseJob(
        video_id=video.video_id,
        object_id=truth.object_id,
        frames=rgb_frames(video),
        annotator=SimulatedAnnotator(truth, name="sim-annotator", skill=skill, seed=1),
        segmenters=segmenters or SimulatedSegmenters(truth, quality, seed=1),
        clock=SystemClock() if tick is None else ManualClock(tick=tick),
        correction_budget=budget,
    )


@dataclass
class Calls:
    """What a phase asked of its models."""

    image_clicks: list[int] = field(default_factory=list)
    tracker_clicks: list[int] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)
    propagations: list[int] = field(default_factory=list)


class RecordingSegmenters:
    """Segmenters that pass every call on and note it, so tests can see which model did what."""

    def __init__(self, inner: Segmenters) -> None:
        self.inner = inner
        self.calls = Calls()
        self.model_version_id = inner.model_version_id
        self.description = inner.description

    def image(self, frames: FrameSource) -> ClickSegmenter:
        inner, calls = self.inner.image(frames), self.calls

        class Image:
            def click(self, frame: int, clicks: Sequence[Click]) -> np.ndarray:
                calls.image_clicks.append(frame)
                return inner.click(frame, clicks)

        return Image()

    def tracker(self, frames: FrameSource, object_id: int, *, mask_only: bool) -> Tracker:
        inner, calls = self.inner.tracker(frames, object_id, mask_only=mask_only), self.calls

        class Recording:
            @property
            def mask_only(self) -> bool:
                return inner.mask_only

            def click(self, frame: int, clicks: Sequence[Click]) -> np.ndarray:
                calls.tracker_clicks.append(frame)
                return inner.click(frame, clicks)

            def add_mask(self, frame: int, mask: np.ndarray) -> None:
                calls.masks.append(frame)
                inner.add_mask(frame, mask)

            def propagate(self, from_frame: int) -> Iterator[tuple[int, np.ndarray]]:
                calls.propagations.append(from_frame)
                return inner.propagate(from_frame)

        return Recording()


@pytest.fixture(scope="session")
def compact() -> ModelSegmenters:
    """The embedded sam2-compact, randomly initialised, on CPU: the real model path, meaningless masks.

    Bilinear: random weights give logits within +-0.003, whose signs make the speckled masks the
    routing tests tell apart; fitted to the frame's edges (engine.mask_upsampling), they all
    come out alike.
    """
    video = build_model(COMPACT, task="video", device=CPU, random_weights=True, mask_upsampling=BILINEAR)
    return ModelSegmenters(video, image_model_from(video), None, "sam2-compact (random, tests)")
