"""build_model: the embedded compact SAM 2, checkpoints by path and by hub name, offline, and clear errors."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, Sam2Model, Sam2VideoModel, SamModel

from engine.errors import ConfigError, CorruptCheckpointError, IncompatibleModelError, ModelNotFoundError, NotFoundError
from engine.model_loading import LoadedModel, build_model, choose_device, image_model_from
from engine.segmenter_config import COMPACT, KNOWN_MODELS, ModelFamily, sam21_tiny_config
from tests.engine.sam_fixtures import CPU, tiny_sam1_config

FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ours = a.state_dict()
    return all(torch.equal(ours[name], tensor) for name, tensor in b.state_dict().items())


@pytest.fixture(scope="module")
def compact() -> LoadedModel:
    return build_model(COMPACT, device=CPU)


@pytest.fixture(scope="module")
def checkpoint(compact: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sam2-compact checkpoint as training will write it: save_pretrained of the video model."""
    directory = tmp_path_factory.mktemp("checkpoint") / "sam2-compact-v1"
    compact.module.save_pretrained(directory)
    return directory


def _fake_hub_cache(root: Path, repo_id: str, checkpoint: Path) -> Path:
    """Lay ``checkpoint`` out as the Hugging Face hub cache does after ``hf download repo_id``."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / FAKE_REVISION
    shutil.copytree(checkpoint, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    return root


def test_compact_is_a_three_million_parameter_sam2_that_says_it_is_untrained(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.bundled.WEIGHTS_ROOT", tmp_path)  # as in a checkout without the shipped model
    with caplog.at_level(logging.WARNING, logger="engine.model_loading"):
        model = build_model(COMPACT, device=CPU)
    assert isinstance(model.module, Sam2VideoModel)
    assert sum(p.numel() for p in model.module.parameters()) == 2_884_194
    assert (model.family, model.task, model.image_size, model.pretrained) == (ModelFamily.SAM2, "video", 256, False)
    assert not model.module.training
    assert "sam2-compact: random initialisation — masks are meaningless until trained" in caplog.text


def test_the_image_and_video_forms_of_compact_share_weights(compact: LoadedModel) -> None:
    image = build_model(COMPACT, task="image", device=CPU)
    assert isinstance(image.module, Sam2Model)
    assert _same_weights(compact.module, image.module)
    derived = image_model_from(compact)
    assert isinstance(derived.module, Sam2Model) and derived.task == "image"
    assert _same_weights(compact.module, derived.module)


def test_random_initialisation_does_not_touch_the_callers_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(COMPACT, device=CPU, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_a_saved_checkpoint_loads_by_path_for_video_and_image(compact: LoadedModel, checkpoint: Path) -> None:
    video = build_model(checkpoint, device=CPU)
    assert isinstance(video.module, Sam2VideoModel) and video.pretrained
    assert video.origin == str(checkpoint.resolve())
    assert _same_weights(compact.module, video.module)
    image = build_model(str(checkpoint), task="image", device=CPU)
    assert isinstance(image.module, Sam2Model)
    assert _same_weights(compact.module, image.module)


def test_a_saved_checkpoint_names_the_transformers_class_and_loads_without_the_engine(
    compact: LoadedModel, checkpoint: Path
) -> None:
    # The engine's model class is its own subclass; the checkpoint must not name it.
    assert type(compact.module) is not Sam2VideoModel
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architectures"] == ["Sam2VideoModel"]
    plain = AutoModel.from_pretrained(checkpoint)
    assert type(plain) is Sam2VideoModel
    assert _same_weights(compact.module, plain)


def test_a_hub_name_loads_offline_from_the_local_cache(compact: LoadedModel, checkpoint: Path, tmp_path: Path) -> None:
    cache = _fake_hub_cache(tmp_path / "hub", "facebook/sam2.1-hiera-tiny", checkpoint)
    model = build_model("facebook/sam2.1-hiera-tiny", device=CPU, cache_dir=cache)
    assert model.pretrained and model.origin.startswith("Hugging Face cache")
    assert FAKE_REVISION in model.origin
    assert _same_weights(compact.module, model.module)


def test_a_missing_hub_model_says_what_is_missing_and_how_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        build_model("facebook/sam2.1-hiera-small", device=CPU, cache_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "models--facebook--sam2.1-hiera-small") in message
    assert "hf download facebook/sam2.1-hiera-small" in message
    assert "huggingface-cli download facebook/sam2.1-hiera-small" in message
    assert "--local-dir" in message
    assert isinstance(caught.value, NotFoundError)


@pytest.mark.parametrize("name", ["sam3-giant", "./no/such/dir", "/no/such/checkpoint", "a/b/c", "bad name/x y"])
def test_a_name_that_resolves_to_nothing_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        build_model(name, device=CPU, cache_dir=tmp_path)


def test_random_weights_need_a_known_configuration() -> None:
    with pytest.raises(ModelNotFoundError, match="no built-in configuration"):
        build_model("someone/sam2-custom", random_weights=True, device=CPU)


def test_truncated_weights_are_a_corrupt_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match="damaged or truncated"):
        build_model(broken, device=CPU)


def test_garbage_weights_are_a_corrupt_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "garbage"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 100)
    with pytest.raises(CorruptCheckpointError):
        build_model(broken, device=CPU)


def test_an_unreadable_config_is_a_corrupt_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "config"
    shutil.copytree(checkpoint, broken)
    (broken / "config.json").write_text('{"model_type": "sam2_video", ')
    with pytest.raises(CorruptCheckpointError, match="config.json"):
        build_model(broken, device=CPU)


def test_a_checkpoint_without_weights_is_incomplete(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "no-weights"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(CorruptCheckpointError, match="no weights file"):
        build_model(broken, device=CPU)


def test_weights_missing_from_a_checkpoint_are_not_silently_made_up(checkpoint: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "partial"
    shutil.copytree(checkpoint, broken)
    tensors = load_file(broken / "model.safetensors")
    del tensors["memory_encoder.projection.weight"]
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CorruptCheckpointError, match="1 weights missing.*memory_encoder.projection.weight"):
        build_model(broken, device=CPU)


def test_an_image_only_sam2_checkpoint_cannot_track_video(compact: LoadedModel, tmp_path: Path) -> None:
    image = image_model_from(compact)
    image.module.save_pretrained(tmp_path / "image-only")
    with pytest.raises(IncompatibleModelError, match="memory weights"):
        build_model(tmp_path / "image-only", device=CPU)
    assert isinstance(build_model(tmp_path / "image-only", task="image", device=CPU).module, Sam2Model)


def test_a_sam1_checkpoint_serves_images_only(tmp_path: Path) -> None:
    SamModel(tiny_sam1_config()).save_pretrained(tmp_path / "sam1")
    model = build_model(tmp_path / "sam1", task="image", device=CPU)
    assert isinstance(model.module, SamModel) and model.family is ModelFamily.SAM
    with pytest.raises(IncompatibleModelError, match="SAM 1"):
        build_model(tmp_path / "sam1", task="video", device=CPU)


def test_the_published_configurations_have_the_published_sizes() -> None:
    assert set(KNOWN_MODELS) >= {
        COMPACT,
        "facebook/sam2.1-hiera-tiny",
        "facebook/sam2.1-hiera-small",
        "facebook/sam2.1-hiera-base-plus",
        "facebook/sam2.1-hiera-large",
        "facebook/sam-vit-base",
    }
    tiny = sam21_tiny_config()
    assert tiny.image_size == 1024
    assert tiny.vision_config.backbone_config.blocks_per_stage == [1, 2, 7, 2]


def test_sam21_tiny_with_random_weights_has_39m_parameters() -> None:
    model = build_model("facebook/sam2.1-hiera-tiny", random_weights=True, device=CPU)
    assert sum(p.numel() for p in model.module.parameters()) == 38_962_498
    assert not model.pretrained


def test_cpu_is_chosen_without_a_gpu_and_threads_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    try:
        choice = choose_device(torch_threads=1)
        assert choice.device.type == "cpu" and choice.autocast_dtype is None
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="no CUDA"):
        choose_device("cuda")



@pytest.mark.parametrize(
    ("name", "hub"),
    [
        ("facebook/sam2.1-hiera-tiny", True),
        ("team/segmenter", True),  # could be a registry name too: the registry is asked first
        ("sam2-compact", False),
        ("facebook/sam2.1-hiera-tiny@3", False),  # a registry reference
        ("./models/ckpt", False),
        ("/abs/ckpt", False),
        ("~/ckpt", False),
        ("a/b/c", False),
        ("C:/x", False),
        ("a\\b/c", False),
        (" facebook/x", False),
        ("face book/x", False),
        ("/x", False),
        ("x/", False),
    ],
)
def test_what_counts_as_a_hub_name(name: str, hub: bool) -> None:
    from engine.model_loading import is_hub_name

    assert is_hub_name(name) is hub


def test_an_existing_folder_with_one_slash_is_a_path_not_a_hub_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.model_loading import is_hub_name

    (tmp_path / "models" / "ckpt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_name("models/ckpt")
