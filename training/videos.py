"""The unit training and evaluation read: one video's sampled frames with its masklets.

Training clips, validation and the bootstrap all consume ``TrainingVideo``; where the frames and
masklets come from (the catalog and object store, imported SA-V annotations, synthetic videos
rendered in memory) is decided by whoever builds it, so the training loop never touches storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import BadMaskError
from engine.frame_source import ArrayFrames, EncodedFrames, FrameSource
from engine.masklets import Masklet
from engine.synthetic import SyntheticSpec, SyntheticVideo, render_sampled


@dataclass(frozen=True)
class TrainingVideo:
    """Frame ``i`` of every masklet is frame ``i`` of ``frames`` (the video's sampled frames)."""

    video_id: str
    frames: FrameSource
    masklets: tuple[Masklet, ...]

    def __post_init__(self) -> None:
        if not self.masklets:
            raise BadMaskError(f"training video {self.video_id} has no masklets")
        height, width = self.frames.size
        for masklet in self.masklets:
            if len(masklet.masks) != self.frames.frame_count:
                raise BadMaskError(
                    f"training video {self.video_id}: masklet {masklet.object_id} has "
                    f"{len(masklet.masks)} frames, the video has {self.frames.frame_count} sampled frames"
                )
            first = masklet.masks[0]
            if (first.height, first.width) != (height, width):
                raise BadMaskError(
                    f"training video {self.video_id}: masklet {masklet.object_id} masks are "
                    f"{first.height}x{first.width}, frames are {height}x{width}"
                )

    @property
    def frame_count(self) -> int:
        return self.frames.frame_count


def synthetic_training_video(video: SyntheticVideo) -> TrainingVideo:
    """A rendered synthetic video as training data: its sampled frames (RGB) and ground truth."""
    sampled = video.frames[video.sampled_frames][..., ::-1]  # BGR as rendered -> RGB
    return TrainingVideo(video.video_id, ArrayFrames(sampled.copy()), video.masklets)


def rendered_training_video(video_id: str, seed: int, spec: SyntheticSpec) -> TrainingVideo:
    """A synthetic video rendered straight into training data: its sampled frames only, held as PNG.

    The same pixels and masklets as ``synthetic_training_video(generate_video(...))`` in about half
    the memory, so a bootstrap can hold twice the videos (docs/training.md). Rendering a quarter of
    the frames saves about what encoding them costs: 0.16-0.18 s a video on one core either way.
    """
    frames, masklets = render_sampled(video_id, seed, spec)
    return TrainingVideo(video_id, EncodedFrames([frame[..., ::-1] for frame in frames]), masklets)
