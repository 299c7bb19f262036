"""The SAM 2 paper's Table 1, measured here: Phases 1, 2 and 3 on the same seeded synthetic videos.

Makes seeded synthetic videos with exact ground truth, ingests them into a fresh catalog (SQLite
and a local object store in a temporary folder), and annotates every object three times,
once per phase, through the queues with simulated annotators; then works the verification
loop and prints the per-phase metrics beside the paper's, with speedups against Phase 1
measured in the same run.

The model comes from the fresh catalog's registry, which is empty, so the embedded
``sam2-compact`` runs: the bundled bootstrap checkpoint (random weights in a checkout without
it; the run prints which). Its speedups are what the model in the loop earns, not retrained
here. ``--model simulated`` runs the same procedures on simulated models (degraded ground
truth), which shows what the procedures give with a model that tracks well.

    python bench/engine_table.py [--videos 2] [--objects 1] [--frames 8] [--size 96x64]
                                 [--annotators 1] [--model sam2-compact|simulated] [--budget N] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.metrics import PAPER_TABLE_1, Work, format_table  # noqa: E402
from engine.model_segmenters import RegistrySegmenterSource  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.simulated_segmenter import SimulatedSegmenterSource  # noqa: E402
from engine.synthetic import SyntheticSpec, synthesize  # noqa: E402
from flows.cli.annotate_cmd import SIMULATED  # noqa: E402
from phases.workers import Worker, drain_in_threads, enqueue_annotation, verify_or_refine  # noqa: E402
from storage.annotation_metrics import phase_metrics  # noqa: E402
from storage.annotation_store import SqlAnnotationStore  # noqa: E402
from storage.catalog import Catalog  # noqa: E402
from storage.ingest_sources import ingest_sources  # noqa: E402
from storage.model_registry import SqlModelRegistry  # noqa: E402
from storage.objects.local import LocalObjectStore  # noqa: E402
from storage.task_queue import TaskQueue  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--objects", type=int, default=1, help="objects per video (each one masklet per phase)")
    parser.add_argument("--frames", type=int, default=8, help="sampled frames per video (6 FPS)")
    parser.add_argument("--size", default="96x64", help="WIDTHxHEIGHT of the videos")
    parser.add_argument("--annotators", type=int, default=1, help="simulated annotators working in parallel")
    parser.add_argument("--model", default="sam2-compact", help=f"registry reference, or {SIMULATED!r}")
    parser.add_argument("--budget", type=int, default=None, help="frames corrected after propagation, at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    width, height = (int(v) for v in args.size.lower().split("x"))
    spec = SyntheticSpec(
        width=width, height=height, source_frames=4 * args.frames, objects=args.objects, parts=0,
        force_events=args.frames >= 8,
    )
    with tempfile.TemporaryDirectory(prefix="engine-table-") as folder:
        root = Path(folder)
        catalog = Catalog(f"sqlite:///{root / 'catalog.db'}")
        catalog.upgrade()
        store = LocalObjectStore(root / "objects")
        paths = synthesize(root / "videos", args.videos, args.seed, spec)
        ingest_sources([str(p) for p in paths], catalog=catalog, store=store, settings=load_settings())
        queue, annotations = TaskQueue(catalog), SqlAnnotationStore(catalog, store)
        if args.model == SIMULATED:
            models = SimulatedSegmenterSource(seed=args.seed)
        else:
            models = RegistrySegmenterSource(SqlModelRegistry(catalog, store, root / "model-cache"), args.model)
        print(
            f"{args.videos} videos of {width}x{height}, {len(spec.sampled_frames)} sampled frames, "
            f"{args.objects} object(s) each; {args.annotators} simulated annotator(s); model {args.model}"
        )

        walls = {}
        for phase in (1, 2, 3):
            started = time.perf_counter()
            enqueue_annotation(queue, annotations, phase)
            workers = [
                Worker(f"sim-annotator-{i + 1}", queue, annotations, models, correction_budget=args.budget)
                for i in range(args.annotators)
            ]
            outcomes = drain_in_threads([lambda w=w, p=phase: w.annotate_one(p) for w in workers])
            failed = [o for o in outcomes if not o.ok]
            walls[phase] = time.perf_counter() - started
            print(f"phase {phase}: {len(outcomes) - len(failed)} masklets in {walls[phase]:.0f} s wall clock"
                  + (f", {len(failed)} failed: {failed[0].error}" if failed else ""))
        started = time.perf_counter()
        steps = [
            verify_or_refine(
                Worker(f"sim-verifier-{i + 1}", queue, annotations, models),
                Worker(f"sim-refiner-{i + 1}", queue, annotations, models, correction_budget=args.budget),
            )
            for i in range(args.annotators)
        ]
        verified = drain_in_threads(steps)
        print(f"verification: {len(verified)} tasks in {time.perf_counter() - started:.0f} s wall clock")
        if isinstance(models, RegistrySegmenterSource) and models.fallback_used:
            print(f"model: the registry is empty, so the embedded model ran: {models.fallback_description}")

        rows = phase_metrics(catalog)
        print()
        print(format_table(rows))
        print()
        ours = {r.phase: r for r in rows if r.work is Work.ANNOTATE}
        for paper in PAPER_TABLE_1[1:]:
            row = ours.get(paper.phase)
            if row is None or 1 not in ours:
                continue
            speedup = ours[1].seconds_per_frame / row.seconds_per_frame if row.seconds_per_frame else math.nan
            paper_speedup = PAPER_TABLE_1[0].seconds_per_frame / paper.seconds_per_frame
            print(f"Phase {paper.phase} speedup over Phase 1: ours {speedup:.2f}x, paper {paper_speedup:.1f}x")
        catalog.dispose()


if __name__ == "__main__":
    main()
