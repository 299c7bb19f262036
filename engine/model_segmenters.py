"""SAM 2 as the model in the loop: the :mod:`engine.segmenters` interfaces on the real model.

:class:`ModelSegmenters` implements them on :mod:`engine.image_predictor` and
:mod:`engine.video_session`. :class:`RegistrySegmenterSource` asks the model registry for the
model before every task (the bare name: the champion, else the newest version), so a
promotion is picked up by the next task; with an empty registry it falls back to the
embedded ``sam2-compact`` (the shipped bootstrap checkpoint, or random weights in a checkout
without one), and says which.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from engine.annotation import Click
from engine.errors import BadModelRefError, BadPromptError, ModelNotFoundError
from engine.frame_source import FrameSource
from engine.image_predictor import ImagePredictor
from engine.masklets import Masklet
from engine.model_loading import DeviceChoice, LoadedModel, build_model, image_model_from, is_hub_name
from engine.model_registry import ModelRegistry, ModelVersion
from engine.segmenter_config import COMPACT
from engine.segmenters import DEFAULT_MODEL, ClickSegmenter, Refine, Tracker
from engine.video_session import VideoSession

log = logging.getLogger(__name__)


class ImageClickSegmenter:
    """SAM's interactive protocol on :class:`ImagePredictor`: one embedding per frame.

    The first click asks for three candidate masks and keeps the best (one click is ambiguous);
    later clicks come with the previous prediction's logits, as SAM's own tools send them.
    """

    def __init__(self, predictor: ImagePredictor, frames: FrameSource) -> None:
        self._predictor = predictor
        self._frames = frames
        self._frame: int | None = None
        self._logits: np.ndarray | None = None

    def click(self, frame: int, clicks: Sequence[Click]) -> np.ndarray:
        if not clicks:
            raise BadPromptError("no clicks: a mask needs at least one click")
        if frame != self._frame:
            self._predictor.set_frame(self._frames.load(frame))
            self._frame = frame
        first = len(clicks) == 1
        prediction = self._predictor.predict(
            [(c.x, c.y) for c in clicks],
            [int(c.positive) for c in clicks],
            mask_logits=None if first else self._logits,
            multimask=first,
        )
        self._logits = prediction.best_logits
        return prediction.best_mask


class SessionTracker:
    """One object of a :class:`VideoSession`."""

    def __init__(self, session: VideoSession, object_id: int) -> None:
        self._session = session
        self._object_id = object_id

    @property
    def mask_only(self) -> bool:
        return self._session.mask_only

    def click(self, frame: int, clicks: Sequence[Click], *, refine: Refine = True) -> np.ndarray:
        result = self._session.add_points(
            frame,
            self._object_id,
            [(c.x, c.y) for c in clicks],
            [int(c.positive) for c in clicks],
            replace=True,
            refine=refine,
        )
        return result.object(self._object_id).mask

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        self._session.add_mask(frame, self._object_id, mask)

    def propagate(self, from_frame: int) -> Iterator[tuple[int, np.ndarray]]:
        for result in self._session.propagate(from_frame, "forward"):
            yield result.frame, result.object(self._object_id).mask


@dataclass(frozen=True)
class ModelSegmenters:
    """A loaded SAM 2: its video model, and the image model sharing its weights."""

    video: LoadedModel
    image_model: LoadedModel
    model_version_id: int | None
    description: str

    def image(self, frames: FrameSource) -> ClickSegmenter:
        return ImageClickSegmenter(ImagePredictor(self.image_model), frames)

    def tracker(self, frames: FrameSource, object_id: int, *, mask_only: bool) -> Tracker:
        return SessionTracker(VideoSession(self.video, frames, mask_only=mask_only), object_id)


class RegistrySegmenterSource:
    """The registry's current model for ``ref``, reloaded only when the version changes.

    Safe to share between worker threads: the loaded modules are used for inference only,
    and each task opens its own predictor and video session on them.
    """

    def __init__(
        self,
        registry: ModelRegistry | None,
        ref: str = DEFAULT_MODEL,
        *,
        device: DeviceChoice | None = None,
    ) -> None:
        self._registry = registry
        self._ref = ref
        self._device = device
        self._lock = threading.Lock()
        self._loaded: ModelSegmenters | None = None
        # True once a task ran on an unregistered model: the embedded sam2-compact, or a hub
        # model from the local Hugging Face cache, while the registry has no version of it.
        self.fallback_used = False
        self.fallback_description: str | None = None  # which: the bundled checkpoint, random weights, the cache
        self._registry_error: ModelNotFoundError | BadModelRefError | None = None

    def segmenters(self, truth: Masklet | None = None) -> ModelSegmenters:
        version = self._current_version()
        wanted = None if version is None else version.id
        with self._lock:
            if self._loaded is None or self._loaded.model_version_id != wanted:
                self._loaded = self._load(version)
            return self._loaded

    def _current_version(self) -> ModelVersion | None:
        if self._registry is None:
            return None
        try:
            return self._registry.resolve(self._ref)
        except (ModelNotFoundError, BadModelRefError) as exc:
            # Unregistered, a hub name runs from the local cache and sam2-compact embedded; any other
            # name, or a hub name with a version (NAME@3), is the registry's error.
            embedded = isinstance(exc, ModelNotFoundError) and self._ref.split("@", 1)[0] == COMPACT
            if not (embedded or is_hub_name(self._ref)):
                raise
            self._registry_error = exc
            return None

    def _load(self, version: ModelVersion | None) -> ModelSegmenters:
        if version is None and is_hub_name(self._ref):
            # Until a round registers a version of it, a hub model runs from the local cache:
            # `--model facebook/sam2.1-hiera-tiny` with the published weights downloaded.
            try:
                video = build_model(self._ref, task="video", device=self._device)
            except ModelNotFoundError as cache_error:
                where = f"{self._registry_error}; and " if self._registry_error is not None else ""
                raise ModelNotFoundError(f"{where}not on this machine either: {cache_error}") from None
            self.fallback_used = True
            self.fallback_description = f"{self._ref} ({video.origin}, not registered)"
            log.info("no %s in the model registry: annotating with it from %s", self._ref, video.origin)
            return ModelSegmenters(video, image_model_from(video), None, self.fallback_description)
        if version is None:
            self.fallback_used = True
            video = build_model(COMPACT, task="video", device=self._device)
            if video.pretrained:
                description = f"{COMPACT} (bundled bootstrap checkpoint, not registered)"
                log.info("no %s in the model registry: annotating with the bundled %s bootstrap checkpoint", self._ref, COMPACT)
            else:
                description = f"{COMPACT} (random initialisation, not registered)"
                log.warning(
                    "no %s in the model registry: annotating with the embedded %s, randomly initialised "
                    "(masks are meaningless until a trained version is registered)",
                    self._ref,
                    COMPACT,
                )
            self.fallback_description = description
        else:
            assert self._registry is not None
            video = build_model(self._registry.weights_dir(version), task="video", device=self._device)
            description = version.ref
        return ModelSegmenters(video, image_model_from(video), None if version is None else version.id, description)
