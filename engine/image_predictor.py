"""Clicks on one frame become a mask: SAM's interactive image predictor (Phase 1).

The frame is embedded once (:meth:`ImagePredictor.set_frame`, the expensive step); every click
after that only runs the prompt encoder and mask decoder (:meth:`ImagePredictor.predict`), so
an annotator's corrections come back at interactive speed. As in SAM, a prediction returns
low-resolution logits that can be fed back with the next clicks to refine the same mask.

Backed by transformers' ``Sam2Model`` (the image path of SAM 2), ``EdgeTamModel`` (EdgeTAM's,
which takes SAM 2's inputs) or ``SamModel`` (SAM 1), whichever
:func:`engine.model_loading.build_model` loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import BadPromptError, IncompatibleModelError, PredictorStateError
from engine.mask_upsampling import masks_from_logits
from engine.model_loading import LoadedModel
from engine.prompts import check_box, check_frame_image, check_points


@dataclass(frozen=True)
class ImagePrediction:
    """Candidate masks for one prompt, best predicted IoU first.

    ``masks`` is ``(k, height, width)`` bool at the frame's resolution, ``scores`` the model's
    predicted IoU of each, and ``low_res_logits`` ``(k, h, w)`` the raw logits to pass back as
    ``mask_logits`` (one of them) with the next clicks. ``k`` is 3 with ``multimask``, else 1.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray

    @property
    def best_mask(self) -> np.ndarray:
        return self.masks[0]

    @property
    def best_logits(self) -> np.ndarray:
        return self.low_res_logits[0]


@dataclass(frozen=True)
class _Embedding:
    """A frame's image-encoder output, kept for every click on that frame."""

    features: tuple[torch.Tensor, ...]  # SAM 2 and EdgeTAM: three FPN levels; SAM 1: one map
    image: np.ndarray  # the frame: its size, and the guide that fits masks to its edges (engine.mask_upsampling)
    resized: tuple[int, int]  # the frame's size inside the model's square input (SAM 1 pads)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


