"""Checkpoints shipped inside the repository: the trained ``sam2-compact`` bootstrap model.

The embedded default must work out of the box, offline, with nothing downloaded; so the
bootstrap model (trained by ``dataengine train --bootstrap``, see its ``bootstrap.json`` for the
command and the validation figures) lives in ``engine/weights/``, and ``sam2-compact`` loads
it whenever it is there. Registry versions (retrained models) take precedence over it.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"
WEIGHT_FILE = "model.safetensors"
REPORT_FILE = "bootstrap.json"


def bundled_dir(name: str) -> Path:
    """Where the bundled checkpoint of ``name`` lives (whether or not it is there)."""
    return WEIGHTS_ROOT / name


def bundled_checkpoint(name: str) -> Path | None:
    """The folder of ``name``'s bundled checkpoint, or None if the repository ships none."""
    folder = bundled_dir(name)
    return folder if (folder / WEIGHT_FILE).is_file() and (folder / "config.json").is_file() else None
