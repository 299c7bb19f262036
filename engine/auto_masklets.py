"""Automatic masklets, as in the SAM 2 data engine: grid-prompted masks on frame 0, propagated.

The procedure, in the order :func:`generate_auto_masklets` runs it:

1. **Click a grid on the first frame** (:func:`first_frame_candidates`): a 32x32 grid over the
   whole frame, 16x16 on each of 2x2 overlapping crops and 4x4 on each of 4x4 crops (the
   paper's grids); each crop is embedded once and its points decoded in batches, each point a
   one-click prompt with three candidate masks.
2. **Keep good masks**: predicted IoU above a threshold, stability score at least another
   (on the model's low-resolution logits, as the video session scores every tracked frame);
   masks cut off by a crop's border (but not by the frame's) are dropped.
3. **Tidy and de-duplicate**: per crop, then across crops (masks from smaller crops win, as they
   saw the object at a higher resolution), greedy NMS by mask IoU; then small disconnected
   components are removed and small holes filled (under 200 px of the full frame), and
   duplicates that this creates are removed once more, preferring untouched masks.
4. **Propagate** (:func:`propagate_candidates`): each kept mask is a mask prompt on frame 0 of
   a mask-only video session, several objects per session and sessions one after another so
   memory stays bounded; each masklet carries the session's per-frame stability score (SA-V's
   ``masklet_stability_score``).

Every knob is a field of :class:`~engine.auto_mask_config.AutoMaskConfig`; the defaults are
SAM 2's automatic mask generator and the paper's grid, and tests or a two-core demo use a
small grid instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.auto_mask_config import AutoMaskConfig
from engine.errors import ConfigError
from engine.frame_source import FrameSource
from engine.grid_predictor import GridPredictor
from engine.mask_cleanup import clean_small_regions, stability_scores, suppress_duplicates
from engine.masklets import Masklet, MaskletSource
from engine.masks import Rle, bbox, decode, encode
from engine.model_loading import LoadedModel, image_model_from
from engine.point_grids import CropBox, crop_boxes, point_grid
from engine.video_session import VideoSession

log = logging.getLogger(__name__)

FIRST_FRAME = 0
UPSCALE_PIXELS = 1 << 25  # logits upscaled at once (128 MB of float32), whatever the frame size


@dataclass(frozen=True)
class MaskCandidate:
    """One first-frame mask that survived filtering, at the full frame's resolution."""

    mask: Rle
    predicted_iou: float
    stability: float
    point: tuple[float, float]  # the click (x, y) in frame pixels that produced it
    crop: CropBox
    cleaned: bool = False  # small components or holes were cleaned away


@dataclass(frozen=True)
class GridStats:
    """How many masks each step of first-frame generation let through."""

    points: int  # one-click prompts, over all crops
    predicted: int  # candidate masks the model returned (three per point with multimask)
    passed_scores: int  # above the predicted-IoU and stability thresholds, not cut by a crop border
    kept: int  # after de-duplication and cleaning: the masklets to propagate


@dataclass(frozen=True)
class AutoMasklets:
    """The result of one run: first-frame candidates and their masklets, in the same order."""

    candidates: tuple[MaskCandidate, ...]
    masklets: tuple[Masklet, ...]  # object ids 0..n-1, source AUTO
    stats: GridStats


def generate_auto_masklets(
    video_model: LoadedModel,
    frames: FrameSource,
    video_id: str,
    config: AutoMaskConfig = AutoMaskConfig(),
    *,
    image_model: LoadedModel | None = None,
) -> AutoMasklets:
    """Candidate masklets for every object found on the video's first frame.

    ``image_model`` defaults to the image form of ``video_model`` (same weights).
    """
    image_model = image_model or image_model_from(video_model)
    candidates, stats = first_frame_candidates(image_model, frames.load(FIRST_FRAME), config)
    log.info(
        "%s: %d points, %d masks, %d passed the thresholds, %d kept",
        video_id, stats.points, stats.predicted, stats.passed_scores, stats.kept,
    )
    masklets = propagate_candidates(video_model, frames, video_id, candidates, config.objects_per_session)
    return AutoMasklets(tuple(candidates), tuple(masklets), stats)


