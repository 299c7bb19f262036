"""Training and evaluation throughput of ``sam2-compact``, and the time the bootstrap model took.

    python bench/training.py [--steps 20] [--threads 2] [--device cpu]

1. Training: clips per second of the real training step (8-frame clips, up to 3 objects,
   SAM 2's prompt simulation with corrective clicks, backward through the memory path, AdamW),
   against the baseline of the same clips through the same model forward-only without
   gradients, measured in the same run (the ratio is what training costs over inference).
2. Evaluation: validation objects per second (three protocols each: mask, 1 click, 3 clicks),
   and frames per second of propagation within it.
3. The bootstrap model's own figures, read from the shipped ``engine/weights/sam2-compact/
   bootstrap.json`` (how long it took, on what, to what validation J&F).

With ``--device cuda --model facebook/sam2.1-hiera-tiny`` (random weights are fine for timing)
it measures SAM 2.1 tiny at 1024 px in bf16, as the issue asks where a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.bundled import REPORT_FILE, bundled_dir  # noqa: E402
from engine.model_loading import build_model, choose_device  # noqa: E402
from engine.segmenter_config import COMPACT  # noqa: E402
from engine.synthetic import generate_video  # noqa: E402
from training.bootstrap import bootstrap_chain, chain_train_seconds, run_train_seconds  # noqa: E402
from training.clips import sample_clip  # noqa: E402
from training.evaluate import evaluate_model  # noqa: E402
from training.losses import clip_loss  # noqa: E402
from training.model import Sam2Trainer  # noqa: E402
from training.prompts import PromptSpec, plan_prompts  # noqa: E402
from training.videos import synthetic_training_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=COMPACT)
    parser.add_argument("--eval-videos", type=int, default=2)
    args = parser.parse_args()
    device = choose_device(args.device, torch_threads=args.threads)
    loaded = build_model(args.model, task="video", device=device, random_weights=args.model != COMPACT)
    model = loaded.module
    size = loaded.image_size
    print(f"{args.model} at {size} px on {device.device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")

    videos = [synthetic_training_video(generate_video(f"bench-{i}", 500 + i)) for i in range(4)]
    clips = []
    rng = np.random.default_rng(0)
    while len(clips) < args.steps:
        clip = sample_clip(videos[len(clips) % len(videos)], rng, size)
        if clip is not None:
            clips.append(clip)
    spec = PromptSpec()
    plans = [plan_prompts(c.frame_count, spec, torch.Generator().manual_seed(i)) for i, c in enumerate(clips)]
    trainer = Sam2Trainer(model, spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def forward_only() -> list[float]:
        model.eval()
        times = []
        with torch.no_grad(), device.autocast():
            for i, clip in enumerate(clips):
                began = time.perf_counter()
                trainer(clip.pixels.to(device.device), clip.masks.to(device.device), plans[i], torch.Generator().manual_seed(i))
                times.append(time.perf_counter() - began)
        return times

    def train_steps() -> list[float]:
        model.train()
        times = []
        for i, clip in enumerate(clips):
            began = time.perf_counter()
            pixels, masks = clip.pixels.to(device.device), clip.masks.to(device.device)
            with device.autocast():
                predictions = trainer(pixels, masks, plans[i], torch.Generator().manual_seed(i))
                loss, _ = clip_loss(predictions, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()
            if device.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - began)
        return times

    forward_only()  # warm-up
    baseline = statistics.median(forward_only())
    step = statistics.median(train_steps())
    print("\ntraining (8-frame clips, median over clips)")
    print(f"  forward only (baseline)   {baseline * 1000:8.0f} ms/clip   {1 / baseline:6.2f} clips/s")
    print(f"  training step             {step * 1000:8.0f} ms/clip   {1 / step:6.2f} clips/s   x{step / baseline:.1f} the baseline")
    print(f"  -> {3600 / step:,.0f} clips an hour on this device")

    if args.model == COMPACT:
        model.eval()
        val = [synthetic_training_video(generate_video(f"bench-val-{i}", 900 + i)) for i in range(args.eval_videos)]
        evaluation = evaluate_model(loaded, val)
        frames = sum(v.frame_count for v in val) * len(evaluation.jf)
        print("\nevaluation (mask, 1-click and 3-click protocols)")
        print(
            f"  {evaluation.objects} objects in {evaluation.seconds:.1f} s: {evaluation.objects / evaluation.seconds:.2f} objects/s, "
            f"about {frames * max(1, evaluation.objects // max(1, len(val))) / evaluation.seconds:.0f} propagated frames/s"
        )

    report = bundled_dir(COMPACT) / REPORT_FILE
    print("\nbootstrap model")
    if report.exists():
        data = json.loads(report.read_text())
        validation = data.get("validation", {})
        for depth, run in enumerate(bootstrap_chain(data)):
            print(f"  {'then ' * bool(depth)}command: {run.get('command')}")
            print(
                f"    trained {run.get('steps')} steps in {run_train_seconds(run) / 60:.1f} min "
                f"(clips/s by stage run in that process: {_rates(run)}) on {run.get('device')} with {run.get('torch_threads')} threads"
            )
        print(f"  time to the bootstrap model: {chain_train_seconds(data) / 60:.1f} min of training")
        print(
            "  validation J&F: "
            + ", ".join(f"{k[7:]} {v:.3f}" for k, v in sorted(validation.items()) if k.startswith("val_jf_") and isinstance(v, float))
        )
    else:
        print(f"  none shipped yet ({report} missing): run `dataengine train --bootstrap --ship`")


def _rates(report: dict) -> str:
    rates = report.get("stage_clips_per_second") or [report.get("clips_per_second") or 0.0]
    return ", ".join(f"{rate:.2f}" if rate else "resumed" for rate in rates)


if __name__ == "__main__":
    main()
