"""Whether a retraining round changed validation J&F by more than the draw of videos moves it.

A round's headline is two numbers, the champion's validation J&F and the new version's. Their
difference alone cannot say whether the round helped: on a few dozen videos a score moves by
a few hundredths with which objects happen to be there (docs/training.md: +0.003 on 64 objects
from a round on phase data). Both versions are scored on the same videos, so the round's
effect can be read video by video, and how far it can be trusted is how much the per-video
changes disagree. A gain whose interval lies above zero is a measured improvement; one whose
interval holds zero is not, whatever its sign.

The unit is the video, not the object: a video's objects share its frames and its difficulty,
so they are not independent draws. The estimate is the change of pooled J&F (each video's change
weighted by its objects, as the headline pools objects), and its interval is the cluster-robust
Student t interval over videos, which keeps its coverage down to a handful of videos (simulated
rounds that changed nothing: about 5 % called measured from 2 to 32 videos); a percentile
bootstrap over so few videos calls such rounds measured up to half the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
GAIN_KEYS = ("val_gain", "val_gain_low", "val_gain_high", "val_gain_videos")


def verdict(low: float, high: float) -> str:
    """What an interval says about a change: one wording for the round's log, report and demo."""
    if low > 0:
        return "a measured rise"
    if high < 0:
        return "a measured fall"
    return "within noise: not a measured change"


@dataclass(frozen=True)
class ValidationGain:
    """The change of pooled validation J&F from champion to new version, and its interval."""

    mean: float
    low: float
    high: float
    videos: int
    confidence: float = CONFIDENCE

    @property
    def improved(self) -> bool:
        """True when the whole interval is above zero: the round measurably improved validation."""
        return self.low > 0

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def describe(self) -> str:
        return (
            f"gain {self.mean:+.4f} ({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f} "
            f"over {self.videos} videos): {self.verdict}"
        )

    def metrics(self) -> dict[str, float | int]:
        """What the registry stores beside the version's scores (:data:`GAIN_KEYS`)."""
        return dict(zip(GAIN_KEYS, (self.mean, self.low, self.high, self.videos), strict=True))


def paired_gain(
    before: Mapping[str, float | None],
    after: Mapping[str, float | None],
    objects: Mapping[str, int] | None = None,
    *,
    confidence: float = CONFIDENCE,
) -> ValidationGain | None:
    """The change from ``before`` to ``after`` (video id -> J&F), paired by video.

    ``objects`` (video id -> objects scored) weights each video as the pooled headline does;
    without it every video weighs the same. Videos scored by only one side, or without a score
    (None or NaN, as a video with no scorable object is recorded), are left out. ``None`` when
    fewer than two videos remain, for one video gives no spread to judge by.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    shared = sorted(video for video in before.keys() & after.keys() if _finite(before[video]) and _finite(after[video]))
    if objects is not None:
        shared = [video for video in shared if objects.get(video, 0) > 0]
    if len(shared) < 2:
        return None
    differences = np.array([after[video] - before[video] for video in shared], dtype=np.float64)  # type: ignore[operator]
    weights = np.array([objects[video] if objects is not None else 1 for video in shared], dtype=np.float64)
    weights /= weights.sum()
    n = len(shared)
    mean = float(np.sum(weights * differences))
    # Cluster-robust standard error of a weighted mean, with the small-sample factor n / (n - 1).
    spread = math.sqrt(n / (n - 1) * float(np.sum(weights**2 * (differences - mean) ** 2)))
    # Imported here: scipy.stats takes most of a second to import, and the flows and the demo that
    # import this module for gain_text never compute an interval themselves.
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * spread
    return ValidationGain(mean, mean - half, mean + half, n, confidence)


def measured_rise(recorded: Mapping[str, Any]) -> bool:
    """Whether a recorded gain (:data:`GAIN_KEYS`) is a measured rise: its whole interval above zero.

    A round without an interval (fewer than two validation videos) never is.
    """
    low = recorded.get("val_gain_low")
    return _finite(low) and low > 0


def gain_text(recorded: Mapping[str, Any]) -> str:
    """A recorded gain (:data:`GAIN_KEYS`, as a version's metrics or a round's report hold it) in words; "-" if none."""
    values = [recorded.get(key) for key in GAIN_KEYS]
    if not all(_finite(value) for value in values):
        return "-"
    gain, low, high, videos = values
    return f"{gain:+.3f} ({low:+.3f} to {high:+.3f} over {videos} videos): {verdict(low, high)}"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
