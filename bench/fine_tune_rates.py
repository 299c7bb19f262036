"""How a short retraining round's learning rate and recipe move the bootstrap model, side by side in one run.

Each rate (under each recipe of ``--recipes``) fine-tunes the shipped ``sam2-compact`` checkpoint for ``--steps`` steps of
``training.retrain.fine_tune_config`` (the recipe a retraining round uses, a fresh optimiser as
in a round) on synthetic videos of a seed the bootstrap never saw, then scores first-frame-mask
J&F on validation videos of that seed. Rate 0 is the baseline: the shipped model untouched.
A round that ends below the baseline undid more than it taught. ``--noise`` renders both sets
noisier than the bootstrap's videos, a domain it did not train on. ``--score-train N`` also
scores the round's first N training videos: a round that gains there and not on validation fit
its videos instead of learning their domain. Each round's gain is printed with its 95 % interval
over the validation videos (``training.gain``), so a change the draw of videos could make is
called so. ``--trainable PREFIX ...`` trains only the weights
whose names start with a prefix (``TrainConfig.trainable``), every other weight frozen.

A round's recipe (``training.retrain.RECIPES``): ``carry``, the continuation's 2-frame
mask-prompted clips with refinement clicks (sam2-compact's default), ``track``, the same on 8-frame
clips, or ``sam2``, SAM 2's 8-frame clips and prompts.

    python bench/fine_tune_rates.py [--steps 40] [--rates 0 2e-4 5e-5 2e-5 1e-5] [--recipes carry track sam2] [--threads 1]
        [--noise 20] [--score-train 8] [--trainable vision_encoder.backbone.patch_embed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import Sam2VideoModel  # noqa: E402

from engine.bundled import bundled_dir  # noqa: E402
from engine.model_loading import choose_device  # noqa: E402
from engine.segmenter_config import COMPACT  # noqa: E402
from engine.synthetic import SyntheticSpec  # noqa: E402
from training.bootstrap import BootstrapSpec, load_trained, save_model, synthetic_videos  # noqa: E402
from training.evaluate import ModelEvaluation, evaluate_model  # noqa: E402
from training.gain import paired_gain  # noqa: E402
from training.loop import train  # noqa: E402
from training.retrain import RECIPES, fine_tune_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per round (the demo's rounds: 40)")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 2e-4, 5e-5, 2e-5, 1e-5])
    parser.add_argument("--train-videos", type=int, default=8)
    parser.add_argument("--val-videos", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3, help="synthetic data seed (the bootstrap trained on seed 0)")
    parser.add_argument(
        "--noise", type=float, default=None, help="sensor noise of the videos (default: the bootstrap's, 2.5): another domain"
    )
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=["carry"])
    parser.add_argument("--score-train", type=int, default=0, help="also score the first N training videos")
    parser.add_argument("--trainable", nargs="+", default=[], help="train only weights under these name prefixes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.score_train < 0 or args.score_train > args.train_videos:
        parser.error(f"--score-train {args.score_train}: score 0 to --train-videos ({args.train_videos}) training videos")

    weights = bundled_dir(COMPACT)
    if not (weights / "model.safetensors").exists():
        sys.exit(f"no shipped bootstrap model at {weights}: nothing to fine-tune")
    torch.set_num_threads(args.threads)
    device = choose_device("cpu", torch_threads=args.threads)
    video = SyntheticSpec() if args.noise is None else SyntheticSpec(noise_sigma=args.noise)
    spec = BootstrapSpec(train_videos=args.train_videos, val_videos=args.val_videos, seed=args.seed, video=video)
    train_set, val_set = synthetic_videos(spec)
    scored = train_set[: args.score_train]
    print(
        f"{args.steps}-step rounds on {len(train_set)} videos (noise {video.noise_sigma}); "
        f"mask J&F on {len(val_set)} validation videos" + (f" and {len(scored)} training videos" if scored else "")
    )
    print(
        f"{'recipe':>7}  {'peak rate':>10}  {'mask J&F':>8}  {'vs none':>8}"
        + (f"  {'train J&F':>9}  {'vs none':>8}" if scored else "")
        + f"  {'train s':>8}"
    )
    baseline = train_baseline = None
    before = None  # the untouched model's evaluation: each round's gain pairs its videos with these
    runs = [("-", 0.0)] if 0 in args.rates else []
    runs += [(recipe, rate) for recipe in args.recipes for rate in args.rates if rate > 0]
    for recipe, rate in runs:
        model = Sam2VideoModel.from_pretrained(weights)
        seconds = 0.0
        with tempfile.TemporaryDirectory() as work:
            if rate > 0:
                config = replace(fine_tune_config(COMPACT, args.steps, rate, recipe=recipe), trainable=tuple(args.trainable))
                seconds = train(model, train_set, config, Path(work) / "run", device).total_seconds
            save_model(model, Path(work) / "model")
            trained = load_trained(Path(work) / "model", device)
            evaluation = evaluate_model(trained, val_set, protocols=["mask"])
            jf = evaluation.jf["mask"]
            train_jf = evaluate_model(trained, scored, protocols=["mask"]).jf["mask"] if scored else None
        baseline = jf if rate == 0 else baseline
        before = evaluation if rate == 0 else before
        train_baseline = train_jf if rate == 0 else train_baseline
        line = f"{recipe:>7}  {rate:>10.0e}  {jf:8.3f}  {_delta(jf, baseline)}"
        if train_jf is not None:
            line += f"  {train_jf:9.3f}  {_delta(train_jf, train_baseline)}"
        print(f"{line}  {seconds:8.0f}" + (f"  {_gain(before, evaluation)}" if rate > 0 else ""), flush=True)


def _gain(before: ModelEvaluation | None, after: ModelEvaluation) -> str:
    """The round's change against the untouched model, with its interval over the validation videos."""
    if before is None:
        return ""
    gain = paired_gain(
        {video: jf.get("mask") for video, jf in before.per_video.items()},
        {video: jf.get("mask") for video, jf in after.per_video.items()},
        before.objects_per_video,
    )
    return gain.describe() if gain is not None else "gain: fewer than two validation videos"


def _delta(value: float, baseline: float | None) -> str:
    return f"{value - baseline:+8.3f}" if baseline is not None else " " * 8


if __name__ == "__main__":
    main()
