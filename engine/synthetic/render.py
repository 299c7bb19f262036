"""Rendering one frame of a scene: pixels and the per-pixel label map from one rasterisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.synthetic.scene import Scene, SceneObject

BACKGROUND = -1  # label of background pixels in a label map


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One source frame of a scene: its pixels and the label map they were painted with."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    labels: np.ndarray  # (H, W) int16: masklet id of the innermost thing seen at each pixel, -1 background


def render_frame(scene: Scene, index: int, hidden: frozenset[int] = frozenset()) -> RenderedFrame:
    """Source frame ``index`` of ``scene``, pixels and labels from the same rasterisation.

    ``hidden`` lists object ids to leave out (with their parts); the rest of the frame, noise
    and lighting included, is unchanged, which is what makes occlusion testable.
    """
    image = _camera_view(scene, index)
    labels = np.full(image.shape[:2], BACKGROUND, np.int16)
    for obj in scene.objects:
        if obj.object_id not in hidden:
            _paint(image, labels, obj, index)
    image = cv2.transform(image, scene.lighting[index])
    return RenderedFrame(_add_noise(image, scene, index), labels)


def _camera_view(scene: Scene, index: int) -> np.ndarray:
    x, y, zoom = scene.camera[index]
    view_to_canvas = np.array([[zoom, 0.0, x], [0.0, zoom, y]], np.float32)
    view = cv2.warpAffine(
        scene.background,
        view_to_canvas,
        (scene.spec.width, scene.spec.height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return cv2.cvtColor(view, cv2.COLOR_BGRA2BGR)


def _paint(image: np.ndarray, labels: np.ndarray, obj: SceneObject, index: int) -> None:
    """Draw ``obj`` over ``image`` and claim its pixels in ``labels``, inside its bounding box only."""
    x, y, scale, angle = (float(v) for v in obj.track[index])
    sprite = obj.sprite
    centre = (sprite.labels.shape[0] - 1) / 2.0
    extent = sprite.radius * scale + 2.0
    height, width = labels.shape
    x0, x1 = max(0, math.floor(x - extent)), min(width, math.ceil(x + extent) + 1)
    y0, y1 = max(0, math.floor(y - extent)), min(height, math.ceil(y + extent) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    sprite_to_box = cv2.getRotationMatrix2D((centre, centre), angle, scale)
    sprite_to_box[:, 2] += (x - centre - x0, y - centre - y0)
    size = (x1 - x0, y1 - y0)
    # Same matrix, same pixel grid: the nearest-neighbour labels decide which pixels the
    # interpolated texture may paint, so the mask and the pixels cannot disagree.
    texture = cv2.warpAffine(
        sprite.texture, sprite_to_box, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    drawn = cv2.warpAffine(sprite.labels, sprite_to_box, size, flags=cv2.INTER_NEAREST, borderValue=0)
    cv2.copyTo(texture, drawn, image[y0:y1, x0:x1])  # in place: copies where drawn is non-zero
    box_labels = labels[y0:y1, x0:x1]
    np.putmask(box_labels, drawn > 0, obj.object_id)
    if obj.part_id is not None:
        np.putmask(box_labels, drawn == 2, obj.part_id)


def _add_noise(image: np.ndarray, scene: Scene, index: int) -> np.ndarray:
    # A window of one shared noise tile per frame: as random to the eye as fresh noise, far cheaper.
    height, width = image.shape[:2]
    oy, ox = (int(v) for v in scene.noise_offsets[index])
    positive = scene.noise[0, oy : oy + height, ox : ox + width]
    negative = scene.noise[1, oy : oy + height, ox : ox + width]
    return cv2.subtract(cv2.add(image, positive), negative)
