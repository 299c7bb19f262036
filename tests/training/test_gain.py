"""training.gain: telling a round's gain from the draw of validation videos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.gain import GAIN_KEYS, gain_text, measured_rise, paired_gain, verdict


def _scores(values) -> dict[str, float]:
    return {f"video-{i:03d}": float(v) for i, v in enumerate(values)}


def test_a_consistent_gain_on_every_video_is_a_measured_rise() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0.5, 0.9, size=40)
    after = before + 0.02 + rng.normal(0, 0.01, size=40)
    gain = paired_gain(_scores(before), _scores(after))
    assert gain is not None and gain.videos == 40
    assert gain.mean == pytest.approx(float(np.mean(after - before)))
    assert 0 < gain.low < gain.mean < gain.high
    assert gain.improved and gain.describe().endswith("over 40 videos): a measured rise")
    assert gain.metrics() == dict(zip(GAIN_KEYS, (gain.mean, gain.low, gain.high, 40)))


def test_a_small_mean_change_amid_large_per_video_swings_is_within_noise() -> None:
    # The situation of a round on 16 videos that moved J&F by +0.003: videos swing both ways.
    rng = np.random.default_rng(2)
    before = rng.uniform(0.4, 0.9, size=16)
    swings = rng.normal(0, 0.05, size=16)
    after = before + swings - swings.mean() + 0.003
    gain = paired_gain(_scores(before), _scores(after))
    assert gain is not None and gain.mean == pytest.approx(0.003)
    assert gain.low < 0 < gain.high and not gain.improved
    assert gain.verdict == "within noise: not a measured change"


def test_a_consistent_loss_is_a_measured_fall() -> None:
    before = _scores([0.8, 0.7, 0.9, 0.6, 0.75])
    after = {video: score - 0.05 + 0.001 * i for i, (video, score) in enumerate(before.items())}
    gain = paired_gain(before, after)
    assert gain is not None and gain.high < 0 and not gain.improved and gain.verdict == "a measured fall"


def test_two_or_three_videos_moving_the_same_tiny_way_are_not_called_measured() -> None:
    """With so few videos the spread itself is uncertain: the t interval widens accordingly."""
    assert not paired_gain({"a": 0.5, "b": 0.6}, {"a": 0.501, "b": 0.6005}).improved
    assert not paired_gain({"a": 0.5, "b": 0.6, "c": 0.7}, {"a": 0.502, "b": 0.6005, "c": 0.701}).improved


def test_rounds_that_changed_nothing_are_called_measured_about_as_often_as_the_confidence_allows() -> None:
    rng = np.random.default_rng(4)
    for videos in (2, 4, 16):
        calls = 0
        for _ in range(1000):
            before = rng.uniform(0.5, 0.9, size=videos)
            gain = paired_gain(_scores(before), _scores(before + rng.normal(0, 0.03, size=videos)))
            calls += gain.low > 0 or gain.high < 0
        assert 0.025 < calls / 1000 < 0.08, (videos, calls)


def test_videos_weigh_by_their_objects_as_the_pooled_headline_does() -> None:
    # One object gained 0.10, three objects of another video lost 0.05 each: pooled J&F fell.
    before, after = {"a": 0.5, "b": 0.8}, {"a": 0.6, "b": 0.75}
    pooled = paired_gain(before, after, {"a": 1, "b": 3})
    assert pooled.mean == pytest.approx((0.10 - 3 * 0.05) / 4)
    assert paired_gain(before, after).mean == pytest.approx((0.10 - 0.05) / 2)  # unweighted without counts
    # a video with no objects scored carries no weight, and is not a pair
    assert paired_gain({**before, "c": 0.1}, {**after, "c": 0.9}, {"a": 1, "b": 3, "c": 0}) == pooled


def test_only_videos_scored_by_both_sides_are_paired() -> None:
    before = {"a": 0.5, "b": 0.6, "c": 0.7, "gone": 0.1, "nan": math.nan, "none": None}
    after = {"a": 0.6, "b": 0.71, "c": 0.79, "new": 0.9, "nan": 0.5, "none": 0.5}
    gain = paired_gain(before, after)
    assert gain is not None and gain.videos == 3 and gain.mean == pytest.approx(0.1)
    # fewer than two videos in common: no spread to judge by
    assert paired_gain({"a": 0.5}, {"a": 0.9, "b": 0.4}) is None
    assert paired_gain({}, after) is None
    with pytest.raises(ValueError, match="confidence"):
        paired_gain(before, after, confidence=1.0)


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    rng = np.random.default_rng(3)
    before, after = _scores(rng.uniform(size=30)), _scores(rng.uniform(size=30))
    narrow, wide = paired_gain(before, after, confidence=0.5), paired_gain(before, after, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high and narrow.mean == wide.mean


def test_a_recorded_gain_reads_the_same_in_the_log_the_report_and_the_demo() -> None:
    recorded = {"val_gain": 0.012, "val_gain_low": 0.004, "val_gain_high": 0.02, "val_gain_videos": 48}
    assert gain_text(recorded) == "+0.012 (+0.004 to +0.020 over 48 videos): a measured rise"
    assert gain_text({**recorded, "val_gain_low": -0.01}).endswith("within noise: not a measured change")
    assert verdict(-0.05, -0.01) == "a measured fall"
    # none recorded (one validation video, or a version from before gains were measured)
    assert gain_text({**recorded, "val_gain_videos": None}) == gain_text({}) == "-"


def test_a_measured_rise_is_an_interval_wholly_above_zero() -> None:
    assert measured_rise({"val_gain_low": 0.001})
    assert not measured_rise({"val_gain_low": 0.0}) and not measured_rise({"val_gain_low": -0.02})
    assert not measured_rise({"val_gain_low": None}) and not measured_rise({"val_gain_low": math.nan}) and not measured_rise({})
