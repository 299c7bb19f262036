"""SyntheticSpec: what a synthetic video is made of (size, length, rates, objects, difficulty)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.video import sample_indices

# A late entry, an exit, a hidden stretch, a return and an occlusion need this many sampled frames.
MIN_SAMPLES_FOR_EVENTS = 8


@dataclass(frozen=True)
class SyntheticSpec:
    """What to synthesise; the defaults make a 4 s, 320x240 clip that renders fast on a small CPU."""

    width: int = 320
    height: int = 240
    source_fps: float = 24.0
    source_frames: int = 96
    # SA-V's annotation rate: ground truth is given on the frames this rate samples, no others.
    sample_fps: float = 6.0
    objects: int = 3
    # Objects that carry a distinctly coloured part with its own masklet (SA-V's person and hands).
    parts: int = 1
    # Guarantee a late entry, an exit and return, and an occlusion in every video (tests assert them).
    force_events: bool = True
    # Largest relative change of brightness over a video (lighting drift).
    lighting_drift: float = 0.2
    # Standard deviation of the sensor noise, in grey levels.
    noise_sigma: float = 2.5

    def __post_init__(self) -> None:
        problems = []
        if self.width < 32 or self.height < 32:
            problems.append(f"frames must be at least 32x32 pixels, got {self.width}x{self.height}")
        if self.source_frames < 1:
            problems.append(f"need at least one source frame, got {self.source_frames}")
        if not (self.source_fps > 0 and self.sample_fps > 0):
            problems.append(f"fps must be positive, got source {self.source_fps}, sample {self.sample_fps}")
        if self.objects < 1:
            problems.append(f"need at least one object, got {self.objects}")
        elif not 0 <= self.parts <= self.objects:
            problems.append(f"parts must be 0 to the number of objects ({self.objects}), got {self.parts}")
        if self.lighting_drift < 0 or self.noise_sigma < 0:
            problems.append("lighting_drift and noise_sigma must not be negative")
        if not problems and self.force_events and len(self.sampled_frames) < MIN_SAMPLES_FOR_EVENTS:
            needed = math.ceil((MIN_SAMPLES_FOR_EVENTS - 1) * self.source_fps / self.sample_fps) + 1
            problems.append(
                f"{self.source_frames} source frames give {len(self.sampled_frames)} sampled frames; the "
                f"forced events need {MIN_SAMPLES_FOR_EVENTS} (use at least {needed} frames, "
                "or force_events=False)"
            )
        if problems:
            raise ConfigError("synthetic video spec: " + "; ".join(problems))

    @property
    def sampled_frames(self) -> list[int]:
        """Source frames that carry ground truth (the engine's one sampling rule)."""
        return sample_indices(self.source_frames, self.source_fps, self.sample_fps)

    @property
    def masklet_count(self) -> int:
        return self.objects + self.parts

    @property
    def duration_s(self) -> float:
        return self.source_frames / self.source_fps


DEFAULT_SPEC = SyntheticSpec()