class ImagePredictor:
    """Interactive single-frame segmentation with a cached frame embedding."""

    def __init__(self, model: LoadedModel) -> None:
        if model.task != "image":
            raise IncompatibleModelError(
                f"{model.name} was loaded for {model.task!r}; build it with task='image' "
                "(or engine.model_loading.image_model_from) for an ImagePredictor"
            )
        self._model = model
        self._embedding: _Embedding | None = None

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the frame set, None before :meth:`set_frame`."""
        return None if self._embedding is None else (self._embedding.height, self._embedding.width)

    @property
    def mask_logits_shape(self) -> tuple[int, int]:
        """The shape ``mask_logits`` must have: the model's low-resolution mask size."""
        side = self._model.image_size // 4
        return side, side

    def set_frame(self, image: np.ndarray) -> None:
        """Embed ``image`` (``(h, w, 3)`` uint8 RGB) once; every later predict uses it."""
        check_frame_image(image)
        with torch.inference_mode(), self._model.device.autocast():
            self._embedding = self._embed(image)

    def predict(
        self,
        points: Sequence[Sequence[float]] | np.ndarray = (),
        labels: Sequence[int] | np.ndarray = (),
        box: Sequence[float] | None = None,
        mask_logits: np.ndarray | None = None,
        multimask: bool = True,
    ) -> ImagePrediction:
        """Masks for clicks ``points`` (``(x, y)`` in frame pixels) with ``labels`` (1 object, 0 not).

        ``box`` is ``(x0, y0, x1, y1)`` in frame pixels; ``mask_logits`` a previous prediction's
        low-resolution logits for the same object, to refine it. ``multimask`` asks for three
        candidates (best for a single ambiguous click) instead of one.
        """
        embedding = self._embedding
        if embedding is None:
            raise PredictorStateError("predict() before set_frame(): embed a frame first")
        size = (embedding.height, embedding.width)
        coords, point_labels = check_points(points, labels, size)
        box_array = check_box(box, size) if box is not None else None
        if len(coords) == 0 and box_array is None:
            raise BadPromptError("no prompt: give at least one click or a box")
        logits_in = self._check_mask_logits(mask_logits)
        with torch.inference_mode(), self._model.device.autocast():
            low_res, scores = self._decode(embedding, coords, point_labels, box_array, logits_in, multimask)
            masks = self._upscale(embedding, low_res)
        order = torch.argsort(scores, descending=True)
        return ImagePrediction(
            masks=masks[order.cpu().numpy()],
            scores=scores[order].float().cpu().numpy(),
            low_res_logits=low_res[order].float().cpu().numpy(),
        )

    # --- model calls, one pair per family -----------------------------------------------

    def _embed(self, image: np.ndarray) -> _Embedding:
        module, device = self._model.module, self._model.device.device
        if self._model.family.sam2_interface:
            pixels = self._model.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
            features = module.get_image_embeddings(pixels.to(device))
            side = self._model.image_size
            return _Embedding(tuple(features), image, (side, side))
        encoded = self._model.processor.image_processor(images=image, return_tensors="pt")
        features = module.get_image_embeddings(encoded["pixel_values"].to(device))
        resized = tuple(int(v) for v in encoded["reshaped_input_sizes"][0])
        return _Embedding((features,), image, (resized[0], resized[1]))

    def _decode(
        self,
        embedding: _Embedding,
        coords: np.ndarray,
        labels: np.ndarray,
        box: np.ndarray | None,
        mask_logits: torch.Tensor | None,
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits ``(k, h, w)`` and predicted IoU ``(k,)`` for one prompt."""
        device = self._model.device.device
        scale_x, scale_y = self._coordinate_scale(embedding)
        points_t = labels_t = boxes_t = None
        if len(coords):
            scaled = coords * np.array([scale_x, scale_y], dtype=np.float32)
            points_t = torch.from_numpy(scaled).to(device).view(1, 1, -1, 2)
            labels_t = torch.from_numpy(labels).to(device).view(1, 1, -1)
        if box is not None:
            scaled_box = box * np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
            boxes_t = torch.from_numpy(scaled_box).to(device).view(1, 1, 4)
        masks_t = None if mask_logits is None else mask_logits.to(device).view(1, 1, *mask_logits.shape[-2:])
        sam2 = self._model.family.sam2_interface
        out = self._model.module(
            image_embeddings=list(embedding.features) if sam2 else embedding.features[0],
            input_points=points_t,
            input_labels=labels_t,
            input_boxes=boxes_t,
            input_masks=masks_t,
            multimask_output=multimask,
        )
        return out.pred_masks[0, 0], out.iou_scores[0, 0]

    def _coordinate_scale(self, embedding: _Embedding) -> tuple[float, float]:
        """Frame pixels to model-input pixels.

        SAM 2 and EdgeTAM squash the frame into their square input, so x and y scale apart; SAM 1
        resizes the longest side and pads, so both scale alike (``resized`` holds the unpadded size).
        """
        resized_h, resized_w = embedding.resized
        return resized_w / embedding.width, resized_h / embedding.height

    def _upscale(self, embedding: _Embedding, low_res: torch.Tensor) -> np.ndarray:
        """Low-resolution logits to boolean masks at the frame's resolution."""
        image_processor = self._model.processor.image_processor
        original = [[embedding.height, embedding.width]]
        logits = [low_res[None].float()]
        if self._model.family.sam2_interface:
            upscaled = image_processor.post_process_masks(logits, original, binarize=False)[0][0]
        else:
            upscaled = image_processor.post_process_masks(logits, original, [list(embedding.resized)], binarize=False)[0][0]
        model = self._model
        return masks_from_logits(upscaled.cpu().numpy(), embedding.image, model.mask_grid, model.mask_upsampling)

    def _check_mask_logits(self, mask_logits: np.ndarray | None) -> torch.Tensor | None:
        if mask_logits is None:
            return None
        array = np.asarray(mask_logits)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.shape != self.mask_logits_shape:
            raise BadPromptError(
                f"mask_logits must have shape {self.mask_logits_shape} (a previous prediction's "
                f"low_res_logits[i]), got {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
            raise BadPromptError("mask_logits must be finite floating-point logits")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
