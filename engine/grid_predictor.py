"""Many one-click prompts on one image at once: the batched decoding automatic masks need.

:class:`engine.image_predictor.ImagePredictor` answers one prompt per call, which is what an
annotator's clicks are. Automatic mask generation clicks a whole grid (1,024 points on the full
frame alone), so here the image is embedded once and the points go through SAM 2's prompt
encoder and mask decoder as one batch of single-click prompts (transformers' "point batch").

Outputs stay at the model's low resolution until a mask is kept: three candidates for each of
64 points at 1080p would be 1.6 GB of logits, while the low-resolution ones are a few MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import IncompatibleModelError, PredictorStateError
from engine.mask_upsampling import masks_from_logits
from engine.model_loading import LoadedModel
from engine.prompts import check_frame_image, check_points


@dataclass(frozen=True)
class PointMasks:
    """Candidate masks of single-click prompts: ``k`` per point (3 with multimask, else 1)."""

    low_res_logits: torch.Tensor  # (points, k, side / 4, side / 4) float32, on the CPU
    scores: np.ndarray  # (points, k) the model's predicted IoU


class GridPredictor:
    """Single-click prompts in batches on one embedded image (SAM 2 image models only)."""

    def __init__(self, model: LoadedModel) -> None:
        if not model.family.sam2_interface or model.task != "image":
            raise IncompatibleModelError(
                f"{model.name} ({model.family}, {model.task}) cannot generate masks from point grids; "
                "use a SAM 2 image model (engine.model_loading.image_model_from(video_model))"
            )
        self._model = model
        self._features: list[torch.Tensor] | None = None
        # The image set: its size for the prompts, and the guide of mask upsampling (engine.mask_upsampling).
        self._image: np.ndarray | None = None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the image set, None before :meth:`set_image`."""
        return None if self._image is None else (int(self._image.shape[0]), int(self._image.shape[1]))

    def set_image(self, image: np.ndarray) -> None:
        """Embed ``image`` (``(h, w, 3)`` uint8 RGB) once for every later batch of points."""
        check_frame_image(image)
        processor = self._model.processor.image_processor
        with torch.inference_mode(), self._model.device.autocast():
            pixels = processor(images=image, return_tensors="pt")["pixel_values"].to(self._model.device.device)
            self._features = list(self._model.module.get_image_embeddings(pixels))
        self._image = image

    def predict_points(self, points: np.ndarray, *, multimask: bool = True) -> PointMasks:
        """Masks for each point ``(x, y)`` (image pixels) as a prompt of its own, one positive click."""
        size = self.image_size
        if self._features is None or size is None:
            raise PredictorStateError("predict_points() before set_image(): embed an image first")
        coords, _ = check_points(points, np.ones(len(points), dtype=np.int64), size)
        height, width = size
        side = self._model.image_size
        # SAM 2 squashes the image into its square input, so x and y scale apart.
        scaled = coords * np.array([side / width, side / height], dtype=np.float32)
        device = self._model.device.device
        input_points = torch.from_numpy(scaled).to(device).view(1, -1, 1, 2)
        input_labels = torch.ones((1, len(coords), 1), dtype=torch.int64, device=device)
        with torch.inference_mode(), self._model.device.autocast():
            out = self._model.module(
                image_embeddings=self._features,
                input_points=input_points,
                input_labels=input_labels,
                multimask_output=multimask,
            )
        return PointMasks(out.pred_masks[0].float().cpu(), out.iou_scores[0].float().cpu().numpy())

    def upscale(self, low_res_logits: torch.Tensor) -> np.ndarray:
        """Low-resolution logits ``(m, h, w)`` to boolean masks ``(m, height, width)`` of the image."""
        image = self._image
        if image is None:
            raise PredictorStateError("upscale() before set_image(): embed an image first")
        processor = self._model.processor.image_processor
        logits = processor.post_process_masks([low_res_logits[None].float()], [list(image.shape[:2])], binarize=False)[0][0]
        model = self._model
        return masks_from_logits(logits.cpu().numpy(), image, model.mask_grid, model.mask_upsampling)
