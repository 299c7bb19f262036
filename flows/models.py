"""The model in the loop for a flow's tasks, chosen by name: the registry's, or a simulated one.

``model="simulated"`` runs the phases on degraded ground truth (:mod:`engine.simulated_segmenter`:
fast, no torch, for tests, dry runs and benchmarks of the orchestration); any other name is a
registry reference (``sam2-compact``: its champion, else its newest version), asked again
before every task so a promotion reaches the next masklet. Model-bound tasks carry the
``gpu`` tag only with a real model, so a tag concurrency limit never throttles simulations.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.segmenters import SegmenterSource
from engine.simulated_segmenter import SimulatedSegmenterSource
from flows.resources import Resources
from phases.auto_masklets import CandidateGenerator, SimulatedCandidateGenerator
from phases.workers import Crew, Worker
from storage.model_registry import SqlModelRegistry

SIMULATED = "simulated"
GPU_TAG = "gpu"  # a tag concurrency limit on it bounds model-bound tasks per GPU

_lock = threading.Lock()
_sources: dict[tuple[int, str, str, str], SegmenterSource] = {}


def is_simulated(model: str) -> bool:
    return model == SIMULATED


def model_tags(model: str) -> list[str]:
    """Tags of a task that runs ``model``: ``gpu`` for a real model, none for a simulated one."""
    return [] if is_simulated(model) else [GPU_TAG]


def segmenter_source(res: Resources, model: str) -> SegmenterSource:
    """One source per process, catalog and model: a loaded model is reused until the registry moves."""
    key = (os.getpid(), res.settings.catalog_url, res.settings.object_store_url, model)
    with _lock:
        if key not in _sources:
            _sources[key] = SimulatedSegmenterSource() if is_simulated(model) else _registry_source(res, model)
        return _sources[key]


def model_worker(
    name: str, res: Resources, model: str, *, seed: int = 0, correction_budget: int | None = None
) -> Worker:
    """A simulated person working with ``model`` in the loop (annotation and refinement tasks)."""
    return Worker(
        name,
        res.queue,
        res.annotations,
        segmenter_source(res, model),
        Crew(seed=seed),
        correction_budget=correction_budget,
    )


def candidate_generator(
    res: Resources, model: str, *, max_candidates: int | None = None, seed: int = 0
) -> CandidateGenerator:
    """Auto-masklet candidates from the model (or, simulated, from each ground-truth object)."""
    if is_simulated(model):
        return SimulatedCandidateGenerator(res.annotations, seed=seed)  # one degraded masklet per true object
    from engine.auto_mask_config import AutoMaskConfig
    from phases.auto_masklets import ModelCandidateGenerator

    source = segmenter_source(res, model)  # a RegistrySegmenterSource: the registry's model of the moment
    return ModelCandidateGenerator(source, AutoMaskConfig(max_candidates=max_candidates))  # type: ignore[arg-type]


def _registry_source(res: Resources, model: str) -> SegmenterSource:
    # Imported here: torch and transformers take seconds to import, and simulated runs never need them.
    from engine.model_segmenters import RegistrySegmenterSource

    registry = SqlModelRegistry(res.catalog, res.store, Path(res.settings.model_cache_dir))
    return RegistrySegmenterSource(registry, model)
