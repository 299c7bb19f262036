"""Image predictor speed: click-to-mask latency once a frame is embedded, and embedding time.

1. sam2-compact on CPU (2 threads by default): embed ``--embed-frames`` frames, then time
   ``--clicks`` predictions on them, alternating a first click (three candidates) with a
   refining second click that feeds the previous low-resolution logits back, as an annotator
   does. Target: p95 click latency under 50 ms.
2. The real SAM 2.1 Hiera-T configuration with random weights, fewer frames and clicks: the
   baseline measured in the same run.

Latency is measured around ``ImagePredictor.predict`` as a caller sees it: prompt checks,
decoder, upscaling the masks to the frame's 480x640 and copying them out.

    python bench/click_latency.py [--clicks 200] [--embed-frames 10] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.image_predictor import ImagePredictor  # noqa: E402
from engine.model_loading import LoadedModel, build_model, choose_device  # noqa: E402
from engine.segmenter_config import COMPACT  # noqa: E402

TARGET_P95_MS = 50.0
TINY = "facebook/sam2.1-hiera-tiny"
HEIGHT, WIDTH = 480, 640


@dataclass(frozen=True)
class Figures:
    model: str
    embed_ms: list[float]
    click_ms: list[float]

    def click(self, q: float) -> float:
        return float(np.percentile(self.click_ms, q))

    def embed(self, q: float) -> float:
        return float(np.percentile(self.embed_ms, q))


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


def measure(model: LoadedModel, images: list[np.ndarray], clicks: int) -> Figures:
    predictor = ImagePredictor(model)
    predictor.set_frame(images[0])  # warm-up
    predictor.predict([[100, 100]], [1])
    rng = np.random.default_rng(1)
    embed_ms: list[float] = []
    click_ms: list[float] = []
    per_frame = max(1, clicks // len(images))
    for image in images:
        start = time.perf_counter()
        predictor.set_frame(image)
        embed_ms.append(1000 * (time.perf_counter() - start))
        previous = None
        for k in range(per_frame):
            x, y = float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))
            start = time.perf_counter()
            if previous is None or k % 2 == 0:
                previous = predictor.predict([[x, y]], [1])
            else:
                first = previous
                previous = predictor.predict(
                    [[x, y], [WIDTH - x, HEIGHT - y]], [1, 0], mask_logits=first.best_logits, multimask=False
                )
            click_ms.append(1000 * (time.perf_counter() - start))
    return Figures(model.name, embed_ms, click_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--embed-frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda runs bf16 autocast)")
    parser.add_argument("--skip-tiny", action="store_true")
    args = parser.parse_args()

    device = choose_device(args.device, torch_threads=args.threads)
    print(f"device {device.device}, {args.threads} threads, load average {os.getloadavg()[0]:.1f} at start")
    images = frames(args.embed_frames)
    results = [measure(build_model(COMPACT, task="image", device=device), images, args.clicks)]
    if not args.skip_tiny:
        tiny = build_model(TINY, task="image", random_weights=True, device=device)
        results.append(measure(tiny, images[:3], max(6, args.clicks // 10)))

    baseline = results[-1] if not args.skip_tiny else None
    print(
        f"\n{'model':28} {'clicks':>6} {'click p50 ms':>12} {'click p95 ms':>12} "
        f"{'embed p50 ms':>12} {'embed p95 ms':>12} {'embed x tiny':>12}"
    )
    for r in results:
        ratio = f"{baseline.embed(50) / r.embed(50):12.1f}" if baseline else "           -"
        print(
            f"{r.model:28} {len(r.click_ms):6d} {r.click(50):12.1f} {r.click(95):12.1f} "
            f"{r.embed(50):12.1f} {r.embed(95):12.1f} {ratio}"
        )
    compact = results[0]
    verdict = "meets" if compact.click(95) < TARGET_P95_MS else "misses"
    print(f"\nsam2-compact click p95 {compact.click(95):.1f} ms: {verdict} the {TARGET_P95_MS:.0f} ms target")
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} at end (this machine has {os.cpu_count()} cores)")
    if load > (os.cpu_count() or 1):
        print("WARNING: other processes competed for the cores; these figures understate the speed")


if __name__ == "__main__":
    main()
