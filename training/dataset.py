"""The training and validation sets, built from what the data engine has collected so far.

As in SAM 2's data engine, a model is retrained on every satisfactory masklet collected so far
(manual and auto, each judged satisfactory by a verifier), optionally with SA-V annotations
imported as dataset, and validated on held-out videos annotated with Phase 1, so that
validation does not favour the engine's own model (Phase 2 and 3 masklets are made with it).

- **Split by video.** A video's ``split`` in the catalog decides: ``train`` videos give training
  masklets, ``val`` videos give validation masklets (their satisfactory Phase 1 masklets only),
  any other split (``test``) gives nothing. A video is moved to ``val`` once, by
  :func:`reserve_validation_videos`, before it is annotated and never after it was trained on;
  the catalog column makes the choice durable and visible (``dataengine videos list``, SA-V
  exports' ``video_split``).
- **One masklet per object.** An object annotated in several rounds has several satisfactory
  masklets; the newest is the one used, as in SA-V exports.
- **Recorded exactly.** :class:`DatasetManifest` lists every masklet id used, per video, with the
  verdict that admitted it and the catalog's state, and carries a sha256 digest; a training run
  stores it in ``training_runs.dataset``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from engine.errors import (
    BadDatasetManifestError,
    ConfigError,
    EmptyValidationSetError,
    NoTrainingDataError,
    NotFoundError,
    TrainingDataError,
    ValidationOverlapError,
)
from engine.masklets import Masklet, MaskletSource
from engine.model_registry import validate_model_name
from engine.training_data import (
    TRAIN_SPLIT,
    VALIDATION_PHASE,
    VALIDATION_SPLIT,
    CatalogMarker,
    CatalogSnapshot,
    DatasetCandidate,
    MaskletOrigin,
    TrainingDataSource,
    TrainingRun,
    TrainingRunLog,
)
from training.videos import TrainingVideo

MANIFEST_FORMAT = "dataengine.dataset/1"  # what a catalog dataset manifest says it is
_SHOWN = 10  # ids named in an error message


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestMasklet:
    """One masklet a dataset used, as the catalog held it (masks are never changed in place)."""

    masklet_id: int
    object_id: int
    source: str  # manual or auto
    origin: str  # verified or imported
    phase: int | None
    verification_id: int | None  # the satisfactory verdict that admitted it (None: imported)
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class ManifestVideo:
    """The masklets a dataset used from one video."""

    video_id: str
    frame_count: int
    masklets: tuple[ManifestMasklet, ...]


@dataclass(frozen=True)
class DatasetManifest:
    """Exactly which masklets a training run trained and validated on, and the catalog it read.

    ``digest`` is the sha256 of everything else, so two runs with equal digests saw the same
    data, and a manifest edited or damaged in the catalog is detected when read back.
    """

    model_name: str
    include_sav_imports: bool
    marker: CatalogMarker
    training: tuple[ManifestVideo, ...]
    validation: tuple[ManifestVideo, ...]

    @property
    def digest(self) -> str:
        return _sha256(self._content())

    @property
    def validation_digest(self) -> str:
        """The validation set's own digest: metrics with equal ones were measured on the same videos and masklets."""
        return _sha256([dataclasses.asdict(v) for v in self.validation])

    @property
    def training_masklet_ids(self) -> frozenset[int]:
        return frozenset(m.masklet_id for v in self.training for m in v.masklets)

    @property
    def validation_masklet_ids(self) -> frozenset[int]:
        return frozenset(m.masklet_id for v in self.validation for m in v.masklets)

    @property
    def training_video_ids(self) -> tuple[str, ...]:
        return tuple(v.video_id for v in self.training)

    @property
    def validation_video_ids(self) -> tuple[str, ...]:
        return tuple(v.video_id for v in self.validation)

    def counts(self) -> dict[str, Any]:
        """How much data went where, for people and dashboards (derived, not part of the digest)."""
        training = [m for v in self.training for m in v.masklets]
        return {
            "training_videos": len(self.training),
            "training_masklets": len(training),
            "training_by_source": dict(sorted(Counter(m.source for m in training).items())),
            "training_by_origin": dict(sorted(Counter(m.origin for m in training).items())),
            "training_frames": sum(v.frame_count for v in self.training),
            "validation_videos": len(self.validation),
            "validation_masklets": sum(len(v.masklets) for v in self.validation),
        }

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON object (for ``training_runs.dataset``), with its counts and digests."""
        return {
            **self._content(),
            "counts": self.counts(),
            "validation_digest": self.validation_digest,
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DatasetManifest:
        """Read a manifest back; BadDatasetManifestError when it is malformed or its digest does not match."""
        if not isinstance(obj, Mapping) or obj.get("format") != MANIFEST_FORMAT:
            found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
            raise BadDatasetManifestError(f"not a dataset manifest of format {MANIFEST_FORMAT!r} (found {found!r})")
        try:
            marker = obj["marker"]
            manifest = cls(
                model_name=str(obj["model_name"]),
                include_sav_imports=bool(obj["include_sav_imports"]),
                marker=CatalogMarker(
                    int(marker["masklet_id"]), int(marker["verification_id"]), int(marker["annotation_event_id"])
                ),
                training=tuple(_video_from_json(v) for v in obj["training"]),
                validation=tuple(_video_from_json(v) for v in obj["validation"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadDatasetManifestError(f"malformed dataset manifest ({type(exc).__name__}: {exc})") from None
        if obj.get("digest") != manifest.digest:
            raise BadDatasetManifestError(
                f"dataset manifest digest {obj.get('digest')!r} does not match its content ({manifest.digest}): "
                "it was edited or damaged after it was recorded"
            )
        return manifest

    def _content(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "model_name": self.model_name,
            "include_sav_imports": self.include_sav_imports,
            "marker": dataclasses.asdict(self.marker),
            "training": [dataclasses.asdict(v) for v in self.training],
            "validation": [dataclasses.asdict(v) for v in self.validation],
        }


@dataclass(frozen=True)
class Datasets:
    """What a training run consumes: training videos, validation videos, and the record of both."""

    training: tuple[TrainingVideo, ...]
    validation: tuple[TrainingVideo, ...]
    manifest: DatasetManifest


@dataclass(frozen=True)
class DatasetSelection:
    """Which catalog masklets train and which validate, per video, before any mask is loaded."""

    training: Mapping[str, tuple[DatasetCandidate, ...]]  # video id -> its masklets
    validation: Mapping[str, tuple[DatasetCandidate, ...]]
    imports_left_out: int  # imported masklets on training videos not used (include_sav_imports off)


@dataclass(frozen=True)
class ValidationReservation:
    """What :func:`reserve_validation_videos` did."""

    reserved: tuple[str, ...]  # moved to the validation split by this call
    validation_videos: tuple[str, ...]  # every video in the validation split now
    wanted: int  # how many validation videos the call aimed for
    note: str  # a sentence for people: what was done, and any shortfall


# --- choosing masklets ------------------------------------------------------------------------


def select_dataset(
    snapshot: CatalogSnapshot,
    *,
    include_sav_imports: bool = False,
    validation_video_ids: Sequence[str] | None = None,
) -> DatasetSelection:
    """Split the catalog's satisfactory masklets into training and validation, by video.

    Training: verified (and, with ``include_sav_imports``, imported) manual and auto masklets
    of ``train`` videos. Validation: verified Phase 1 masklets of ``val`` videos (all of them, or
    those named by ``validation_video_ids``, which must be in the ``val`` split). Each object
    contributes its newest masklet. Raises NoTrainingDataError or EmptyValidationSetError when
    either side is empty, ValidationOverlapError when a named validation video is a training video.
    """
    wanted_validation = _validation_videos(snapshot, validation_video_ids)
    selection = _split(snapshot, include_sav_imports, wanted_validation)
    _require_training(selection)
    _require_validation(selection, wanted_validation)
    return selection


def training_masklet_ids(snapshot: CatalogSnapshot, *, include_sav_imports: bool = False) -> frozenset[int]:
    """The masklet ids a training set built now would hold (empty when there is nothing to train on).

    No validation set is needed to count them; building a dataset asks for one.
    """
    selection = _split(snapshot, include_sav_imports, set())
    return frozenset(c.masklet_id for cs in selection.training.values() for c in cs)


def _split(snapshot: CatalogSnapshot, include_sav_imports: bool, validation_videos: set[str]) -> DatasetSelection:
    training: dict[str, list[DatasetCandidate]] = {}
    validation: dict[str, list[DatasetCandidate]] = {}
    imports_left_out = 0
    for candidate in snapshot.candidates:
        video = snapshot.videos.get(candidate.video_id)
        if video is None:
            continue  # its video was deleted after the masklet was read: not data any more
        if video.split == TRAIN_SPLIT:
            if candidate.origin is MaskletOrigin.IMPORTED and not include_sav_imports:
                imports_left_out += 1
                continue
            training.setdefault(candidate.video_id, []).append(candidate)
        elif candidate.video_id in validation_videos and _validates(candidate):
            validation.setdefault(candidate.video_id, []).append(candidate)
    return DatasetSelection(
        training={v: _newest_per_object(c) for v, c in sorted(training.items())},
        validation={v: _newest_per_object(c) for v, c in sorted(validation.items())},
        imports_left_out=imports_left_out,
    )


def _validates(candidate: DatasetCandidate) -> bool:
    """Validation masklets were annotated with Phase 1 and judged satisfactory here."""
    return candidate.origin is MaskletOrigin.VERIFIED and candidate.phase == VALIDATION_PHASE


def _validation_videos(snapshot: CatalogSnapshot, named: Sequence[str] | None) -> set[str]:
    reserved = {v.video_id for v in snapshot.videos.values() if v.split == VALIDATION_SPLIT}
    if named is None:
        return reserved
    unknown = sorted(set(named) - set(snapshot.videos))
    if unknown:
        raise NotFoundError(f"validation videos {unknown[:_SHOWN]} are not in the catalog (see `dataengine videos list`)")
    training = sorted(v for v in named if snapshot.videos[v].split == TRAIN_SPLIT)
    if training:
        raise ValidationOverlapError(
            f"videos {training[:_SHOWN]} are training videos (split {TRAIN_SPLIT!r}), so they cannot validate: "
            f"reserve them for validation first (`dataengine videos reserve-validation`, before they are trained on), "
            f"or name videos already in the {VALIDATION_SPLIT!r} split"
        )
    elsewhere = sorted(v for v in named if v not in reserved)
    if elsewhere:
        raise TrainingDataError(
            f"videos {elsewhere[:_SHOWN]} are not reserved for validation (their split is neither "
            f"{TRAIN_SPLIT!r} nor {VALIDATION_SPLIT!r}); name videos of the {VALIDATION_SPLIT!r} split"
        )
    return set(named)


def _newest_per_object(candidates: Iterable[DatasetCandidate]) -> tuple[DatasetCandidate, ...]:
    """The newest masklet of each (source, object), manual before auto, by object id."""
    newest: dict[tuple[str, int], DatasetCandidate] = {}
    for c in candidates:
        key = (c.source.value, c.object_id)
        if key not in newest or (c.created_at, c.masklet_id) > (newest[key].created_at, newest[key].masklet_id):
            newest[key] = c
    order = {MaskletSource.MANUAL.value: 0, MaskletSource.AUTO.value: 1}
    return tuple(newest[k] for k in sorted(newest, key=lambda k: (order.get(k[0], 2), k[1])))


def _require_training(selection: DatasetSelection) -> None:
    if selection.training:
        return
    if selection.imports_left_out:
        raise NoTrainingDataError(
            f"no verified satisfactory masklets on training videos yet, and the "
            f"{selection.imports_left_out} imported SA-V masklets there are left out: train with "
            "include_sav_imports to use them, or annotate and verify videos first "
            "(`dataengine annotate`, `dataengine verify`)"
        )
    raise NoTrainingDataError(
        "no satisfactory masklets on training videos yet: annotate videos and verify the masklets "
        "(`dataengine annotate --phase N`, `dataengine verify`), or import SA-V annotations as "
        "dataset (`dataengine import-sav FILE --as dataset`) and train with include_sav_imports"
    )


def _require_validation(selection: DatasetSelection, wanted: set[str]) -> None:
    if selection.validation:
        return
    if not wanted:
        raise EmptyValidationSetError(
            f"no video is reserved for validation (split {VALIDATION_SPLIT!r}): reserve some before annotating "
            "them (`dataengine videos reserve-validation --fraction 0.1`), annotate them with Phase 1 and verify "
            "the masklets"
        )
    raise EmptyValidationSetError(
        f"the validation videos {sorted(wanted)[:_SHOWN]} have no satisfactory Phase 1 masklet: annotate them "
        "with Phase 1 (`dataengine annotate --phase 1`) and verify the masklets (`dataengine verify`); "
        "validation uses Phase 1 masklets only, so that the engine's own model is not judged on its own output"
    )


# --- overlap with past training ------------------------------------------------------------------


def manifest_of(run: TrainingRun) -> DatasetManifest | None:
    """The catalog dataset manifest a run recorded; None when it trained on something else
    (the bootstrap's synthetic videos). A damaged catalog manifest raises BadDatasetManifestError."""
    if run.dataset.get("format") != MANIFEST_FORMAT:
        return None
    return DatasetManifest.from_json(run.dataset)


def trained_video_ids(runs: Iterable[TrainingRun]) -> dict[str, list[int]]:
    """Video id -> the runs that trained on it, over every recorded run, whatever its outcome."""
    trained: dict[str, list[int]] = {}
    for run in runs:
        manifest = manifest_of(run)
        if manifest is not None:
            for video_id in manifest.training_video_ids:
                trained.setdefault(video_id, []).append(run.id)
    return trained


def _refuse_trained_validation(validation: Iterable[str], runs: TrainingRunLog) -> None:
    trained = trained_video_ids(runs.list())
    overlap = {v: trained[v] for v in sorted(validation) if v in trained}
    if overlap:
        shown = dict(list(overlap.items())[:_SHOWN])
        raise ValidationOverlapError(
            f"validation videos were trained on by earlier runs (video -> runs: {shown}); their scores would "
            f"flatter every model descended from those runs: set their split back to {TRAIN_SPLIT!r} and "
            "reserve fresh videos for validation"
        )


# --- building -----------------------------------------------------------------------------------


def build_datasets(
    data: TrainingDataSource,
    runs: TrainingRunLog,
    *,
    model_name: str,
    include_sav_imports: bool = False,
    validation_video_ids: Sequence[str] | None = None,
) -> Datasets:
    """The training and validation sets from the catalog now, with their manifest.

    Masks are loaded in bulk; frames stay in the object store until the training loop reads
    them. ``runs`` is consulted so that no validation video was ever trained on.
    """
    validate_model_name(model_name)
    snapshot = data.snapshot()
    selection = select_dataset(
        snapshot, include_sav_imports=include_sav_imports, validation_video_ids=validation_video_ids
    )
    _refuse_trained_validation(selection.validation, runs)
    chosen = [c.masklet_id for group in (selection.training, selection.validation) for cs in group.values() for c in cs]
    masks = data.masklets(chosen)
    manifest = DatasetManifest(
        model_name=model_name,
        include_sav_imports=include_sav_imports,
        marker=snapshot.marker,
        training=_manifest_videos(selection.training, snapshot),
        validation=_manifest_videos(selection.validation, snapshot),
    )
    return Datasets(
        training=tuple(_training_video(data, v, cs, masks) for v, cs in selection.training.items()),
        validation=tuple(_training_video(data, v, cs, masks) for v, cs in selection.validation.items()),
        manifest=manifest,
    )


def _training_video(
    data: TrainingDataSource, video_id: str, candidates: Sequence[DatasetCandidate], masks: Mapping[int, Masklet]
) -> TrainingVideo:
    return TrainingVideo(video_id, data.frames(video_id), _distinct_objects([masks[c.masklet_id] for c in candidates]))


def _distinct_objects(masklets: Sequence[Masklet]) -> tuple[Masklet, ...]:
    """The masklets with distinct object ids: a clash gets the next free id.

    Imported SA-V files number manual and auto masklets independently (both start at 0), and
    one video may hold both; training tells objects apart by id. The manifest keeps the
    catalog's ids.
    """
    taken: set[int] = set()
    free = max(m.object_id for m in masklets) + 1
    distinct = []
    for masklet in masklets:
        if masklet.object_id in taken:
            masklet = dataclasses.replace(masklet, object_id=free)
            free += 1
        taken.add(masklet.object_id)
        distinct.append(masklet)
    return tuple(distinct)


def _manifest_videos(
    groups: Mapping[str, Sequence[DatasetCandidate]], snapshot: CatalogSnapshot
) -> tuple[ManifestVideo, ...]:
    return tuple(
        ManifestVideo(
            video_id=video_id,
            frame_count=snapshot.videos[video_id].frame_count,
            masklets=tuple(
                ManifestMasklet(
                    masklet_id=c.masklet_id,
                    object_id=c.object_id,
                    source=c.source.value,
                    origin=c.origin.value,
                    phase=c.phase,
                    verification_id=c.verification_id,
                    created_at=_iso(c.created_at),
                )
                for c in candidates
            ),
        )
        for video_id, candidates in groups.items()
    )


# --- reserving validation videos ----------------------------------------------------------------


def reserve_validation_videos(
    data: TrainingDataSource,
    runs: TrainingRunLog,
    *,
    video_ids: Sequence[str] | None = None,
    fraction: float | None = None,
) -> ValidationReservation:
    """Hold videos out for validation, durably (their catalog split becomes ``val``).

    Give ``video_ids`` to choose, or ``fraction`` to have the validation split reach that share
    of all ``train`` and ``val`` videos. With a fraction the videos are chosen by the sha256
    of their id, those without dataset masklets yet first, so the choice does not depend on
    the order videos arrived and calling again reserves nothing more until new videos come.
    A video any recorded run trained on is never reserved. Reserve before annotating: the
    validation videos are then annotated with Phase 1.
    """
    if (video_ids is None) == (fraction is None):
        raise ConfigError("reserve validation videos by video_ids or by fraction: give exactly one")
    snapshot = data.snapshot()
    trained = trained_video_ids(runs.list())
    if video_ids is not None:
        refused = {v: trained[v] for v in sorted(set(video_ids)) if v in trained}
        if refused:
            shown = dict(list(refused.items())[:_SHOWN])
            raise ValidationOverlapError(
                f"videos were trained on by earlier runs (video -> runs: {shown}), so they cannot validate; "
                "choose videos no run has trained on"
            )
        moved = data.reserve_for_validation(list(video_ids))
        return _reservation(snapshot, moved, len(set(video_ids)))
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0 < fraction < 1):
        raise ConfigError(f"validation fraction {fraction!r} must be a number between 0 and 1 (e.g. 0.1)")
    pool = [v for v in snapshot.videos.values() if v.split in (TRAIN_SPLIT, VALIDATION_SPLIT)]
    wanted = math.ceil(fraction * len(pool))
    have = sum(1 for v in pool if v.split == VALIDATION_SPLIT)
    annotated = {c.video_id for c in snapshot.candidates}
    eligible = sorted(
        (v.video_id for v in pool if v.split == TRAIN_SPLIT and v.video_id not in trained),
        key=lambda v: (v in annotated, hashlib.sha256(v.encode()).hexdigest()),
    )
    chosen = eligible[: max(wanted - have, 0)]
    moved = data.reserve_for_validation(chosen) if chosen else []
    return _reservation(snapshot, moved, wanted)


