"""Auto masklets: verified like annotated ones; satisfactory ones join the dataset as auto, the rest are refined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from engine.errors import BadMaskError
from engine.masklets import Masklet, MaskletSource
from engine.masks import decode, encode
from engine.queues import Queue, Verdict
from engine.metrics import Work
from engine.simulated_annotator import VerifierSkill
from engine.simulated_segmenter import ModelQuality, simulated_auto_masklet
from phases.auto_masklets import ModelCandidateGenerator, generate_and_submit, submit_candidates
from phases.workers import Crew, drain, verify_or_refine
from storage import masklets as masklet_queries
from storage.annotation_metrics import phase_metrics
from storage.catalog import Catalog
from storage.schema import MaskletRow
from tests.phases.conftest import SHORT
from tests.phases.test_workers import make_engine

PERFECT = ModelQuality(mask_side=256, image_errors=0.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=0.0)
AWFUL = ModelQuality(mask_side=256, image_errors=6.0, drift_per_frame=4.0, ghost_chance=1.0, lost_chance=1.0)


def test_auto_candidates_are_routed_through_verification(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    with sqlite_catalog.read() as session:
        good_truth, bad_truth = masklet_queries.ground_truth(session, engine.video_id)
    candidates = [simulated_auto_masklet(good_truth, PERFECT), simulated_auto_masklet(bad_truth, AWFUL, seed=3)]
    submitted = submit_candidates(engine.store, candidates, model_version_id=None)
    assert len(submitted) == 2

    lenient_on_nothing = Crew(verifier_skill=VerifierSkill(reject_below=0.0))  # refine, never reject
    outcomes = drain(verify_or_refine(engine.worker("ver", lenient_on_nothing), engine.worker("ref")))
    first_verdicts = {o.masklet_id: o.verdict.value for o in outcomes if o.verdict is not None}
    assert first_verdicts[submitted[0][0]] == "satisfactory"
    assert first_verdicts[submitted[1][0]] == "unsatisfactory"

    with sqlite_catalog.read() as session:
        rows = session.execute(select(MaskletRow.id, MaskletRow.source, MaskletRow.status, MaskletRow.phase)).all()
    by_id = {r.id: r for r in rows}
    with sqlite_catalog.read() as session:
        objects = dict(session.execute(select(MaskletRow.id, MaskletRow.object_id)).all())
    assert {objects[m] for m, _ in submitted} == {2, 3}  # ids of their own, after the two ground-truth objects
    assert (by_id[submitted[0][0]].source, by_id[submitted[0][0]].status) == ("auto", "satisfactory")  # in the dataset as auto
    assert by_id[submitted[1][0]].status == "unsatisfactory"
    refined = [r for r in rows if r.source == "manual"]
    assert len(refined) == 1 and refined[0].phase == 3 and refined[0].status == "satisfactory"

    rows = phase_metrics(sqlite_catalog)
    auto = next(r for r in rows if r.work is Work.AUTO)
    assert auto.masklets == 2 and auto.verdicts == {"satisfactory": 1, "unsatisfactory": 1}
    assert any(r.work is Work.REFINE and r.phase == 3 for r in rows)


def test_only_auto_masklets_are_candidates(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    with sqlite_catalog.read() as session:
        truth = masklet_queries.ground_truth(session, engine.video_id)[0]
    assert truth.source is MaskletSource.GROUND_TRUTH
    with pytest.raises(BadMaskError, match="only auto masklets"):
        submit_candidates(engine.store, [truth], None)


def test_a_candidate_that_follows_no_object_is_rejected(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    with sqlite_catalog.read() as session:
        truths = masklet_queries.ground_truth(session, engine.video_id)
    speck = np.zeros((truths[0].height, truths[0].width), bool)
    speck[:3, :3] = True
    assert not any((decode(m) & speck).any() for t in truths for m in t.masks)  # no object ever there
    nothing = Masklet(engine.video_id, 0, MaskletSource.AUTO, tuple(encode(speck) for _ in truths[0].masks))
    ((masklet_id, _),) = submit_candidates(engine.store, [nothing], None)
    (outcome,) = drain(engine.worker("ver").verify_one)
    assert outcome.masklet_id == masklet_id and outcome.verdict is Verdict.REJECTED


@pytest.mark.slow
def test_the_model_s_generator_feeds_the_same_routing(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """engine.auto_masklets with sam2-compact (random weights, a tiny grid): candidates reach verification."""
    from engine.auto_masklets import AutoMaskConfig
    from engine.model_segmenters import RegistrySegmenterSource
    from tests.engine.sam_fixtures import CPU

    engine = make_engine(sqlite_catalog, tmp_path, spec=SHORT)
    config = AutoMaskConfig.with_grid(2, 0, min_predicted_iou=0.0, min_stability=0.0, max_candidates=2)
    generator = ModelCandidateGenerator(RegistrySegmenterSource(None, device=CPU), config)
    submitted = generate_and_submit(engine.store, generator, [engine.video_id])
    assert 1 <= len(submitted) <= 2
    assert {engine.store.masklet(m).status for m, _ in submitted} == {"in_verification"}
    assert {engine.queue.get(t).queue for _, t in submitted} == {Queue.VERIFY}
