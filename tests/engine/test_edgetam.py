"""EdgeTAM through the engine: loaded by path, hub name or random weights, one click, a short propagation.

A small random EdgeTAM (0.8 M parameters at 128 px, RepViT trunk from timm) is saved with
``save_pretrained`` and loaded back as a user's checkpoint would be; with random weights the
masks are meaningless, but shapes, scores, objects and conditioning frames must behave as they
do for SAM 2.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import EdgeTamModel, EdgeTamVideoConfig, EdgeTamVideoModel

from engine.errors import BadPromptError, ConfigError, IncompatibleModelError, ModelNotFoundError
from engine.frame_source import ArrayFrames
from engine.image_predictor import ImagePredictor
from engine.model_loading import LoadedModel, build_model, image_model_from
from engine.segmenter_config import EDGETAM, KNOWN_MODELS, ModelFamily, edgetam_config, family_of
from engine.video_session import VideoSession
from tests.engine.sam_fixtures import CPU, PreviousLogitsSpy
from tests.engine.segment_fixtures import one_torch_thread, sampled_rgb, tiny_video

FAKE_REVISION = "89abcdef0123456789abcdef0123456789abcdef"


def small_edgetam_config() -> EdgeTamVideoConfig:
    """EdgeTAM's code path at 128 px: a one-block-per-stage RepViT, width 128, one memory layer."""
    return edgetam_config(
        image_size=128,
        repvit_widths=(16, 32, 64, 128),
        repvit_depths=(1, 1, 1, 1),
        latents_2d_side=4,
        fpn_hidden_size=128,
        prompt_encoder_config={"hidden_size": 128},
        mask_decoder_config={"hidden_size": 128, "mlp_dim": 256, "num_attention_heads": 4, "iou_head_hidden_dim": 128},
        memory_attention_hidden_size=128,
        memory_attention_mlp_hidden_size=256,
        memory_attention_num_layers=1,
        memory_encoder_hidden_size=128,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=256,
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_layers=1,
        num_maskmem=3,
    )


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ours = a.state_dict()
    return all(torch.equal(ours[name], tensor) for name, tensor in b.state_dict().items())


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EdgeTamVideoModel]:
    """A small EdgeTAM video checkpoint as anybody's ``save_pretrained`` writes it."""
    torch.manual_seed(0)
    original = EdgeTamVideoModel(small_edgetam_config()).eval()
    directory = tmp_path_factory.mktemp("edgetam") / "edgetam-small"
    original.save_pretrained(directory)
    return directory, original


@pytest.fixture(scope="module")
def video_model(saved: tuple[Path, EdgeTamVideoModel]) -> LoadedModel:
    return build_model(saved[0], device=CPU)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return sampled_rgb(tiny_video())  # 8 frames of 64x96, two objects


def test_a_saved_edgetam_loads_by_path_for_video_and_image(
    saved: tuple[Path, EdgeTamVideoModel], video_model: LoadedModel
) -> None:
    directory, original = saved
    assert isinstance(video_model.module, EdgeTamVideoModel)
    assert (video_model.family, video_model.task, video_model.image_size) == (ModelFamily.EDGETAM, "video", 128)
    assert video_model.pretrained and video_model.origin == str(directory.resolve())
    assert _same_weights(original, video_model.module)
    image = build_model(str(directory), task="image", device=CPU)
    assert isinstance(image.module, EdgeTamModel) and image.family is ModelFamily.EDGETAM
    assert _same_weights(original, image.module)
    derived = image_model_from(video_model)
    assert isinstance(derived.module, EdgeTamModel) and derived.task == "image"
    assert _same_weights(original, derived.module)


def test_an_edgetam_saved_by_the_engine_names_the_transformers_class(video_model: LoadedModel, tmp_path: Path) -> None:
    assert type(video_model.module) is not EdgeTamVideoModel  # the engine's mask-prompt fix
    video_model.module.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["architectures"] == ["EdgeTamVideoModel"]
    assert type(EdgeTamVideoModel.from_pretrained(tmp_path / "again")) is EdgeTamVideoModel


def test_the_edgetam_hub_name_loads_offline_from_the_local_cache(
    saved: tuple[Path, EdgeTamVideoModel], tmp_path: Path
) -> None:
    repo = tmp_path / "hub" / ("models--" + EDGETAM.replace("/", "--"))
    shutil.copytree(saved[0], repo / "snapshots" / FAKE_REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    model = build_model(EDGETAM, device=CPU, cache_dir=tmp_path / "hub")
    assert model.family is ModelFamily.EDGETAM and model.pretrained
    assert FAKE_REVISION in model.origin
    assert _same_weights(saved[1], model.module)


def test_a_missing_edgetam_says_how_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=f"hf download {EDGETAM}"):
        build_model(EDGETAM, device=CPU, cache_dir=tmp_path)


def test_one_click_on_a_frame_gives_three_candidates_and_refines(video_model: LoadedModel, frames: np.ndarray) -> None:
    predictor = ImagePredictor(image_model_from(video_model))
    predictor.set_frame(frames[0])
    first = predictor.predict([[30.0, 20.0]], [1])
    assert first.masks.shape == (3, 64, 96) and first.masks.dtype == bool
    assert list(first.scores) == sorted(first.scores, reverse=True)
    assert first.low_res_logits.shape == (3, *predictor.mask_logits_shape) == (3, 32, 32)
    refined = predictor.predict(
        [[30.0, 20.0], [80.0, 50.0]], [1, 0], box=[10, 5, 60, 40], mask_logits=first.best_logits, multimask=False
    )
    assert refined.masks.shape == (1, 64, 96) and np.isfinite(refined.scores).all()
    with pytest.raises(BadPromptError):
        predictor.predict([[200.0, 20.0]], [1])