@dataclass(frozen=True)
class AutoMaskletGenerator:
    """Auto masklets from one model: what :class:`phases.auto_masklets.CandidateGenerator` asks for."""

    video_model: LoadedModel
    image_model: LoadedModel
    model_version_id: int | None  # the registry's id of the model (None: not registered)
    config: AutoMaskConfig = AutoMaskConfig()

    def candidates(self, video_id: str, frames: FrameSource) -> list[Masklet]:
        result = generate_auto_masklets(self.video_model, frames, video_id, self.config, image_model=self.image_model)
        return list(result.masklets)


# --- first frame ---------------------------------------------------------------------------


def first_frame_candidates(
    image_model: LoadedModel, image: np.ndarray, config: AutoMaskConfig = AutoMaskConfig()
) -> tuple[list[MaskCandidate], GridStats]:
    """Grid-prompted masks on one frame, filtered, cleaned and de-duplicated; best predicted IoU first."""
    predictor = GridPredictor(image_model)
    height, width = image.shape[:2]
    grids = [point_grid(n) for n in config.grid_sides]
    found: list[MaskCandidate] = []
    points = predicted = 0
    for crop in crop_boxes(height, width, config.crop_layers, config.crop_overlap_ratio):
        grid = grids[crop.layer]
        crop_found, crop_predicted = _crop_candidates(predictor, image, crop, grid, config)
        found += crop_found
        points += len(grid)
        predicted += crop_predicted
    passed = len(found)
    # Across crops, a mask from a smaller crop wins: it saw the object at a higher resolution.
    found = _dedup(found, config.nms_iou_threshold, lambda c: (-c.crop.layer, -c.predicted_iou))
    found = [_cleaned(c, config.min_region_area) for c in found]
    # Cleaning can make two masks alike again; prefer the one that needed no cleaning.
    found = _dedup(found, config.nms_iou_threshold, lambda c: (c.cleaned, -c.predicted_iou))
    found.sort(key=lambda c: -c.predicted_iou)
    if config.max_candidates is not None:
        found = found[: config.max_candidates]
    return found, GridStats(points, predicted, passed, len(found))