def _reservation(snapshot: CatalogSnapshot, moved: Sequence[str], wanted: int) -> ValidationReservation:
    before = {v.video_id for v in snapshot.videos.values() if v.split == VALIDATION_SPLIT}
    validation = tuple(sorted(before | set(moved)))
    note = f"reserved {len(moved)} video(s) for validation; {len(validation)} in the {VALIDATION_SPLIT!r} split"
    if len(validation) < wanted:
        note += f", {wanted - len(validation)} fewer than wanted: the other videos were trained on already"
    return ValidationReservation(tuple(moved), validation, wanted, note)


# --- helpers -------------------------------------------------------------------------------------


def _video_from_json(obj: Mapping[str, Any]) -> ManifestVideo:
    return ManifestVideo(
        video_id=str(obj["video_id"]),
        frame_count=int(obj["frame_count"]),
        masklets=tuple(
            ManifestMasklet(
                masklet_id=int(m["masklet_id"]),
                object_id=int(m["object_id"]),
                source=str(m["source"]),
                origin=str(m["origin"]),
                phase=None if m["phase"] is None else int(m["phase"]),
                verification_id=None if m["verification_id"] is None else int(m["verification_id"]),
                created_at=str(m["created_at"]),
            )
            for m in obj["masklets"]
        ),
    )


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # the catalog returns UTC; a naive value here would be a bug upstream
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
