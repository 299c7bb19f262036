"""Auto masklets on a tiny synthetic video with sam2-compact's random weights.

The masks mean nothing; what is tested is what the procedure promises: the thresholds, cleaning
and de-duplication hold for every candidate kept, and every candidate becomes a masklet over
all frames with its per-frame stability, whatever the number of objects per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from engine.auto_mask_config import AutoMaskConfig
from engine.auto_masklets import (
    AutoMaskletGenerator,
    cut_by_crop,
    first_frame_candidates,
    generate_auto_masklets,
    propagate_candidates,
)
from engine.errors import ConfigError, IncompatibleModelError, PredictorStateError
from engine.mask_upsampling import BILINEAR
from engine.frame_source import ArrayFrames
from engine.grid_predictor import GridPredictor
from engine.masklets import MaskletSource
from engine.masks import Rle, decode, encode, iou_matrix
from engine.model_loading import LoadedModel, build_model, image_model_from
from engine.point_grids import PAPER_GRID_SIDES, CropBox
from engine.segmenter_config import COMPACT
from tests.engine.sam_fixtures import CPU
from tests.engine.segment_fixtures import one_torch_thread, sampled_rgb, tiny_video

# Random weights predict IoUs near 0.5 and unstable masks: no thresholds, or nothing survives.
OPEN = AutoMaskConfig(grid_sides=(4,), min_predicted_iou=0.0, min_stability=0.0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def video_model() -> LoadedModel:
    # Bilinear: random weights give logits within +-0.003, a sign pattern that fitting masks to
    # the frame's edges (engine.mask_upsampling) redraws as another pattern; these tests follow
    # candidates through the pipeline, which needs the frame-0 redraw to keep the prompt.
    return build_model(COMPACT, device=CPU, random_weights=True, mask_upsampling=BILINEAR)


@pytest.fixture(scope="module")
def image_model(video_model: LoadedModel) -> LoadedModel:
    return image_model_from(video_model)


@pytest.fixture(scope="module")
def sharp_image_model() -> Iterator[LoadedModel]:
    """sam2-compact's image model with its mask logits scaled up.

    Random weights give logits within +-0.003, so every stability score is 0 and the stability
    threshold would have nothing to tell apart; scaled, the scores spread over about 0.1-0.75.
    """
    model = build_model(COMPACT, task="image", device=CPU, random_weights=True)
    hook = model.module.mask_decoder.register_forward_hook(lambda _m, _i, out: (out[0] * 3000, *out[1:]))
    yield model
    hook.remove()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return sampled_rgb(tiny_video())


def test_defaults_are_the_paper_s_grids_and_sam_2_s_thresholds() -> None:
    config = AutoMaskConfig()
    assert config.grid_sides == PAPER_GRID_SIDES == (32, 16, 4) and config.crop_layers == 2
    assert (config.min_predicted_iou, config.min_stability, config.min_region_area) == (0.8, 0.95, 200)
    assert AutoMaskConfig.with_grid(8, 0, min_stability=0.5) == AutoMaskConfig(grid_sides=(8,), min_stability=0.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grid_sides": ()}, "grid_sides"),
        ({"grid_sides": (8, 0)}, "grid_sides"),
        ({"min_predicted_iou": 1.5}, "min_predicted_iou"),
        ({"points_per_batch": 0}, "points_per_batch"),
        ({"max_candidates": 0}, "max_candidates"),
        ({"crop_overlap_ratio": 1.0}, "crop_overlap_ratio"),
    ],
)
def test_bad_configs_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AutoMaskConfig(**fields)


def test_grid_predictor_decodes_a_batch_of_clicks_per_embedding(image_model: LoadedModel, frames: np.ndarray) -> None:
    predictor = GridPredictor(image_model)
    with pytest.raises(PredictorStateError):
        predictor.predict_points(np.array([[10.0, 10.0]]))
    predictor.set_image(frames[0])
    out = predictor.predict_points(np.array([[10.0, 10.0], [50.0, 30.0], [90.0, 60.0]]))
    assert tuple(out.low_res_logits.shape) == (3, 3, 64, 64) and out.scores.shape == (3, 3)
    single = predictor.predict_points(np.array([[50.0, 30.0]]))
    assert np.allclose(single.scores[0], out.scores[1], atol=1e-5), "a click's masks do not depend on its batch"
    masks = predictor.upscale(out.low_res_logits[0])
    assert masks.shape == (3, 64, 96) and masks.dtype == np.bool_


def test_grid_predictor_needs_a_sam2_image_model(video_model: LoadedModel) -> None:
    with pytest.raises(IncompatibleModelError, match="image_model_from"):
        GridPredictor(video_model)


def test_candidates_pass_the_thresholds_are_clean_and_distinct(
    sharp_image_model: LoadedModel, frames: np.ndarray
) -> None:
    config = AutoMaskConfig(grid_sides=(6,), min_predicted_iou=0.0, min_stability=0.3, nms_iou_threshold=0.5)
    candidates, stats = first_frame_candidates(sharp_image_model, frames[0], config)
    assert stats.points == 36 and stats.predicted == 108
    assert 0 < stats.kept == len(candidates) <= stats.passed_scores < stats.predicted
    assert [c.predicted_iou for c in candidates] == sorted((c.predicted_iou for c in candidates), reverse=True)
    for candidate in candidates:
        assert candidate.stability >= 0.3
        mask = decode(candidate.mask)
        assert mask.shape == (64, 96) and mask.any()
        count, _, stats_cc, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        assert count == 2 or stats_cc[1:, cv2.CC_STAT_AREA].min() >= 200, "no small islands left"
        holes, _, hole_stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=8)
        assert holes == 1 or hole_stats[1:, cv2.CC_STAT_AREA].min() >= 200, "no small holes left"
    ious = iou_matrix([c.mask for c in candidates], [c.mask for c in candidates])
    assert (ious[~np.eye(len(candidates), dtype=bool)] <= 0.5).all(), "no duplicates kept"


def test_thresholds_filter_by_predicted_iou_and_stability(sharp_image_model: LoadedModel, frames: np.ndarray) -> None:
    def run(**fields: object) -> tuple[list, object]:
        return first_frame_candidates(sharp_image_model, frames[0], AutoMaskConfig(grid_sides=(4,), **fields))

    nothing, stats = run(min_predicted_iou=1.0)
    assert nothing == [] and stats.passed_scores == 0 and stats.predicted == 48
    everything, open_stats = run(min_predicted_iou=0.0, min_stability=0.0)
    stable, stable_stats = run(min_predicted_iou=0.0, min_stability=0.45)
    assert 0 < stable_stats.passed_scores < open_stats.passed_scores
    assert all(c.stability >= 0.45 for c in stable)
    median = float(np.median([c.predicted_iou for c in everything]))
    confident, _ = run(min_predicted_iou=median, min_stability=0.0)
    assert confident and all(c.predicted_iou > median for c in confident)
    assert len(confident) < len(everything)
    capped, _ = run(min_predicted_iou=0.0, min_stability=0.0, max_candidates=2)
    assert [c.mask for c in capped] == [c.mask for c in everything[:2]]


def test_a_mask_touching_an_inner_crop_border_was_cut_off_by_it() -> None:
    crop = CropBox(0, 0, 60, 40, layer=1)  # the top-left crop of a 96x64 frame
    frame = (64, 96)

    def box_mask(x0: int, y0: int, x1: int, y1: int) -> Rle:
        mask = np.zeros(frame, dtype=bool)
        mask[y0:y1, x0:x1] = True
        return encode(mask)

    assert not cut_by_crop(box_mask(20, 10, 40, 30), crop, frame, margin=5)
    assert cut_by_crop(box_mask(20, 10, 58, 30), crop, frame, margin=5), "reaches the crop's right edge"
    assert cut_by_crop(box_mask(20, 10, 40, 38), crop, frame, margin=5), "reaches the crop's bottom edge"
    assert not cut_by_crop(box_mask(0, 0, 40, 30), crop, frame, margin=5), "the frame's own edges do not count"
    full = CropBox(0, 0, 96, 64, layer=0)
    assert not cut_by_crop(box_mask(0, 0, 96, 64), full, frame, margin=5)


def test_crop_layers_add_their_clicks_and_place_masks_in_the_frame(
    sharp_image_model: LoadedModel, frames: np.ndarray
) -> None:
    config = AutoMaskConfig(grid_sides=(2, 2), min_predicted_iou=0.0, min_stability=0.0, crop_edge_margin=2)
    candidates, stats = first_frame_candidates(sharp_image_model, frames[0], config)
    assert stats.points == 4 + 4 * 4 and stats.predicted == 3 * stats.points
    for c in candidates:
        assert (c.mask.height, c.mask.width) == (64, 96)
        assert c.crop.x0 <= c.point[0] <= c.crop.x1 and c.crop.y0 <= c.point[1] <= c.crop.y1
        if c.crop.layer:
            ys, xs = np.nonzero(decode(c.mask))
            assert c.crop.x0 <= xs.min() and xs.max() < c.crop.x1 and c.crop.y0 <= ys.min() and ys.max() < c.crop.y1
            assert not cut_by_crop(c.mask, c.crop, (64, 96), margin=2)


def test_every_candidate_becomes_a_masklet_over_all_frames(video_model: LoadedModel, image_model: LoadedModel, frames: np.ndarray) -> None:
    config = AutoMaskConfig(grid_sides=(4,), min_predicted_iou=0.0, min_stability=0.0, max_candidates=3, objects_per_session=2)
    result = generate_auto_masklets(video_model, ArrayFrames(frames), "syn_tiny", config, image_model=image_model)
    assert result.stats.kept == len(result.candidates) == len(result.masklets) == 3
    for object_id, (candidate, masklet) in enumerate(zip(result.candidates, result.masklets, strict=True)):
        assert (masklet.video_id, masklet.object_id, masklet.source) == ("syn_tiny", object_id, MaskletSource.AUTO)
        assert masklet.frame_count == len(frames) and (masklet.height, masklet.width) == (64, 96)
        assert masklet.stability_scores is not None and len(masklet.stability_scores) == len(frames)
        assert all(0.0 <= s <= 1.0 for s in masklet.stability_scores)
        # Frame 0 is the mask prompt itself, as the model's low resolution redraws it.
        assert iou_matrix([masklet.masks[0]], [candidate.mask])[0, 0] > 0.6

    # Objects are tracked independently: one session per object gives the same masklets.
    alone = propagate_candidates(video_model, ArrayFrames(frames), "syn_tiny", result.candidates, objects_per_session=1)
    for batched, single in zip(result.masklets, alone, strict=True):
        assert batched.masks == single.masks
        assert batched.stability_scores == pytest.approx(single.stability_scores, abs=1e-5)


def test_the_generator_offers_what_the_phases_ask_for(video_model: LoadedModel, image_model: LoadedModel, frames: np.ndarray) -> None:
    generator = AutoMaskletGenerator(video_model, image_model, model_version_id=7, config=AutoMaskConfig(grid_sides=(2,), min_predicted_iou=0.0, min_stability=0.0, max_candidates=1))
    (masklet,) = generator.candidates("syn_tiny", ArrayFrames(frames[:3]))
    assert generator.model_version_id == 7
    assert masklet.source is MaskletSource.AUTO and masklet.frame_count == 3
