"""Two bootstrap recipes for ``sam2-compact`` from scratch, side by side in one run.

1. The single-stage recipe, ``training.bootstrap.single_stage_config`` (SAM 2's clips and
   prompts from the first step, half the steps on single frames): the baseline.
2. The bootstrap's curriculum, ``training.bootstrap.bootstrap_stages``: 2-frame clips prompted
   by a mask first, then SAM 2's clips, with the image encoder at a lower learning rate and the
   memory modules at a higher one.

Both train the same number of steps from the same initialisation on the same seeded synthetic
videos and are scored on the same validation videos (semi-supervised J&F and 3-click J&F).
Printed beside them: how much the model uses its memory, as the difference between two
objects' memory-attention outputs on one validation frame relative to the output's size (a
model that ignores its memory gives every object the same features, so 0).

    python bench/bootstrap_recipes.py [--steps 1200] [--train-videos 16] [--val-videos 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.model_loading import LoadedModel, choose_device  # noqa: E402
from training.bootstrap import BootstrapSpec, bootstrap_stages, load_trained, run_bootstrap, single_stage_config, synthetic_videos  # noqa: E402
from training.clips import EVAL_CLIPS, sample_clip  # noqa: E402
from training.loop import TrainConfig  # noqa: E402
from training.model import Sam2Trainer  # noqa: E402
from training.prompts import ClipPrompts, PromptKind  # noqa: E402
from training.videos import TrainingVideo  # noqa: E402


def memory_use(model: LoadedModel, video: TrainingVideo) -> float:
    """Relative difference between objects' memory-attention outputs on the frame after a mask prompt."""
    module = model.module.eval()
    clip = sample_clip(video, np.random.default_rng(0), module.image_size, EVAL_CLIPS)
    if clip is None or clip.object_count < 2:
        return float("nan")
    seen: list[torch.Tensor] = []
    hook = module.memory_attention.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            Sam2Trainer(module)(clip.pixels[:2], clip.masks[:2], ClipPrompts(PromptKind.MASK, (0,), (), 0), torch.Generator())
    finally:
        hook.remove()
    out = seen[0][0]  # (objects, HW, C)
    return float((out[0] - out[1]).abs().mean() / out.abs().mean())


def run(name: str, stages: tuple[TrainConfig, ...], spec: BootstrapSpec, device, work: Path) -> dict[str, float]:
    result = run_bootstrap(spec, stages, work / name, device, command=f"bench/bootstrap_recipes.py ({name})")
    assert result is not None  # a single process is rank 0
    _, val_set = synthetic_videos(replace(spec, train_videos=0))  # the validation videos alone: seeded apart
    return {
        "train_s": result.report["train_seconds"],
        "jf_mask": result.evaluation.jf["mask"],
        "jf_click3": result.evaluation.jf["click3"],
        "memory_use": memory_use(load_trained(result.weights_dir, device), val_set[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--train-videos", type=int, default=16)
    parser.add_argument("--val-videos", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = choose_device(args.device, torch_threads=args.threads)
    spec = BootstrapSpec(train_videos=args.train_videos, val_videos=args.val_videos)
    recipes = {"single stage": (single_stage_config(args.steps),), "curriculum (bootstrap)": bootstrap_stages(args.steps)}
    results = {}
    with tempfile.TemporaryDirectory(prefix="bootstrap-recipes-") as tmp:
        for name, stages in recipes.items():
            results[name] = run(name.split()[0], stages, spec, device, Path(tmp))
            print(f"{name}: {results[name]}", flush=True)
    print(f"\n{args.steps} steps each, {args.train_videos} training and {args.val_videos} validation videos, "
          f"{args.threads} threads on {device.device}")
    print(f"{'recipe':28} {'train s':>8} {'J&F mask':>9} {'J&F 3 clicks':>13} {'memory use':>11}")
    for name, r in results.items():
        print(f"{name:28} {r['train_s']:8.0f} {r['jf_mask']:9.3f} {r['jf_click3']:13.3f} {r['memory_use']:11.4f}")
    base, cur = results["single stage"], results["curriculum (bootstrap)"]
    print(f"\ncurriculum / single stage J&F (mask): {cur['jf_mask'] / base['jf_mask']:.2f}x; targets 0.85 (mask) and 0.75 (3 clicks)")


if __name__ == "__main__":
    main()
