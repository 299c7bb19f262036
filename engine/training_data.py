"""What retraining needs from the catalog: the dataset's masklets, validation videos, training runs.

The training side (``training/``) decides which masklets train and which validate, and whether
to retrain at all; ``storage`` answers the questions below on the catalog and the object store
(:mod:`storage.training_data`, :mod:`storage.training_runs`). Only plain records cross.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource

TRAIN_SPLIT = "train"  # videos.split of a video whose masklets may train a model
VALIDATION_SPLIT = "val"  # videos.split of a video held out to validate models (SA-V's own name)
VALIDATION_PHASE = 1  # validation masklets are annotated with Phase 1, as the paper's were


class MaskletOrigin(StrEnum):
    """How a satisfactory masklet entered the dataset."""

    VERIFIED = "verified"  # annotated or generated here, then judged satisfactory by a verifier
    IMPORTED = "imported"  # an SA-V file imported as dataset masklets (no verdict of ours)


class RunStatus(StrEnum):
    """Where a training run stands; only ``running`` ever changes, once."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class DatasetCandidate:
    """One satisfactory manual or auto masklet, with what deciding its use needs (no masks)."""

    masklet_id: int
    video_id: str
    object_id: int
    source: MaskletSource
    phase: int | None  # the annotation phase; None for auto and imported masklets
    origin: MaskletOrigin
    verification_id: int | None  # the satisfactory verdict that admitted it; None when imported
    created_at: datetime


@dataclass(frozen=True)
class CatalogVideo:
    """A video as dataset building sees it: which split holds it and how many sampled frames it has."""

    video_id: str
    split: str
    frame_count: int


@dataclass(frozen=True)
class CatalogMarker:
    """The catalog's state when a dataset was read: the highest id of each growing table.

    Every masklet, verdict and annotation event recorded later has a higher id, so the marker
    says which catalog a training run saw (for audits: "trained on the catalog as of verdict
    1234"), without copying it.
    """

    masklet_id: int
    verification_id: int
    annotation_event_id: int


@dataclass(frozen=True)
class CatalogSnapshot:
    """Every video and every dataset candidate, read in one transaction, with its marker."""

    videos: Mapping[str, CatalogVideo]
    candidates: tuple[DatasetCandidate, ...]
    marker: CatalogMarker


@dataclass(frozen=True)
class TrainingRun:
    """One recorded training run (``training_runs``): what it was asked, on which data, how it ended."""

    id: int
    model_name: str
    status: RunStatus
    config: Mapping[str, Any]
    dataset: Mapping[str, Any]  # the dataset manifest's JSON (training.dataset.DatasetManifest)
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class TrainingDataSource(Protocol):
    """The catalog and object store as dataset building sees them."""

    def snapshot(self) -> CatalogSnapshot:
        """Every video, and every satisfactory manual and auto masklet, in one read transaction."""
        ...

    def masklets(self, masklet_ids: Sequence[int]) -> dict[int, Masklet]:
        """The masks of these masklets by id; NotFoundError naming any id the catalog lacks."""
        ...

    def frames(self, video_id: str) -> FrameSource:
        """The video's sampled frames, read lazily; NotFoundError when the video is not in the catalog."""
        ...

    def reserve_for_validation(self, video_ids: Sequence[str]) -> list[str]:
        """Move these videos from the ``train`` split to ``val``, all or none; returns those moved.

        Videos already in ``val`` are left as they are; any other split, or an unknown id,
        refuses the whole call.
        """
        ...


class TrainingRunLog(Protocol):
    """The record of training runs (``training_runs``)."""

    def start(self, model_name: str, config: Mapping[str, Any], dataset: Mapping[str, Any]) -> TrainingRun:
        """Record a new run as ``running`` with its configuration and dataset manifest."""
        ...

    def succeed(self, run_id: int) -> TrainingRun:
        """Mark a running run ``succeeded`` (finished now); TrainingRunError if it is not running."""
        ...

    def fail(self, run_id: int, error: str) -> TrainingRun:
        """Mark a running run ``failed`` with its error (finished now); TrainingRunError if it is not running."""
        ...

    def get(self, run_id: int) -> TrainingRun:
        """NotFoundError when there is no such run."""
        ...

    def list(self, model_name: str | None = None) -> list[TrainingRun]:
        """Runs (of one model, or all), oldest first."""
        ...