def test_a_click_propagates_both_ways_and_a_later_mask_and_correction_are_kept(
    video_model: LoadedModel, frames: np.ndarray
) -> None:
    session = VideoSession(video_model, ArrayFrames(frames))
    prompted = session.add_points(3, 1, [[30.0, 20.0]], [1])
    assert prompted.object_ids == (1,) and prompted.object(1).mask.shape == (64, 96)
    results = list(session.propagate(3, "both"))
    assert [r.frame for r in results] == [3, 4, 5, 6, 7, 2, 1, 0]
    for result in results:
        obj = result.object(1)
        assert obj.mask.shape == (64, 96) and 0.0 <= obj.score <= 1.0 and 0.0 <= obj.stability <= 1.0

    # A second object from a mask on a tracked frame, beside a click-prompted one: transformers'
    # EdgeTAM fails here unless the mask prompt's object score is reshaped (MaskPromptFixedEdgeTamVideoModel).
    mask = np.zeros((64, 96), dtype=bool)
    mask[10:30, 50:80] = True
    on_frame = session.add_mask(5, 2, mask)
    assert on_frame.object_ids == (1, 2)
    assert on_frame.object(2).mask[15:25, 55:75].all()  # a mask prompt is its frame's output
    session.add_points(6, 1, [[40.0, 30.0]], [1])
    again = list(session.propagate(0, "forward"))
    assert [r.frame for r in again] == list(range(8))
    assert all(r.object_ids == (1, 2) for r in again)
    assert session.conditioning_frames(1) == (3, 6) and session.conditioning_frames(2) == (5,)
    assert again[5].object(2).mask[15:25, 55:75].all()

    session.remove_object(1)
    assert session.object_ids == (2,)
    assert [r.object_ids for r in session.propagate(5, "forward", max_frames=2)] == [(2,), (2,), (2,)]


def test_a_mask_only_session_refuses_clicks_and_propagates_masks(video_model: LoadedModel, frames: np.ndarray) -> None:
    session = VideoSession(video_model, ArrayFrames(frames), mask_only=True)
    with pytest.raises(BadPromptError, match="mask-only"):
        session.add_points(0, 1, [[30.0, 20.0]], [1])
    for object_id, (x0, x1) in enumerate([(5, 35), (50, 90)]):
        mask = np.zeros((64, 96), dtype=bool)
        mask[20:50, x0:x1] = True
        session.add_mask(0, object_id, mask)
    results = list(session.propagate())
    assert len(results) == 8 and all(r.object_ids == (0, 1) for r in results)


def test_an_image_only_edgetam_checkpoint_cannot_track_video(video_model: LoadedModel, tmp_path: Path) -> None:
    image_model_from(video_model).module.save_pretrained(tmp_path / "image-only")
    with pytest.raises(IncompatibleModelError, match="EdgeTamVideoModel checkpoint \\(model_type edgetam_video\\)"):
        build_model(tmp_path / "image-only", device=CPU)
    assert isinstance(build_model(tmp_path / "image-only", task="image", device=CPU).module, EdgeTamModel)


def test_random_edgetam_is_the_published_shape() -> None:
    assert KNOWN_MODELS[EDGETAM].family is ModelFamily.EDGETAM
    video = build_model(EDGETAM, random_weights=True, device=CPU)
    assert isinstance(video.module, EdgeTamVideoModel) and not video.pretrained
    assert sum(p.numel() for p in video.module.parameters()) == 13_895_794
    assert video.image_size == 1024
    config = video.module.config
    assert config.vision_config.backbone_config.architecture == "repvit_m1"
    assert not config.enable_temporal_pos_encoding_for_object_pointers
    assert not config.enable_occlusion_spatial_embedding
    image = build_model(EDGETAM, task="image", random_weights=True, device=CPU)
    assert isinstance(image.module, EdgeTamModel) and _same_weights(video.module, image.module)


def test_edgetam_configs_are_recognised_and_bad_shapes_refused() -> None:
    assert family_of(small_edgetam_config()) is ModelFamily.EDGETAM
    assert ModelFamily.EDGETAM.sam2_interface and not ModelFamily.SAM.sam2_interface
    with pytest.raises(ConfigError, match="latents_2d_side 5"):
        edgetam_config(image_size=128, latents_2d_side=5)


def test_a_missing_timm_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_timm(self: object, config: object) -> None:
        raise ImportError("TimmWrapperModel requires the timm library but it was not found in your environment")

    monkeypatch.setattr(EdgeTamVideoModel, "__init__", without_timm)
    with pytest.raises(IncompatibleModelError, match="pip install timm"):
        build_model(EDGETAM, random_weights=True, device=CPU)


def test_a_click_on_a_tracked_frame_refines_the_tracked_mask_in_edgetam_too(
    video_model: LoadedModel, frames: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = VideoSession(video_model, ArrayFrames(frames))
    session.add_points(0, 1, [[30.0, 20.0]], [1])
    list(session.propagate(0, "forward"))
    outputs = session._session.output_dict_per_obj[0]["non_cond_frame_outputs"]
    tracked = outputs[4]["pred_masks"].clamp(-32, 32).clone()
    spy = PreviousLogitsSpy(monkeypatch, video_model)
    refined = session.add_points(4, 1, [[40.0, 30.0]], [0]).object(1).mask
    torch.testing.assert_close(spy.last(), tracked, atol=0, rtol=0)
    anew = session.add_points(4, 1, [[40.0, 30.0]], [0], refine=False).object(1).mask
    assert spy.last() is None
    assert refined.shape == anew.shape == (64, 96)
