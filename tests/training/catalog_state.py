"""Catalog state for the training-data tests: ingested synthetic videos, and masklets that reach the
dataset the way the engine's do (annotated, submitted and judged through the real queues) or by
an SA-V import."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from engine.masklets import Masklet, MaskletSource
from engine.queues import NewTask, Queue, Verdict, annotate_queue
from engine.sav import to_sav
from engine.settings import load_settings
from engine.synthetic import SyntheticSpec, synthesize
from storage import masklets as masklet_queries
from storage import videos as video_queries
from storage.catalog import Catalog
from storage.exports import ImportAs, import_sav, sav_video_of
from storage.ingest_sources import ingest_sources
from storage.objects.local import LocalObjectStore
from storage.schema import MaskletRow
from storage.task_queue import TaskQueue
from storage.training_data import SqlTrainingData
from storage.training_runs import SqlTrainingRuns

# 8 sampled frames of 64x48 with two objects: small enough to ingest in a blink.
SPEC = SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0)
ANNOTATOR, VERIFIER = "ann", "ver"


@dataclass
class CatalogState:
    """A catalog and object store holding ``video_ids``, and ways to add dataset masklets to them."""

    catalog: Catalog
    store: LocalObjectStore
    queue: TaskQueue
    video_ids: list[str]
    root: Path

    @property
    def data(self) -> SqlTrainingData:
        return SqlTrainingData(self.catalog, self.store)

    @property
    def runs(self) -> SqlTrainingRuns:
        return SqlTrainingRuns(self.catalog)

    def truth(self, video_id: str, object_id: int) -> Masklet:
        with self.catalog.read() as session:
            (masklet,) = [m for m in masklet_queries.ground_truth(session, video_id) if m.object_id == object_id]
        return masklet

    def judged(
        self,
        video_id: str,
        object_id: int,
        *,
        phase: int | None = 1,
        source: MaskletSource = MaskletSource.MANUAL,
        verdict: Verdict = Verdict.SATISFACTORY,
        masklet: Masklet | None = None,
    ) -> int:
        """A masklet of the object's ground truth, annotated (manual) or generated (auto), then judged."""
        masklet = dataclasses.replace(masklet or self.truth(video_id, object_id), source=source)
        with self.catalog.write() as session:
            masklet_id = masklet_queries.add_masklet(
                session, masklet, status="draft", phase=phase, annotator=ANNOTATOR if source is MaskletSource.MANUAL else None
            )
        if source is MaskletSource.MANUAL:
            self.queue.enqueue(annotate_queue(phase or 1), {"video_id": video_id, "object_id": object_id}, video_id=video_id)
            (lease,) = self.queue.claim(annotate_queue(phase or 1), ANNOTATOR, 60)
            self.queue.submit_masklet(lease.task_id, lease.token, masklet_id)
        else:
            with self.catalog.write() as session:  # as auto-masklet generation leaves a candidate
                session.get(MaskletRow, masklet_id).status = "in_verification"
            spec = NewTask(Queue.VERIFY, {"masklet_id": masklet_id}, masklet_id=masklet_id, video_id=video_id)
            self.queue.enqueue_many([spec])
        (lease,) = self.queue.claim(Queue.VERIFY, VERIFIER, 60)
        reason = None if verdict is Verdict.SATISFACTORY else "not good enough"
        self.queue.route_verdict(lease.task_id, lease.token, verdict, reason=reason)
        return masklet_id

    def draft(self, video_id: str, object_id: int, *, phase: int = 1) -> int:
        with self.catalog.write() as session:
            masklet = dataclasses.replace(self.truth(video_id, object_id), source=MaskletSource.MANUAL)
            return masklet_queries.add_masklet(session, masklet, status="draft", phase=phase, annotator=ANNOTATOR)

    def imported(self, video_id: str, source: MaskletSource = MaskletSource.MANUAL) -> None:
        """The video's ground truth as an SA-V file of ``source`` masklets, imported as dataset."""
        with self.catalog.read() as session:
            video = video_queries.get_video(session, video_id)
            truth = masklet_queries.ground_truth(session, video_id)
        path = self.root / f"{video_id}_{source.value}.json"
        masklets = [dataclasses.replace(m, source=source) for m in truth]
        path.write_text(json.dumps(to_sav(sav_video_of(video), masklets)))
        import_sav(self.catalog, path, as_=ImportAs.DATASET)

    def set_split(self, video_id: str, split: str) -> None:
        with self.catalog.write() as session:
            video_queries.set_video_split(session, video_id, split)


def make_state(catalog: Catalog, root: Path, videos_dir: Path) -> CatalogState:
    store = LocalObjectStore(root / "objects")
    paths = sorted(videos_dir.glob("*.mp4"))
    results = ingest_sources([str(p) for p in paths], catalog=catalog, store=store, settings=load_settings())
    video_ids = sorted(r.video_id for r in results if r.video_id)
    assert len(video_ids) == len(paths), results
    return CatalogState(catalog, store, TaskQueue(catalog), video_ids, root)


def synthesize_videos(out_dir: Path, count: int) -> Path:
    synthesize(out_dir, count, seed=11, spec=SPEC)
    return out_dir
