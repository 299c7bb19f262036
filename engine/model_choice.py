"""Which model a command runs, from what the user typed after ``--model``.

In order: a directory written by ``save_pretrained``; a model in the registry (the bare name
is its champion, else its newest version; ``NAME@3``, ``NAME@champion`` as usual); the embedded
``sam2-compact`` with random weights when the registry has none (it says so); and last a hub
name such as ``facebook/sam2.1-hiera-tiny`` in the local Hugging Face cache. Anything else is
a ModelNotFoundError that says where the engine looked.
"""

from __future__ import annotations

from pathlib import Path

from engine.model_loading import DeviceChoice, build_model, image_model_from
from engine.model_registry import ModelRegistry
from engine.model_segmenters import ModelSegmenters, RegistrySegmenterSource
from engine.segmenter_config import COMPACT


def models_for(registry: ModelRegistry | None, ref: str, *, device: DeviceChoice | None = None) -> ModelSegmenters:
    """The video model ``ref`` names and the image model sharing its weights."""
    if _is_path(ref) or (registry is None and ref != COMPACT):
        return _unregistered(ref, device)
    # A hub name the registry has no version of runs from the local cache: the source's own fallback.
    return RegistrySegmenterSource(registry, ref, device=device).segmenters()


def _is_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).expanduser().is_dir()


def _unregistered(ref: str, device: DeviceChoice | None) -> ModelSegmenters:
    """A checkpoint that is not in the registry (a folder or the Hugging Face cache)."""
    video = build_model(ref, task="video", device=device)
    return ModelSegmenters(video, image_model_from(video), None, f"{ref} (not registered: {video.origin})")
