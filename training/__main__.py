"""``python -m training`` / ``torchrun --nproc_per_node N -m training``: training runs from the shell.

    torchrun --nproc_per_node 2 -m training bootstrap --steps 200 --run-dir runs/boot
    python -m training bootstrap --steps 8000 --run-dir runs/boot --ship
    python -m training bootstrap --continue-from engine/weights/sam2-compact --steps 6000 --run-dir runs/more [--refine-clicks 3]
    python -m training bootstrap --continue-from engine/weights/sam2-compact --steps 1000 --run-dir runs/iou --iou-head
    python -m training bootstrap --continue-from engine/weights/sam2-compact --steps 6000 --run-dir runs/long --clip-frames 4
    python -m training validate engine/weights/sam2-compact runs/long/model --val-videos 32

Every process trains on its own clips and DistributedDataParallel averages gradients; rank 0
writes checkpoints, validates and saves the model. ``dataengine train`` is the same work for
one process, with the registry and promotion around it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from engine.errors import ConfigError, DataEngineError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="train sam2-compact from scratch on synthetic videos")
    boot.add_argument("--steps", type=int, default=None, help="training steps over both stages (default 8000)")
    boot.add_argument("--run-dir", type=Path, required=True, help="checkpoints and the trained model go here; resumes")
    boot.add_argument(
        "--continue-from",
        type=Path,
        default=None,
        help="train an earlier bootstrap model further (on its own synthetic data) instead of starting from scratch",
    )
    boot.add_argument(
        "--refine-clicks",
        type=int,
        default=0,
        help="with --continue-from: corrective clicks on one tracked frame of half the clips (Phase 3's refinement)",
    )
    boot.add_argument(
        "--clip-frames",
        type=int,
        default=None,
        help="with --continue-from: frames a training clip holds, the first prompted by its mask (default 2)",
    )
    boot.add_argument(
        "--iou-head",
        action="store_true",
        help="with --continue-from: train only the IoU head, which picks among the decoder's masks (everything else frozen)",
    )
    boot.add_argument(
        "--train-videos",
        type=int,
        default=None,
        help="default 64; with --continue-from, at least the continued model's: its videos and further ones",
    )
    boot.add_argument(
        "--fresh-videos",
        type=int,
        default=None,
        help="with --continue-from: train on this many videos none of the continued runs has seen (the seeds after theirs)",
    )
    boot.add_argument("--val-videos", type=int, default=None, help="default 8")
    boot.add_argument("--seed", type=int, default=None, help="default 0")
    boot.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    boot.add_argument("--ship", action="store_true", help="copy the trained model into engine/weights/sam2-compact")
    check = sub.add_parser(
        "validate", help="score bootstrap models on their validation videos and further ones of the same seeds"
    )
    check.add_argument("models", type=Path, nargs="+", help="folders of bootstrap models (with bootstrap.json)")
    check.add_argument("--val-videos", type=int, default=32, help="validation videos in all (default 32; a run's own: 8)")
    check.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        return _bootstrap(args, argv if argv is not None else sys.argv[1:])
    except DataEngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _bootstrap(args: argparse.Namespace, argv: list[str]) -> int:
    from engine.model_loading import choose_device
    from engine.settings import load_settings
    from training.bootstrap import (
        DEFAULT_STEPS,
        BootstrapSpec,
        bootstrap_spec_of,
        bootstrap_stages,
        chain_stage_count,
        continue_stage,
        fresh_after,
        iou_head_stage,
        read_bootstrap_report,
        run_bootstrap,
        ship,
        widens,
    )
    from training.distributed import process_group

    device = choose_device(args.device, torch_threads=load_settings().torch_threads)
    data_flags = {"train_videos": args.train_videos, "val_videos": args.val_videos, "seed": args.seed}
    if args.continue_from is not None:
        given = [f"--{name.replace('_', '-')}" for name in ("val_videos", "seed") if data_flags[name] is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: a continued bootstrap trains on the data of the model it continues")
        if args.steps is None:
            raise ConfigError("--continue-from needs --steps: how many more steps to train")
        parent = read_bootstrap_report(args.continue_from)
        spec = bootstrap_spec_of(parent)
        if args.fresh_videos is not None:
            if args.train_videos is not None:
                raise ConfigError(
                    "--fresh-videos and --train-videos: a continuation either widens its videos or draws fresh ones"
                )
            spec = fresh_after(spec, args.fresh_videos)
        elif args.train_videos is not None:
            wider = replace(spec, train_videos=args.train_videos)
            if not widens(spec, wider):
                raise ConfigError(
                    f"--train-videos {args.train_videos}: {args.continue_from} trained on {spec.train_videos};"
                    " a continuation keeps those videos and may add more"
                )
            spec = wider
        seed = chain_stage_count(parent)
        if args.iou_head:
            if args.refine_clicks or args.clip_frames is not None:
                raise ConfigError("--iou-head trains on its own clips; leave out --refine-clicks and --clip-frames")
            stages: tuple = (iou_head_stage(args.steps, seed=seed),)
        else:
            stages = (continue_stage(args.steps, seed=seed, refine_clicks=args.refine_clicks, clip_frames=args.clip_frames),)
    else:
        if args.refine_clicks:
            raise ConfigError("--refine-clicks is for --continue-from: the bootstrap recipe's own last stage trains corrections")
        if args.iou_head:
            raise ConfigError("--iou-head is for --continue-from: it tunes a trained model's choice among its masks")
        if args.clip_frames is not None:
            raise ConfigError("--clip-frames is for --continue-from: the bootstrap recipe sets its own stages' clips")
        if args.fresh_videos is not None:
            raise ConfigError("--fresh-videos is for --continue-from: a first run's videos are the first --train-videos seeds")
        spec = BootstrapSpec(**{name: value for name, value in data_flags.items() if value is not None})
        stages = bootstrap_stages(args.steps or DEFAULT_STEPS)
    with process_group(device) as (rank, world):
        command = "python -m training " + shlex.join(argv) if world == 1 else f"torchrun --nproc_per_node {world} -m training " + shlex.join(argv)

        began = time.monotonic()

        def progress(step: int, steps: int, losses: dict[str, float]) -> None:
            print(f"[{time.monotonic() - began:7.0f} s] step {step}/{steps} loss {losses.get('loss', float('nan')):.3f} lr {losses.get('lr', 0):.2e}", flush=True)

        result = run_bootstrap(
            spec, stages, args.run_dir, device, command=command, progress=progress, rank=rank, start_from=args.continue_from
        )
        if result is None:
            return 0
        print(json.dumps(result.report["validation"], indent=2, sort_keys=True))
        if args.ship:
            print(f"shipped to {ship(result.weights_dir)}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    """One JSON object per model: J&F on its own validation videos, on further ones, on all."""
    from engine.model_loading import choose_device
    from engine.settings import load_settings
    from training.bootstrap import read_bootstrap_report, validate_further

    for folder in args.models:
        read_bootstrap_report(folder)  # every folder is checked before the first is scored
    device = choose_device(args.device, torch_threads=load_settings().torch_threads)
    for folder in args.models:
        began = time.monotonic()
        scores = validate_further(folder, args.val_videos, device)
        print(json.dumps({"model": str(folder), **scores, "seconds": round(time.monotonic() - began, 1)}, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
