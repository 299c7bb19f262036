"""Masklets: one object's masks over the sampled frames of one video.

A masklet holds exactly one mask per sampled frame (an empty mask where the object is not
visible, which is a valid answer), so frame ``i`` of a masklet is frame ``i`` of its video's
sampled frames. The statistics SA-V publishes per masklet (size, visibility changes, first
appearance) are derived here, once, for exports, metrics and dashboards alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from engine.errors import BadMaskError
from engine.masks import Rle, area

SMALL_AREA = 32**2
MEDIUM_AREA = 96**2


class MaskletSource(StrEnum):
    """Where a masklet came from. Ground truth is never mixed with annotated masklets."""

    GROUND_TRUTH = "ground_truth"
    MANUAL = "manual"
    AUTO = "auto"


class SizeBucket(StrEnum):
    """SA-V's size buckets of a masklet's mean visible area: <32², <96², the rest."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


@dataclass(frozen=True)
class Masklet:
    """One object's masks over a video, one per sampled frame."""

    video_id: str
    object_id: int
    source: MaskletSource
    masks: tuple[Rle, ...]
    edited_frame_count: int = 0
    stability_scores: tuple[float, ...] | None = None
    areas: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.masks:
            raise BadMaskError(f"masklet {self.video_id}/{self.object_id} has no frames")
        height, width = self.masks[0].height, self.masks[0].width
        for index, rle in enumerate(self.masks):
            if (rle.height, rle.width) != (height, width):
                raise BadMaskError(
                    f"masklet {self.video_id}/{self.object_id}: frame {index} mask is "
                    f"{rle.height}x{rle.width}, frame 0 is {height}x{width}"
                )
        if self.stability_scores is not None and len(self.stability_scores) != len(self.masks):
            raise BadMaskError(
                f"masklet {self.video_id}/{self.object_id}: {len(self.stability_scores)} stability "
                f"scores for {len(self.masks)} frames"
            )
        if not 0 <= self.edited_frame_count <= len(self.masks):
            raise BadMaskError(
                f"masklet {self.video_id}/{self.object_id}: edited_frame_count "
                f"{self.edited_frame_count} outside 0..{len(self.masks)}"
            )
        if not self.areas:
            # Derived once: every statistic below reads areas, and RLE area is not free.
            object.__setattr__(self, "areas", tuple(area(rle) for rle in self.masks))

    @property
    def frame_count(self) -> int:
        return len(self.masks)

    @property
    def height(self) -> int:
        return self.masks[0].height

    @property
    def width(self) -> int:
        return self.masks[0].width

    @property
    def visible(self) -> tuple[bool, ...]:
        return tuple(a > 0 for a in self.areas)

    @property
    def first_appeared_frame(self) -> int | None:
        """Index of the first sampled frame where the object is visible (None: never)."""
        return next((i for i, a in enumerate(self.areas) if a > 0), None)

    @property
    def visibility_changes(self) -> int:
        """How often visibility flips after the first appearance (SA-V's definition)."""
        first = self.first_appeared_frame
        if first is None:
            return 0
        flags = self.visible[first:]
        return sum(1 for a, b in zip(flags, flags[1:]) if a != b)

    @property
    def size_abs(self) -> float:
        """Mean mask area in pixels over the frames where the object is visible."""
        visible = [a for a in self.areas if a > 0]
        return sum(visible) / len(visible) if visible else 0.0

    @property
    def size_rel(self) -> float:
        return self.size_abs / float(self.height * self.width)

    @property
    def size_bucket(self) -> SizeBucket:
        return size_bucket(self.size_abs)


def size_bucket(mean_area: float) -> SizeBucket:
    """SA-V's bucket of a mean visible area."""
    if mean_area < SMALL_AREA:
        return SizeBucket.SMALL
    if mean_area < MEDIUM_AREA:
        return SizeBucket.MEDIUM
    return SizeBucket.LARGE


def check_same_frames(masklets: Sequence[Masklet]) -> None:
    """Masklets of one video must agree on frame count and frame size."""
    if not masklets:
        return
    first = masklets[0]
    for m in masklets[1:]:
        if m.video_id != first.video_id:
            raise BadMaskError(f"masklets of different videos mixed: {first.video_id} and {m.video_id}")
        if (m.frame_count, m.height, m.width) != (first.frame_count, first.height, first.width):
            raise BadMaskError(
                f"video {first.video_id}: masklet {m.object_id} has {m.frame_count} frames of "
                f"{m.height}x{m.width}, masklet {first.object_id} has {first.frame_count} of "
                f"{first.height}x{first.width}"
            )