def _crop_candidates(
    predictor: GridPredictor, image: np.ndarray, crop: CropBox, grid: np.ndarray, config: AutoMaskConfig
) -> tuple[list[MaskCandidate], int]:
    """Masks from one crop's grid that pass the score thresholds, de-duplicated within the crop."""
    predictor.set_image(np.ascontiguousarray(image[crop.y0 : crop.y1, crop.x0 : crop.x1]))
    points = grid * np.array([crop.width, crop.height], dtype=np.float64)
    found: list[MaskCandidate] = []
    predicted = 0
    for start in range(0, len(points), config.points_per_batch):
        batch = points[start : start + config.points_per_batch]
        out = predictor.predict_points(batch, multimask=config.multimask)
        per_point = out.scores.shape[1]
        logits = out.low_res_logits.flatten(0, 1)
        scores = out.scores.reshape(-1)
        # Judged on the low-resolution logits, as SAM 2 judges them, before any mask is upscaled:
        # the stability of the model's own mask, not of the edge-fitted one kept (engine.mask_upsampling).
        stability = stability_scores(logits, config.stability_offset).numpy()
        predicted += len(scores)
        keep = stability >= config.min_stability
        if config.min_predicted_iou > 0:
            keep &= scores > config.min_predicted_iou
        for index, mask in _upscaled(predictor, logits, np.flatnonzero(keep), crop):
            x, y = batch[index // per_point]
            candidate = _placed(mask, crop, image.shape[:2], config.crop_edge_margin)
            if candidate is not None:
                found.append(
                    MaskCandidate(
                        candidate,
                        float(scores[index]),
                        float(stability[index]),
                        (float(x) + crop.x0, float(y) + crop.y0),
                        crop,
                    )
                )
    return _dedup(found, config.nms_iou_threshold, lambda c: -c.predicted_iou), predicted


def _upscaled(
    predictor: GridPredictor, logits: torch.Tensor, indices: np.ndarray, crop: CropBox
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, mask)`` at the crop's resolution for each kept index, a bounded number at a time."""
    chunk = max(1, UPSCALE_PIXELS // max(1, crop.area))
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        masks = predictor.upscale(logits[part])
        yield from zip(part.tolist(), masks, strict=True)


def _placed(mask: np.ndarray, crop: CropBox, frame_size: tuple[int, int], margin: int) -> Rle | None:
    """The crop's mask placed in the full frame, or None if empty or cut off by the crop's border."""
    height, width = frame_size
    if not mask.any():
        return None
    full = np.zeros((height, width), dtype=bool)
    full[crop.y0 : crop.y1, crop.x0 : crop.x1] = mask
    rle = encode(full)
    if not crop.is_full_frame(height, width) and cut_by_crop(rle, crop, frame_size, margin):
        return None
    return rle


def cut_by_crop(rle: Rle, crop: CropBox, frame_size: tuple[int, int], margin: int) -> bool:
    """True if the mask's box comes within ``margin`` pixels of an edge of ``crop`` that is not
    also an edge of the frame: the crop cut the object off (SAM's test)."""
    height, width = frame_size
    x, y, w, h = bbox(rle)
    box = np.array([x, y, x + w, y + h])
    crop_edges = np.array([crop.x0, crop.y0, crop.x1, crop.y1])
    frame_edges = np.array([0, 0, width, height])
    near_crop = np.abs(box - crop_edges) <= margin
    near_frame = np.abs(box - frame_edges) <= margin
    return bool(np.any(near_crop & ~near_frame))


def _cleaned(candidate: MaskCandidate, min_region_area: int) -> MaskCandidate:
    mask, changed = clean_small_regions(decode(candidate.mask), min_region_area)
    if not changed:
        return candidate
    return MaskCandidate(
        encode(mask), candidate.predicted_iou, candidate.stability, candidate.point, candidate.crop, cleaned=True
    )


def _dedup(
    candidates: Sequence[MaskCandidate], threshold: float, rank: Callable[[MaskCandidate], Any]
) -> list[MaskCandidate]:
    """Greedy mask-IoU NMS over ``candidates``, best first by the sort key ``rank``."""
    order = sorted(range(len(candidates)), key=lambda i: rank(candidates[i]))
    kept = suppress_duplicates([c.mask for c in candidates], order, threshold)
    return [candidates[i] for i in kept]


# --- propagation -----------------------------------------------------------------------------


def propagate_candidates(
    video_model: LoadedModel,
    frames: FrameSource,
    video_id: str,
    candidates: Sequence[MaskCandidate],
    objects_per_session: int = AutoMaskConfig.objects_per_session,
) -> list[Masklet]:
    """Each candidate as a mask prompt on frame 0, tracked to the last frame; object ids 0..n-1.

    Sessions hold ``objects_per_session`` objects each and run one after another, so memory is
    bounded by one session whatever the number of candidates.
    """
    if objects_per_session < 1:
        raise ConfigError(f"objects_per_session must be at least 1, got {objects_per_session}")
    masklets: list[Masklet] = []
    for start in range(0, len(candidates), objects_per_session):
        batch = candidates[start : start + objects_per_session]
        masklets += _propagate_batch(video_model, frames, video_id, batch, first_object_id=start)
        log.info("%s: propagated %d of %d candidates", video_id, len(masklets), len(candidates))
    return masklets


def _propagate_batch(
    video_model: LoadedModel,
    frames: FrameSource,
    video_id: str,
    batch: Sequence[MaskCandidate],
    first_object_id: int,
) -> list[Masklet]:
    session = VideoSession(video_model, frames, mask_only=True)
    object_ids = [first_object_id + i for i in range(len(batch))]
    for object_id, candidate in zip(object_ids, batch, strict=True):
        session.add_mask(FIRST_FRAME, object_id, decode(candidate.mask))
    masks: dict[int, list[Rle]] = {o: [] for o in object_ids}
    stability: dict[int, list[float]] = {o: [] for o in object_ids}
    for result in session.propagate(FIRST_FRAME, "forward"):
        for obj in result.objects:
            masks[obj.object_id].append(obj.rle())
            stability[obj.object_id].append(obj.stability)
    return [
        Masklet(video_id, o, MaskletSource.AUTO, tuple(masks[o]), stability_scores=tuple(stability[o]))
        for o in object_ids
    ]
