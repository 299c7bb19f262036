"""Validation of a model version: J&F by the paper's protocols and simulated Phase 3 cost, on tiny videos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import EmptyValidationSetError
from engine.masklets import Masklet
from engine.masks import encode
from engine.model_loading import LoadedModel, build_model
from engine.segmenter_config import COMPACT
from training.evaluate import PROTOCOLS, evaluate_model, phase3_seconds_per_frame
from training.videos import TrainingVideo
from tests.training.tiny import CPU, tiny_video


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """Random weights, pinned: the protocols are under test, not whichever checkpoint ships."""
    return build_model(COMPACT, task="video", device=CPU, random_weights=True)


@pytest.fixture(scope="module")
def videos() -> list[TrainingVideo]:
    return [tiny_video(3, frames=6), tiny_video(5, objects=2, frames=6)]


def test_every_protocol_scores_every_object_between_0_and_1(model, videos) -> None:
    seen = []
    evaluation = evaluate_model(model, videos, progress=lambda done, total: seen.append((done, total)))

    assert set(evaluation.jf) == set(PROTOCOLS) == {"mask", "click1", "click3"}
    assert all(0.0 <= value <= 1.0 for value in evaluation.jf.values()), evaluation.jf
    assert evaluation.objects == 3 and evaluation.videos == 2 and evaluation.seconds > 0
    assert set(evaluation.per_video) == {"tiny-3", "tiny-5"}
    for scores in evaluation.per_video.values():
        assert set(scores) == set(PROTOCOLS) and all(0.0 <= v <= 1.0 for v in scores.values())
    # Objects are pooled (as the SA-V evaluator does): 1 object from tiny-3, 2 from tiny-5.
    pooled = (evaluation.per_video["tiny-3"]["mask"] + 2 * evaluation.per_video["tiny-5"]["mask"]) / 3
    assert evaluation.jf["mask"] == pytest.approx(pooled)
    assert evaluation.objects_per_video == {"tiny-3": 1, "tiny-5": 2}  # the weights that pool them
    assert seen == [(1, 2), (2, 2)]


def test_metrics_are_what_the_registry_stores(model, videos) -> None:
    evaluation = evaluate_model(model, videos[:1], protocols=("mask",))
    metrics = evaluation.metrics()
    assert set(metrics) == {
        "val_jf", "val_objects", "val_videos", "val_jf_mask", "eval_seconds", "eval_protocol",
        "val_jf_per_video", "val_objects_per_video", "eval_mask_upsampling",
    }
    assert metrics["eval_mask_upsampling"] == model.mask_upsampling.name
    assert metrics["val_jf"] == metrics["val_jf_mask"] == evaluation.val_jf
    # each video's mask score, for pairing with a later round's (training.gain)
    assert metrics["val_jf_per_video"] == {videos[0].video_id: evaluation.per_video[videos[0].video_id]["mask"]}
    assert metrics["val_objects_per_video"] == {videos[0].video_id: 1}
    assert evaluate_model(model, videos[:1], protocols=("click1",)).metrics()["val_jf_per_video"] == {}
    assert (metrics["val_objects"], metrics["val_videos"]) == (1, 1)

    with_cost = evaluate_model(model, videos[:1], protocols=("mask",), phase3=lambda m, v: 1.25)
    assert with_cost.metrics()["val_phase3_seconds_per_frame"] == 1.25


def test_an_object_never_visible_is_left_out_rather_than_scored(model) -> None:
    video = tiny_video(5, objects=2, frames=6)
    nothing = encode(np.zeros(video.frames.size, dtype=bool))
    kept, blank = video.masklets
    hidden = Masklet(blank.video_id, blank.object_id, blank.source, (nothing,) * len(blank.masks))
    evaluation = evaluate_model(model, [TrainingVideo(video.video_id, video.frames, (kept, hidden))], protocols=("mask",))
    assert evaluation.objects == 1


def test_an_empty_validation_set_is_refused(model) -> None:
    with pytest.raises(EmptyValidationSetError, match="no validation videos"):
        evaluate_model(model, [])


def test_phase_3_costs_a_positive_number_of_annotator_seconds_per_frame(model) -> None:
    seconds = phase3_seconds_per_frame(model, [tiny_video(3, frames=4)])
    assert math.isfinite(seconds) and seconds > 0
