"""Mask upsampling: logits on a coarse grid become masks fitted to the frame's edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.errors import ConfigError
from engine.mask_upsampling import (
    BILINEAR,
    GUIDED,
    MaskUpsampling,
    fast_guided_filter,
    masks_from_logits,
    upsampling_named,
)
from engine.model_loading import build_model
from engine.segmenter_config import COMPACT
from engine.settings import load_settings

HEIGHT, WIDTH, GRID = 240, 320, 64


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def grid_logits(truth: np.ndarray) -> np.ndarray:
    """What a perfect model returns: the truth on the mask grid, upsampled bilinearly as SAM 2 does."""
    coarse = cv2.resize(truth.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA)
    logits = np.log(np.clip(coarse, 1e-4, 1 - 1e-4) / np.clip(1 - coarse, 1e-4, 1))
    return cv2.resize(logits, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_LINEAR)[None]


def scene(centre: tuple[int, int], radius: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a sharp-edged object (a disc with a notch), and its mask."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8), (9, 9), 3)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    truth = np.hypot(yy - centre[0], xx - centre[1]) < radius
    truth &= ~((np.abs(yy - centre[0]) < 3) & (xx > centre[1]))  # a thin notch no coarse grid holds
    image = background.copy()
    image[truth] = (210, 40, 40)
    return image, truth


@pytest.mark.parametrize("radius", [8, 14, 30])
def test_guided_upsampling_recovers_the_outline_a_coarse_grid_loses(radius: int) -> None:
    image, truth = scene((100, 150), radius)
    logits = grid_logits(truth)
    bilinear = masks_from_logits(logits, image, GRID, BILINEAR)[0]
    guided = masks_from_logits(logits, image, GRID, GUIDED)[0]
    assert np.array_equal(bilinear, logits[0] > 0)
    assert iou(guided, truth) > iou(bilinear, truth) + 0.03
    assert iou(guided, truth) > 0.93


@pytest.mark.parametrize("radius", [6, 20])
def test_without_edges_in_the_frame_the_bilinear_mask_stands(radius: int) -> None:
    """The filter alone would blur it away: a box of twice its radius erases a 6-pixel disc."""
    _, truth = scene((120, 160), radius)
    flat = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    logits = grid_logits(truth)
    assert np.array_equal(masks_from_logits(logits, flat, GRID, GUIDED)[0], logits[0] > 0)
    probabilities = (1 / (1 + np.exp(-logits[0]))).astype(np.float32)
    filtered, weight = fast_guided_filter(flat.astype(np.float32) / 255, probabilities, 16, GUIDED.eps, 5)
    assert iou(filtered > 0.5, logits[0] > 0) < 0.9 and weight.max() == 0


def test_the_window_gives_what_the_whole_frame_gives_and_nothing_outside_it() -> None:
    """The filter runs on the object's neighbourhood only; near the frame's edge too."""
    image, truth = scene((12, 300), 16, seed=3)
    logits = grid_logits(truth)
    windowed = masks_from_logits(logits, image, GRID, GUIDED)[0]
    probabilities = (1 / (1 + np.exp(-logits[0]))).astype(np.float32)
    size = (HEIGHT, WIDTH)
    radius, subsample = GUIDED.radius_pixels(size, GRID), GUIDED.subsample(size, GRID)
    assert (radius, subsample) == (16, 5)
    filtered, weight = fast_guided_filter(image.astype(np.float32) / 255, probabilities, radius, GUIDED.eps, subsample)
    whole = weight * filtered + (1 - weight) * probabilities > 0.5
    assert (windowed != whole).sum() <= 0.02 * truth.sum()
    assert not windowed[:, :200].any()


def test_fitting_on_a_coarser_grid_keeps_the_outline() -> None:
    """The fast form: coefficients on a grid one cell coarse, applied to the full-resolution frame."""
    image, truth = scene((100, 150), 14)
    probabilities = (1 / (1 + np.exp(-grid_logits(truth)[0]))).astype(np.float32)
    guide = image.astype(np.float32) / 255
    for subsample in (1, 2, 5):
        filtered, _ = fast_guided_filter(guide, probabilities, 16, GUIDED.eps, subsample)
        assert iou(filtered > 0.5, truth) > 0.93


def test_several_masks_at_once_and_an_absent_object() -> None:
    image, truth = scene((100, 150), 14)
    logits = np.concatenate([grid_logits(truth), np.full((1, HEIGHT, WIDTH), -1024.0, np.float32)])
    masks = masks_from_logits(logits, image, GRID, GUIDED)
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == bool
    assert masks[0].any() and not masks[1].any()


def test_the_radius_is_counted_in_grid_cells_so_it_scales_with_the_frame() -> None:
    assert GUIDED.radius_pixels((240, 320), 64) == 16
    assert GUIDED.radius_pixels((1080, 1920), 256) == 24  # SAM 2.1's grid on a 1080p frame
    assert GUIDED.radius_pixels((20, 20), 256) == 1
    assert (GUIDED.subsample((240, 320), 64), GUIDED.subsample((1080, 1920), 256), GUIDED.subsample((20, 20), 256)) == (5, 7, 1)


def test_bad_settings_and_shapes_are_clear_errors() -> None:
    image, truth = scene((100, 150), 14)
    with pytest.raises(ConfigError, match="do not match"):
        masks_from_logits(grid_logits(truth)[:, :100], image, GRID, GUIDED)
    with pytest.raises(ConfigError, match="uint8 RGB"):
        masks_from_logits(grid_logits(truth), image[..., :1], GRID, GUIDED)
    with pytest.raises(ConfigError, match="uint8 RGB"):
        masks_from_logits(grid_logits(truth), image / 255.0, GRID, GUIDED)
    assert masks_from_logits(np.zeros((0, HEIGHT, WIDTH)), image, GRID, GUIDED).shape == (0, HEIGHT, WIDTH)
    with pytest.raises(ConfigError, match="positive"):
        MaskUpsampling(radius_cells=0)
    with pytest.raises(ConfigError, match="unknown mask upsampling 'bicubic'"):
        upsampling_named("bicubic")
    with pytest.raises(ConfigError, match="mask_upsampling"):
        load_settings(mask_upsampling="bicubic")


def test_the_setting_reaches_every_model_built() -> None:
    default = build_model(COMPACT, random_weights=True, settings=load_settings())
    assert default.mask_upsampling == GUIDED and default.mask_grid == default.image_size // 4
    chosen = build_model(COMPACT, random_weights=True, task="image", settings=load_settings(mask_upsampling="bilinear"))
    assert chosen.mask_upsampling == BILINEAR
    assert build_model(COMPACT, random_weights=True, mask_upsampling=BILINEAR, settings=load_settings()).mask_upsampling == BILINEAR


def test_every_predictor_fits_its_masks_to_the_frame_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image clicks, grid prompts and tracked frames all go through the model's upsampling, with the frame as guide."""
    import engine.grid_predictor
    import engine.image_predictor
    import engine.video_session
    from engine.frame_source import ArrayFrames
    from engine.grid_predictor import GridPredictor
    from engine.image_predictor import ImagePredictor
    from engine.model_loading import image_model_from
    from engine.video_session import VideoSession

    calls = []

    def spy(logits, image, grid, upsampling):
        calls.append((image.copy(), grid, upsampling, logits.shape))
        return masks_from_logits(logits, image, grid, upsampling)

    for module in (engine.image_predictor, engine.grid_predictor, engine.video_session):
        monkeypatch.setattr(module, "masks_from_logits", spy)
    frames = np.stack([scene((40 + 10 * i, 60), 12, seed=i)[0][:96, :128] for i in range(3)])
    video = build_model(COMPACT, random_weights=True, settings=load_settings())
    image = image_model_from(video)

    predictor = ImagePredictor(image)
    predictor.set_frame(frames[1])
    predictor.predict([[60, 50]], [1])
    grid = GridPredictor(image)
    grid.set_image(frames[2])
    grid.upscale(grid.predict_points(np.array([[60.0, 50.0]])).low_res_logits[0])
    session = VideoSession(video, ArrayFrames(frames))
    session.add_points(0, 1, [[60, 40]], [1])
    list(session.propagate(0, "forward"))

    assert [np.array_equal(c[0], frames[i]) for c, i in zip(calls, (1, 2, 0, 0, 1, 2))] == [True] * 6
    assert {(c[1], c[2]) for c in calls} == {(video.mask_grid, GUIDED)}
    assert all(c[3][1:] == (96, 128) for c in calls)
