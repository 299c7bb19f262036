"""Training checkpoints: everything a killed run needs to end exactly as an uninterrupted one.

A checkpoint holds the step reached, the model, optimiser and schedule state and the loss
history. Randomness is not saved: every step seeds its own generators from (seed, rank, step),
so the steps after a resume draw the same clips and prompts they would have drawn anyway.
Checkpoints are written atomically (a reader sees the previous one or the new one, never a
part), and a checkpoint of a different configuration is refused rather than silently mixed in.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.errors import CorruptCheckpointError
from storage.objects.atomic_files import write_file_atomically

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class TrainingState:
    step: int  # steps completed
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    config: dict[str, Any]  # the run's TrainConfig as JSON-able values: must match to resume
    history: list[dict[str, float]]  # logged losses so far
    # Losses of the steps since the last log point: a resumed run averages them into its next
    # log entry, as the uninterrupted run would have.
    pending: list[dict[str, float]] = field(default_factory=list)
    # Wall time spent training up to this step, over every process that ran the run, so that a
    # resumed run reports its whole training time (0 in checkpoints written before this field).
    train_seconds: float = 0.0


def save_checkpoint(run_dir: Path, state: TrainingState) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically; returns its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(
        {
            "step": state.step,
            "model": state.model,
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "config": state.config,
            "history": state.history,
            "pending": state.pending,
            "train_seconds": state.train_seconds,
        },
        buffer,
    )
    path = run_dir / CHECKPOINT_NAME
    try:
        write_file_atomically(path, lambda out: out.write(buffer.getbuffer()))
    except OSError as err:
        raise CorruptCheckpointError(
            f"could not write checkpoint {path}: {err.strerror or err} (the previous checkpoint, if any, is intact)"
        ) from err
    return path


def load_checkpoint(run_dir: Path) -> TrainingState | None:
    """The run's last checkpoint, or None if it has none yet."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return TrainingState(
            step=int(data["step"]),
            model=data["model"],
            optimizer=data["optimizer"],
            scheduler=data["scheduler"],
            config=data["config"],
            history=list(data["history"]),
            pending=list(data.get("pending", [])),
            train_seconds=float(data.get("train_seconds", 0.0)),
        )
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CorruptCheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); delete it to start the run over"
        ) from err
