"""Which model a command runs, from what the user typed after ``--model``.

In order: a directory written by ``save_pretrained``; a model in the registry (the bare name
is its champion, else its newest version; ``NAME@3``, ``NAME@champion`` as usual); the embedded
``sam2-compact`` with random weights when the registry has none (it says so); and last a hub
name such as ``facebook/sam2.1-hiera-tiny`` in the local Hugging Face cache. Anything else is
a ModelNotFoundError that says where the engine looked.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import BadModelRefError, ModelNotFoundError
from engine.model_loading import DeviceChoice, build_model, image_model_from, is_hub_name
from engine.model_registry import ModelRegistry
from engine.model_segmenters import ModelSegmenters, RegistrySegmenterSource
from engine.segmenter_config import COMPACT


def models_for(registry: ModelRegistry | None, ref: str, *, device: DeviceChoice | None = None) -> ModelSegmenters:
    """The video model ``ref`` names and the image model sharing its weights."""
    if _is_path(ref) or (registry is None and ref != COMPACT):
        return _unregistered(ref, device)
    try:
        return RegistrySegmenterSource(registry, ref, device=device).segmenters()
    except (ModelNotFoundError, BadModelRefError) as registry_error:
        if not is_hub_name(ref):
            raise
        try:
            return _unregistered(ref, device)
        except ModelNotFoundError as cache_error:
            raise ModelNotFoundError(f"{registry_error}; and not on this machine either: {cache_error}") from None


def _is_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).expanduser().is_dir()


def _unregistered(ref: str, device: DeviceChoice | None) -> ModelSegmenters:
    """A checkpoint that is not in the registry (a folder or the Hugging Face cache)."""
    video = build_model(ref, task="video", device=device)
    return ModelSegmenters(video, image_model_from(video), None, f"{ref} (not registered: {video.origin})")
