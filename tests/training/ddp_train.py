"""Run by test_distributed.py under torchrun: each process trains, then writes what it ended with.

    python -m torch.distributed.run --nproc_per_node 2 tests/training/ddp_train.py RUN_DIR OUT_DIR

Two short runs in one process group: two-frame clips (the memory path), then one-frame clips
(image steps, whose object pointers no loss reads). Each rank writes its final parameters and
its loss history per run; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script by torchrun: the repository is not on the path

import torch  # noqa: E402

from tests.training.tiny import CPU, small_model, tiny_video  # noqa: E402
from training.clips import ClipSpec  # noqa: E402
from training.distributed import process_group  # noqa: E402
from training.loop import TrainConfig, train  # noqa: E402
from training.prompts import PromptSpec  # noqa: E402

RUNS = {
    "clips": ClipSpec(frames=2),
    "frames": ClipSpec(frames=1),
}


def main(run_dir: Path, out_dir: Path) -> None:
    videos = [tiny_video(3), tiny_video(5, objects=2)]
    with process_group(CPU) as (rank, world):
        for name, clips in RUNS.items():
            model = small_model()
            config = TrainConfig(steps=2, log_every=1, checkpoint_every=1, clips=clips, prompts=PromptSpec(corrections_per_frame=1))
            result = train(model, videos, config, run_dir / name, CPU)
            torch.save(model.state_dict(), out_dir / f"{name}-rank{rank}.pt")
            report = {"rank": rank, "world": world, "history": result.history, "resumed_from": result.resumed_from}
            (out_dir / f"{name}-rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
