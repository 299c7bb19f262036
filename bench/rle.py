"""Mask wrapper overhead and J&F speed at 720p.

1. RLE encode + decode of realistic 720p masks through ``engine.masks`` against pycocotools
   called directly on the same masks, interleaved in the same run. Target: ours within 1.2x.
2. J&F of one 720p frame pair with ``engine.jf.score_frame`` against the textbook whole-frame
   computation (boundary maps and disk dilation over the full frame, as the DAVIS/SA-V
   toolkits do), checking that both give the same numbers.

    python bench/rle.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as coco_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import median, timed  # noqa: E402
from engine.jf import boundary_map, boundary_radius, score_frame  # noqa: E402
from engine.masks import decode, encode  # noqa: E402

H, W = 720, 1280
TARGET = 1.2
CALLS_PER_SAMPLE = 5  # calls timed together, so the timer's resolution does not matter


def ellipse(center: tuple[int, int], axes: tuple[int, int], angle: float) -> np.ndarray:
    canvas = np.zeros((H, W), np.uint8)
    cv2.ellipse(canvas, center, axes, angle, 0, 360, 1, thickness=-1)
    return canvas.view(bool)


def ragged(seed: int) -> np.ndarray:
    """A hand-drawn-looking outline: a polygon of 400 jittered points round a centre."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    radius = 180 + 40 * np.sin(3 * angles) + rng.normal(0, 4, angles.size)
    points = np.stack([640 + radius * np.cos(angles) * 1.6, 360 + radius * np.sin(angles)], axis=1)
    canvas = np.zeros((H, W), np.uint8)
    cv2.fillPoly(canvas, [points.round().astype(np.int32)], 1)
    return canvas.view(bool)


def sample_masks() -> dict[str, np.ndarray]:
    blobs = ellipse((300, 200), (80, 50), 20) | ellipse((900, 500), (150, 90), -35) | ellipse((640, 360), (30, 30), 0)
    return {
        "ellipse": ellipse((640, 360), (260, 150), 30),
        "3 blobs": blobs,
        "ragged": ragged(0),
        "small": ellipse((1100, 100), (12, 20), 0),
        "empty": np.zeros((H, W), bool),
        "full": np.ones((H, W), bool),
    }


def ours(mask: np.ndarray) -> None:
    decode(encode(mask))


def direct(mask: np.ndarray) -> None:
    # The cheapest correct direct call: pycocotools needs column-major uint8.
    coco_mask.decode(coco_mask.encode(np.asfortranarray(mask.view(np.uint8))))


def sample(func: Callable[[np.ndarray], None], mask: np.ndarray) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_SAMPLE):
        func(mask)
    return (time.perf_counter() - start) / CALLS_PER_SAMPLE


def bench_rle(repeats: int) -> float:
    masks = sample_masks()
    times: dict[str, dict[str, list[float]]] = {name: {"ours": [], "direct": []} for name in masks}
    for repeat in range(repeats):
        for name, mask in masks.items():
            # Alternate who goes first so caches and clock ramps favour neither.
            order = (("ours", ours), ("direct", direct)) if repeat % 2 else (("direct", direct), ("ours", ours))
            for label, func in order:
                times[name][label].append(sample(func, mask))
    print(f"RLE encode+decode, 720p, median of {repeats} x {CALLS_PER_SAMPLE} calls")
    print(f"{'mask':<10} {'ours us':>9} {'pycocotools us':>15} {'ratio':>7}")
    total_ours = total_direct = 0.0
    for name, by_label in times.items():
        t_ours, t_direct = median(by_label["ours"]), median(by_label["direct"])
        total_ours += t_ours
        total_direct += t_direct
        print(f"{name:<10} {t_ours * 1e6:>9.0f} {t_direct * 1e6:>15.0f} {t_ours / t_direct:>7.3f}")
    return total_ours / total_direct


def whole_frame_jf(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """The textbook computation: everything over the whole frame."""
    union = np.count_nonzero(pred | gt)
    j = 1.0 if union == 0 else np.count_nonzero(pred & gt) / union
    radius = boundary_radius(H, W)
    offsets = np.arange(-radius, radius + 1)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)
    pb, gb = boundary_map(pred), boundary_map(gt)
    pred_near_gt = np.count_nonzero(pb & cv2.dilate(gb.view(np.uint8), disk).view(bool))
    gt_near_pred = np.count_nonzero(gb & cv2.dilate(pb.view(np.uint8), disk).view(bool))
    precision, recall = pred_near_gt / np.count_nonzero(pb), gt_near_pred / np.count_nonzero(gb)
    return j, 2 * precision * recall / (precision + recall)


def bench_jf(repeats: int) -> tuple[float, float]:
    gt = ragged(1)
    pred = np.roll(ragged(2), (3, -5), axis=(0, 1))  # a slightly different drawing, a bit off
    score = score_frame(pred, gt)
    j, f = whole_frame_jf(pred, gt)
    assert math.isclose(score.j, j) and math.isclose(score.f, f), (score, j, f)
    ours_t, whole_t = [], []
    for _ in range(repeats):
        ours_t.append(timed(lambda: score_frame(pred, gt)))
        whole_t.append(timed(lambda: whole_frame_jf(pred, gt)))
    t_ours, t_whole = median(ours_t), median(whole_t)
    print(f"\nJ&F of one 720p frame pair (J {score.j:.4f}, F {score.f:.4f}), median of {repeats}")
    print(f"engine.jf.score_frame {t_ours * 1e3:7.2f} ms")
    print(f"whole-frame baseline  {t_whole * 1e3:7.2f} ms   ({t_whole / t_ours:.1f}x slower)")
    return t_ours, t_whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    ratio = bench_rle(args.repeats)
    t_ours, t_whole = bench_jf(args.repeats)
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"\nSUMMARY rle ours/pycocotools = {ratio:.3f}x (target <= {TARGET}x: {verdict}); "
        f"J&F per 720p frame pair {t_ours * 1e3:.2f} ms ({t_whole / t_ours:.1f}x faster than whole-frame)"
    )


if __name__ == "__main__":
    main()
