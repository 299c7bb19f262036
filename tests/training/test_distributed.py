"""Data-parallel training through torchrun (gloo, 2 CPU processes), and the ``python -m training`` entry.

The processes train on different clips; DistributedDataParallel averages their gradients, so
they must end with identical parameters, different from where they started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from training.checkpoints import load_checkpoint
from tests.training.ddp_train import RUNS
from tests.training.tiny import same_parameters, small_model

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "ddp_train.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATAENGINE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # both processes on this machine: talk over loopback
    return env


def test_two_processes_train_on_their_own_clips_and_end_with_the_same_parameters(tmp_path: Path) -> None:
    run_dir, out_dir = tmp_path / "runs", tmp_path / "out"
    out_dir.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(SCRIPT), str(run_dir), str(out_dir),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    start = small_model()
    for name in RUNS:
        reports = [json.loads((out_dir / f"{name}-rank{rank}.json").read_text()) for rank in (0, 1)]
        assert [(r["rank"], r["world"]) for r in reports] == [(0, 2), (1, 2)]
        states = [torch.load(out_dir / f"{name}-rank{rank}.pt", weights_only=True) for rank in (0, 1)]
        differing = [key for key, value in states[0].items() if not torch.equal(value, states[1][key])]
        assert differing == [], f"{name}: the ranks ended apart on {differing[:5]}"
        start_state = start.state_dict()
        assert any(not torch.equal(value, start_state[key]) for key, value in states[0].items()), f"{name}: nothing trained"
        # Each rank drew its own clips (its losses differ): equal weights mean averaged gradients.
        losses = [[h["loss"] for h in r["history"]] for r in reports]
        assert losses[0] != losses[1]

        checkpoint = load_checkpoint(run_dir / name)  # written by rank 0 alone
        assert checkpoint is not None and checkpoint.step == 2
        trained = small_model()
        trained.load_state_dict(checkpoint.model)
        rank0 = small_model()
        rank0.load_state_dict(states[0])
        assert same_parameters(trained, rank0) == []


def test_the_training_entry_point_parses_its_commands_without_loading_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training", "bootstrap", "--help"],
        cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for option in ("--steps", "--run-dir", "--train-videos", "--val-videos", "--seed", "--ship"):
        assert option in done.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "training", "bootstrap"], cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "--run-dir" in missing.stderr

    probe = "import sys, training.__main__; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "False", loaded.stderr
