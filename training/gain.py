"""Whether a retraining round changed validation J&F by more than the draw of videos moves it.

A round's headline is two numbers, the champion's validation J&F and the new version's. Their
difference alone cannot say whether the round helped: on a few dozen videos a score moves by
a few hundredths with which objects happen to be there (docs/training.md: +0.003 on 64 objects
from a round on phase data). Both versions are scored on the same videos, so the round's
effect is the per-video difference, and how far its mean can be trusted is what resampling the
videos says. A gain whose interval lies above zero is a measured improvement; one whose
interval holds zero is not, whatever its sign.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class ValidationGain:
    """The mean per-video change of validation J&F and its bootstrap interval."""

    mean: float
    low: float
    high: float
    videos: int
    confidence: float = CONFIDENCE

    @property
    def measured(self) -> bool:
        """True when the whole interval is above zero: the round improved validation."""
        return self.low > 0

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "a measured improvement"
        if self.high < 0:
            return "a measured loss"
        return "within what the draw of videos moves a score: not a measured change"

    def describe(self) -> str:
        return (
            f"gain {self.mean:+.4f} per video ({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f} "
            f"over {self.videos} videos): {self.verdict}"
        )

    def metrics(self) -> dict[str, float | int]:
        """What the registry stores beside the version's scores."""
        return {"val_gain": self.mean, "val_gain_low": self.low, "val_gain_high": self.high, "val_gain_videos": self.videos}


def paired_gain(
    before: Mapping[str, float],
    after: Mapping[str, float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> ValidationGain | None:
    """The change from ``before`` to ``after`` (video id -> J&F), paired by video.

    The interval is a percentile bootstrap over videos: videos are the unit that was drawn, and
    a video's objects share its frames, so they are not independent draws. Videos scored by only
    one side are left out. ``None`` when fewer than two videos are scored by both, for then there
    is no spread to judge by. The seed makes the interval reproducible.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    shared = sorted(video for video in before.keys() & after.keys() if _finite(before[video]) and _finite(after[video]))
    if len(shared) < 2:
        return None
    differences = np.array([after[video] - before[video] for video in shared], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return ValidationGain(float(differences.mean()), float(low), float(high), len(shared), confidence)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and bool(np.isfinite(value))
