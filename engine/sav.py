"""The SA-V annotation format, field for field as Meta published it with SAM 2.

Pure conversion between SA-V JSON objects (``dict``) and our records; reading and writing
files is :mod:`storage.exports`'s job. One SA-V object describes one video and the masklets
of one type (SA-V ships ``{video_id}_manual.json`` and ``{video_id}_auto.json`` separately).
``masklet`` is a list over annotated frames of lists over objects of COCO RLEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import BadAnnotationFileError, BadMaskError
from engine.masklets import Masklet, MaskletSource, check_same_frames
from engine.masks import Rle

SAV_FIELDS = (
    "video_id",
    "video_duration",
    "video_frame_count",
    "video_height",
    "video_width",
    "video_resolution",
    "video_environment",
    "video_split",
    "masklet",
    "masklet_id",
    "masklet_size_rel",
    "masklet_size_abs",
    "masklet_size_bucket",
    "masklet_visibility_changes",
    "masklet_first_appeared_frame",
    "masklet_frame_count",
    "masklet_edited_frame_count",
    "masklet_type",
    "masklet_stability_score",
    "masklet_num",
)


@dataclass(frozen=True)
class SavVideo:
    """The video-level fields of an SA-V file.

    ``frame_count`` and ``duration_s`` describe the source video (e.g. 24 FPS), while the
    masklets hold one mask per annotated (sampled) frame.
    """

    video_id: str
    duration_s: float
    frame_count: int
    height: int
    width: int
    environment: str = "Unknown"
    split: str = "train"


@dataclass(frozen=True)
class SavAnnotation:
    video: SavVideo
    masklets: tuple[Masklet, ...]


def masklet_type(source: MaskletSource) -> str:
    """SA-V knows only ``manual`` and ``auto``; ground truth is exported as manual."""
    return "auto" if source is MaskletSource.AUTO else "manual"


def to_sav(video: SavVideo, masklets: Sequence[Masklet]) -> dict[str, Any]:
    """The SA-V JSON object for ``masklets`` (all of one type) of ``video``."""
    check_same_frames(masklets)
    types = {masklet_type(m.source) for m in masklets}
    if len(types) > 1:
        raise BadAnnotationFileError(
            f"video {video.video_id}: one SA-V file holds one masklet type, got {sorted(types)}"
        )
    for m in masklets:
        if (m.height, m.width) != (video.height, video.width):
            raise BadMaskError(
                f"video {video.video_id} is {video.height}x{video.width} but masklet "
                f"{m.object_id} is {m.height}x{m.width}"
            )
    frame_count = masklets[0].frame_count if masklets else 0
    ordered = sorted(masklets, key=lambda m: m.object_id)
    is_auto = types == {"auto"}
    return {
        "video_id": video.video_id,
        "video_duration": float(video.duration_s),
        "video_frame_count": float(video.frame_count),
        "video_height": float(video.height),
        "video_width": float(video.width),
        "video_resolution": float(video.height * video.width),
        "video_environment": video.environment,
        "video_split": video.split,
        "masklet": [[m.masks[i].to_coco() for m in ordered] for i in range(frame_count)],
        "masklet_id": [m.object_id for m in ordered],
        "masklet_size_rel": [m.size_rel for m in ordered],
        "masklet_size_abs": [m.size_abs for m in ordered],
        "masklet_size_bucket": [m.size_bucket.value for m in ordered],
        "masklet_visibility_changes": [m.visibility_changes for m in ordered],
        "masklet_first_appeared_frame": [m.first_appeared_frame or 0 for m in ordered],
        "masklet_frame_count": [m.frame_count for m in ordered],
        "masklet_edited_frame_count": [0 if is_auto else m.edited_frame_count for m in ordered],
        "masklet_type": [masklet_type(m.source) for m in ordered],
        # SA-V: [frame][object] for auto masklets, one None per object for manual ones.
        "masklet_stability_score": (
            [[_stability(m, i) for m in ordered] for i in range(frame_count)]
            if is_auto
            else [None for _ in ordered]
        ),
        "masklet_num": len(ordered),
    }


def _stability(masklet: Masklet, frame: int) -> float | None:
    return None if masklet.stability_scores is None else float(masklet.stability_scores[frame])


def from_sav(obj: Any, *, source: MaskletSource | None = None, origin: str = "SA-V JSON") -> SavAnnotation:
    """Parse an SA-V JSON object; ``source`` overrides the file's ``masklet_type`` (e.g. ground truth).

    Every inconsistency (missing field, lists of different lengths, masks of the wrong size)
    raises BadAnnotationFileError naming ``origin``.
    """
    if not isinstance(obj, dict):
        raise BadAnnotationFileError(f"{origin}: top level must be an object, got {type(obj).__name__}")
    missing = [k for k in ("video_id", "video_height", "video_width", "masklet", "masklet_id") if k not in obj]
    if missing:
        raise BadAnnotationFileError(f"{origin}: missing SA-V fields {missing}")
    try:
        video = SavVideo(
            video_id=str(obj["video_id"]),
            duration_s=float(obj.get("video_duration", 0.0)),
            frame_count=int(float(obj.get("video_frame_count", len(obj["masklet"])))),
            height=int(float(obj["video_height"])),
            width=int(float(obj["video_width"])),
            environment=_environment(obj.get("video_environment", "Unknown")),
            split=str(obj.get("video_split", "train")),
        )
        frames: list[Any] = obj["masklet"]
        ids = [int(i) for i in obj["masklet_id"]]
    except (TypeError, ValueError) as exc:
        raise BadAnnotationFileError(f"{origin}: malformed video fields: {exc}") from exc
    if not isinstance(frames, list) or any(not isinstance(f, list) or len(f) != len(ids) for f in frames):
        raise BadAnnotationFileError(
            f"{origin}: 'masklet' must be a list over frames of lists of {len(ids)} RLEs (one per masklet_id)"
        )
    if not frames and ids:
        raise BadAnnotationFileError(f"{origin}: {len(ids)} masklets but no annotated frames")
    if len(set(ids)) != len(ids):
        raise BadAnnotationFileError(f"{origin}: duplicate masklet ids {ids}")
    types = _per_object(obj, "masklet_type", len(ids), default="manual")
    edited = _per_object(obj, "masklet_edited_frame_count", len(ids), default=0)
    stability = _stability_columns(obj, len(ids), len(frames), origin)
    masklets = []
    for column, object_id in enumerate(ids):
        try:
            masks = tuple(Rle.from_coco(frame[column]) for frame in frames)
        except BadMaskError as exc:
            raise BadAnnotationFileError(f"{origin}: masklet {object_id}: {exc}") from exc
        for index, rle in enumerate(masks):
            if (rle.height, rle.width) != (video.height, video.width):
                raise BadAnnotationFileError(
                    f"{origin}: masklet {object_id} frame {index} is {rle.height}x{rle.width}, "
                    f"video is {video.height}x{video.width}"
                )
        kind = source or _source_of(types[column], origin)
        try:
            masklets.append(
                Masklet(
                    video_id=video.video_id,
                    object_id=object_id,
                    source=kind,
                    masks=masks,
                    edited_frame_count=int(edited[column] or 0),
                    stability_scores=stability[column],
                )
            )
        except BadMaskError as exc:
            raise BadAnnotationFileError(f"{origin}: {exc}") from exc
    return SavAnnotation(video=video, masklets=tuple(masklets))


def _environment(value: Any) -> str:
    # The README says List[str]; the published files hold a plain string.
    if isinstance(value, list):
        return str(value[0]) if value else "Unknown"
    return str(value)


def _per_object(obj: dict[str, Any], key: str, n: int, *, default: Any) -> list[Any]:
    values = obj.get(key)
    if values is None:
        return [default] * n
    if not isinstance(values, list) or len(values) != n:
        raise BadAnnotationFileError(f"SA-V field {key!r} must list one value per masklet ({n})")
    return values


def _stability_columns(
    obj: dict[str, Any], n_objects: int, n_frames: int, origin: str
) -> list[tuple[float, ...] | None]:
    """Per-object stability score sequences from SA-V's [frame][object] (or [None]*n) layout."""
    scores = obj.get("masklet_stability_score")
    if scores is None or (isinstance(scores, list) and all(s is None for s in scores)):
        return [None] * n_objects
    if not isinstance(scores, list) or len(scores) != n_frames or any(
        not isinstance(row, list) or len(row) != n_objects for row in scores
    ):
        raise BadAnnotationFileError(
            f"{origin}: masklet_stability_score must be [frame][object] ({n_frames}x{n_objects})"
        )
    columns: list[tuple[float, ...] | None] = []
    for column in range(n_objects):
        values = [row[column] for row in scores]
        columns.append(None if any(v is None for v in values) else tuple(float(v) for v in values))
    return columns


def _source_of(value: Any, origin: str) -> MaskletSource:
    if value == "auto":
        return MaskletSource.AUTO
    if value == "manual":
        return MaskletSource.MANUAL
    raise BadAnnotationFileError(f"{origin}: masklet_type {value!r} is neither 'manual' nor 'auto'")
