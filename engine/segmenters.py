"""The model in the loop, as the phases use it: clicks on a frame, masks through a video.

The phases speak to two small interfaces, whatever model is behind them:

- :class:`ClickSegmenter`, SAM's interactive image segmentation (Phase 1, and Phase 2's
  frames annotated from scratch): all clicks so far on one frame give a mask;
- :class:`Tracker`, SAM 2's video segmentation of one object: clicks (full model, Phase 3)
  or whole masks (Phase 2's mask-only "SAM 2 Mask") on some frames, propagated forward.

:mod:`engine.model_segmenters` implements both on SAM 2 (and asks the model registry which
version to load); :mod:`engine.simulated_segmenter` implements them with degraded ground truth
for tests and calibration. This module holds the interfaces only, so that using them costs no
import of torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from engine.annotation import Click
from engine.frame_source import FrameSource
from engine.masklets import Masklet

Refine = bool | np.ndarray  # see Tracker.click
DEFAULT_MODEL = "sam2-compact"  # a bare name: the registry's champion, else its newest version


class ClickSegmenter(Protocol):
    """Interactive segmentation of one frame at a time."""

    def click(self, frame: int, clicks: Sequence[Click]) -> np.ndarray:
        """The mask for all ``clicks`` so far on ``frame`` (``(height, width)`` bool)."""
        ...


class Tracker(Protocol):
    """One object tracked through one video."""

    @property
    def mask_only(self) -> bool:
        """True: prompts are whole masks only (SAM 2 Mask, Phase 2); clicks are refused."""
        ...

    def click(self, frame: int, clicks: Sequence[Click], *, refine: Refine = True) -> np.ndarray:
        """Prompt ``frame`` with all ``clicks`` so far on it (memory of other frames kept); its mask.

        ``refine``: which mask the clicks correct, as SAM 2 decodes a click together with the
        frame's previous mask. True: the model's latest mask on the frame (tracked, or from
        the clicks before); False: none, the clicks segment the frame anew (a cleared frame);
        a ``(height, width)`` mask: that one (the annotator's brushed mask, which the model
        has not seen).
        """
        ...

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        """Prompt ``frame`` with a whole mask (empty: the object is not there)."""
        ...

    def propagate(self, from_frame: int) -> Iterator[tuple[int, np.ndarray]]:
        """Track forward from ``from_frame`` to the last frame, yielding ``(frame, mask)``."""
        ...


class Segmenters(Protocol):
    """The model in the loop for one task, and which registered version it is."""

    @property
    def model_version_id(self) -> int | None:
        """The registry's id of the model (None: not a registered model)."""
        ...

    @property
    def description(self) -> str: ...

    def image(self, frames: FrameSource) -> ClickSegmenter: ...

    def tracker(self, frames: FrameSource, object_id: int, *, mask_only: bool) -> Tracker: ...


class SegmenterSource(Protocol):
    """Where each task gets its model from.

    ``truth`` is the object's ground truth where there is one; only simulated models read it.
    ``fallback_used`` tells whether a task ran on the embedded ``sam2-compact`` (the shipped
    bootstrap checkpoint, or random weights without one) because the registry had none, so
    commands can say so.
    """

    @property
    def fallback_used(self) -> bool: ...

    def segmenters(self, truth: Masklet | None = None) -> Segmenters: ...
