"""ImagePredictor: embed a frame once, then clicks become masks; bad prompts are refused cleanly.

With sam2-compact's random weights the masks mean nothing; what is tested is what a caller
relies on: shapes, dtypes, score order, refinement input, embedding reuse and errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import SamModel

from engine.errors import BadPromptError, IncompatibleModelError, PredictorStateError
from engine.image_predictor import ImagePredictor, ImagePrediction
from engine.model_loading import LoadedModel, build_model
from engine.segmenter_config import COMPACT
from tests.engine.sam_fixtures import CPU, tiny_sam1_config

HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def image_model() -> LoadedModel:
    return build_model(COMPACT, task="image", device=CPU)


@pytest.fixture
def frame() -> np.ndarray:
    """A structured frame: a bright rectangle on a gradient."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)
    image[20:44, 30:70] = (250, 240, 30)
    return image


@pytest.fixture
def predictor(image_model: LoadedModel, frame: np.ndarray) -> ImagePredictor:
    p = ImagePredictor(image_model)
    p.set_frame(frame)
    return p


def _check_prediction(result: ImagePrediction, k: int) -> None:
    assert result.masks.shape == (k, HEIGHT, WIDTH) and result.masks.dtype == np.bool_
    assert result.scores.shape == (k,) and result.scores.dtype == np.float32
    assert np.all(np.diff(result.scores) <= 0), "best predicted IoU first"
    assert result.low_res_logits.shape == (k, 64, 64) and result.low_res_logits.dtype == np.float32
    assert result.best_mask.shape == (HEIGHT, WIDTH)


def test_one_click_gives_three_candidates_at_frame_resolution(predictor: ImagePredictor) -> None:
    result = predictor.predict([[50, 30]], [1])
    _check_prediction(result, 3)
    assert predictor.frame_size == (HEIGHT, WIDTH)


def test_single_mask_mode_gives_one(predictor: ImagePredictor) -> None:
    _check_prediction(predictor.predict([[50, 30], [10, 10]], [1, 0], multimask=False), 1)


def test_a_box_alone_or_with_clicks_is_a_prompt(predictor: ImagePredictor) -> None:
    _check_prediction(predictor.predict(box=[30, 20, 70, 44]), 3)
    _check_prediction(predictor.predict([[50, 30]], [1], box=[30, 20, 70, 44]), 3)


def test_low_res_logits_feed_back_to_refine(predictor: ImagePredictor) -> None:
    first = predictor.predict([[50, 30]], [1])
    plain = predictor.predict([[50, 30], [35, 25]], [1, 0], multimask=False)
    refined = predictor.predict([[50, 30], [35, 25]], [1, 0], mask_logits=first.best_logits, multimask=False)
    _check_prediction(refined, 1)
    assert not np.allclose(plain.low_res_logits, refined.low_res_logits), "the mask input must reach the decoder"
    again = predictor.predict([[50, 30]], [1], mask_logits=first.low_res_logits[:1], multimask=False)
    _check_prediction(again, 1)


def test_the_frame_is_embedded_once_for_many_clicks(image_model: LoadedModel, frame: np.ndarray) -> None:
    calls = []
    hook = image_model.module.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        p = ImagePredictor(image_model)
        p.set_frame(frame)
        for x in (20, 40, 60, 80):
            p.predict([[x, 30]], [1])
    finally:
        hook.remove()
    assert len(calls) == 1


def test_predictions_are_repeatable(predictor: ImagePredictor) -> None:
    a = predictor.predict([[50, 30]], [1])
    b = predictor.predict([[50, 30]], [1])
    assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores)


def test_predict_before_set_frame_is_refused(image_model: LoadedModel) -> None:
    with pytest.raises(PredictorStateError, match="set_frame"):
        ImagePredictor(image_model).predict([[1, 1]], [1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"points": [[WIDTH + 5, 10]], "labels": [1]}, "outside the 96x64 frame"),
        ({"points": [[10, -1]], "labels": [1]}, "outside"),
        ({"points": [], "labels": []}, "at least one click or a box"),
        ({"points": [[10, 10], [20, 20]], "labels": [1]}, "2 points but 1 labels"),
        ({"points": [[10, 10]], "labels": [2]}, "labels must be 1"),
        ({"points": [[10, float("nan")]], "labels": [1]}, "finite"),
        ({"points": [10, 10], "labels": [1]}, r"\(x, y\) pairs"),
        ({"box": [50, 10, 20, 30]}, "x0 < x1"),
        ({"box": [0, 0, WIDTH + 10, 10]}, "outside"),
        ({"points": [[10, 10]], "labels": [1], "mask_logits": np.zeros((256, 256), np.float32)}, r"shape \(64, 64\)"),
        ({"points": [[10, 10]], "labels": [1], "mask_logits": np.zeros((64, 64), np.int32)}, "floating-point"),
    ],
)
def test_bad_prompts_are_refused_and_the_predictor_stays_usable(
    predictor: ImagePredictor, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(BadPromptError, match=match):
        predictor.predict(**kwargs)  # type: ignore[arg-type]
    _check_prediction(predictor.predict([[50, 30]], [1]), 3)


def test_a_frame_that_is_not_rgb_is_refused(image_model: LoadedModel, frame: np.ndarray) -> None:
    p = ImagePredictor(image_model)
    with pytest.raises(BadPromptError, match="RGB"):
        p.set_frame(frame[..., 0])
    with pytest.raises(BadPromptError, match="uint8"):
        p.set_frame(frame.astype(np.float32))
    assert p.frame_size is None


def test_a_video_model_is_not_an_image_predictor() -> None:
    with pytest.raises(IncompatibleModelError, match="task='image'"):
        ImagePredictor(build_model(COMPACT, device=CPU))


def test_sam1_checkpoints_predict_the_same_way(frame: np.ndarray, tmp_path: Path) -> None:
    SamModel(tiny_sam1_config()).save_pretrained(tmp_path / "sam1")
    p = ImagePredictor(build_model(tmp_path / "sam1", task="image", device=CPU))
    p.set_frame(frame)
    first = p.predict([[50, 30]], [1])
    _check_prediction(first, 3)
    refined = p.predict([[50, 30]], [1], box=[30, 20, 70, 44], mask_logits=first.best_logits, multimask=False)
    _check_prediction(refined, 1)
