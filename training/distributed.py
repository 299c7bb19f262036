"""Multi-process data-parallel training under ``torchrun``: PyTorch's engine, not ours.

``torchrun --nproc_per_node N -m training ...`` starts N processes with RANK, WORLD_SIZE and
MASTER_ADDR set; :func:`process_group` joins them (gloo on CPU, NCCL when each process has a
GPU) and leaves cleanly. Without torchrun it is a no-op, so the same code runs single-process.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from engine.model_loading import DeviceChoice


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def process_group(device: DeviceChoice) -> Iterator[tuple[int, int]]:
    """``(rank, world_size)`` inside; the group is destroyed on the way out, error or not."""
    if not launched_by_torchrun():
        yield 0, 1
        return
    backend = "nccl" if device.device.type == "cuda" and dist.is_nccl_available() else "gloo"
    if device.device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=10))
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        dist.destroy_process_group()


def is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
