"""One object from one click: SAM 2's basic interaction, tracked through the whole video.

A positive click on any frame makes that frame the object's conditioning frame; the video
session then tracks the object forward to the last frame and backward to the first, so the
masklet has a mask on every sampled frame (empty where the model judges the object absent).
It counts as a manual masklet: a person chose the object, the model drew it.
"""

from __future__ import annotations

from engine.frame_source import FrameSource
from engine.masklets import Masklet, MaskletSource
from engine.masks import Rle
from engine.model_loading import LoadedModel
from engine.prompts import check_frame_index, check_points
from engine.video_session import VideoSession


def check_click(frames: FrameSource, frame: int, point: tuple[float, float]) -> int:
    """The click's frame index, once the frame exists and the point lies on it (else BadPromptError).

    Cheap, so callers can refuse a bad click before loading a model.
    """
    index = check_frame_index(frame, frames.frame_count)
    check_points([point], [1], frames.size)
    return index


def track_click(
    video_model: LoadedModel,
    frames: FrameSource,
    video_id: str,
    frame: int,
    point: tuple[float, float],
    *,
    object_id: int = 0,
) -> Masklet:
    """The masklet of the object under ``point`` (``(x, y)`` in pixels) on ``frame``, on every frame.

    A click outside the frame or a frame out of range raises BadPromptError before the model runs.
    """
    frame = check_click(frames, frame, point)
    session = VideoSession(video_model, frames)
    session.add_points(frame, object_id, [point], [1])
    masks: dict[int, Rle] = {}
    stability: dict[int, float] = {}
    for result in session.propagate(frame, "both"):
        obj = result.object(object_id)
        masks[result.frame] = obj.rle()
        stability[result.frame] = obj.stability
    order = range(frames.frame_count)
    return Masklet(
        video_id,
        object_id,
        MaskletSource.MANUAL,
        tuple(masks[i] for i in order),
        stability_scores=tuple(stability[i] for i in order),
    )
