"""training.gain: telling a round's gain from the draw of validation videos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.gain import paired_gain


def _scores(values) -> dict[str, float]:
    return {f"video-{i:03d}": float(v) for i, v in enumerate(values)}


def test_a_consistent_gain_on_every_video_is_measured() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0.5, 0.9, size=40)
    after = before + 0.02 + rng.normal(0, 0.01, size=40)
    gain = paired_gain(_scores(before), _scores(after))
    assert gain is not None and gain.videos == 40
    assert gain.mean == pytest.approx(float(np.mean(after - before)))
    assert 0 < gain.low < gain.mean < gain.high
    assert gain.measured and "a measured improvement" in gain.describe()
    assert gain.metrics() == {"val_gain": gain.mean, "val_gain_low": gain.low, "val_gain_high": gain.high, "val_gain_videos": 40}


def test_a_small_mean_change_amid_large_per_video_swings_is_not_measured() -> None:
    # The situation of a round on 16 videos that moved J&F by +0.003: videos swing both ways.
    rng = np.random.default_rng(2)
    before = rng.uniform(0.4, 0.9, size=16)
    swings = rng.normal(0, 0.05, size=16)
    after = before + swings - swings.mean() + 0.003
    gain = paired_gain(_scores(before), _scores(after))
    assert gain is not None and gain.mean == pytest.approx(0.003)
    assert gain.low < 0 < gain.high and not gain.measured
    assert "not a measured change" in gain.verdict


def test_a_consistent_loss_is_called_a_loss() -> None:
    before = _scores([0.8, 0.7, 0.9, 0.6, 0.75])
    after = {video: score - 0.05 for video, score in before.items()}
    gain = paired_gain(before, after)
    assert gain is not None and gain.high < 0 and not gain.measured and gain.verdict == "a measured loss"


def test_only_videos_scored_by_both_sides_are_paired() -> None:
    before = {"a": 0.5, "b": 0.6, "c": 0.7, "gone": 0.1}
    after = {"a": 0.6, "b": 0.7, "c": 0.8, "new": 0.9, "unscored": math.nan}
    gain = paired_gain(before, after)
    assert gain is not None and gain.videos == 3 and gain.mean == pytest.approx(0.1)
    # fewer than two videos in common: no spread to judge by
    assert paired_gain({"a": 0.5}, {"a": 0.9, "b": 0.4}) is None
    assert paired_gain({}, after) is None


def test_the_interval_is_reproducible_and_widens_with_confidence() -> None:
    rng = np.random.default_rng(3)
    before, after = _scores(rng.uniform(size=30)), _scores(rng.uniform(size=30))
    assert paired_gain(before, after) == paired_gain(before, after)
    narrow, wide = paired_gain(before, after, confidence=0.5), paired_gain(before, after, confidence=0.99)
    assert wide.low < narrow.low <= narrow.high < wide.high
    with pytest.raises(ValueError, match="confidence"):
        paired_gain(before, after, confidence=1.0)
    with pytest.raises(ValueError, match="resamples"):
        paired_gain(before, after, resamples=0)
