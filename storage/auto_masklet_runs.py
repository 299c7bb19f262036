"""Auto masklets for a catalog video, stored as candidates waiting for verification.

:func:`run_for_video` reads the video's sampled frames from the object store, asks the model
registry for the model, generates the masklets (:mod:`engine.auto_masklets`) and records them
all in one transaction: source ``auto``, status ``in_verification``, with the model version
that made them. Enqueueing their verify tasks is the phases' work (:mod:`phases.auto_masklets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.auto_mask_config import AutoMaskConfig
from engine.auto_masklets import AutoMasklets, generate_auto_masklets
from engine.frame_source import StoredFrames
from engine.model_choice import models_for
from engine.model_loading import DeviceChoice
from engine.model_registry import ModelRegistry
from engine.ports import ObjectStore
from engine.queues import IN_VERIFICATION
from engine.segmenters import DEFAULT_MODEL
from storage.catalog import Catalog
from storage.masklets import add_masklet
from storage.videos import get_video


@dataclass(frozen=True)
class AutoMaskletRun:
    """What one run generated and where it was stored."""

    video_id: str
    model: str  # the model as it was found, e.g. "sam2-compact@3"
    model_version_id: int | None
    pretrained: bool  # False: random weights, the masklets mean nothing
    result: AutoMasklets
    masklet_ids: tuple[int, ...]  # catalog ids, in object order


def stored_frames(catalog: Catalog, store: ObjectStore, video_id: str) -> StoredFrames:
    """A catalog video's sampled frames, read lazily from the object store (NotFoundError if unknown)."""
    with catalog.read() as session:
        video = get_video(session, video_id)
    return StoredFrames(store, video_id, video.frame_count, (video.height, video.width))


def run_for_video(
    catalog: Catalog,
    store: ObjectStore,
    registry: ModelRegistry | None,
    video_id: str,
    model_ref: str = DEFAULT_MODEL,
    config: AutoMaskConfig = AutoMaskConfig(),
    *,
    device: DeviceChoice | None = None,
) -> AutoMaskletRun:
    """Generate auto masklets on ``video_id`` with the model ``model_ref`` names, and store them."""
    frames = stored_frames(catalog, store, video_id)
    models = models_for(registry, model_ref, device=device)
    result = generate_auto_masklets(models.video, frames, video_id, config, image_model=models.image_model)
    with catalog.write() as session:
        ids = tuple(
            add_masklet(session, masklet, status=IN_VERIFICATION, model_version_id=models.model_version_id)
            for masklet in result.masklets
        )
    return AutoMaskletRun(
        video_id, models.description, models.model_version_id, models.video.pretrained, result, ids
    )


def generate_for_video(
    catalog: Catalog,
    store: ObjectStore,
    registry: ModelRegistry | None,
    video_id: str,
    model_ref: str = DEFAULT_MODEL,
    config: AutoMaskConfig = AutoMaskConfig(),
) -> list[int]:
    """Generate and store a video's auto masklets; their catalog ids, in object order."""
    return list(run_for_video(catalog, store, registry, video_id, model_ref, config).masklet_ids)
