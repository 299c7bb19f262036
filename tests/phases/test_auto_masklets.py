"""Auto masklets: verified like annotated ones; satisfactory ones join the dataset as auto, the rest are refined."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from engine.errors import BadMaskError
from engine.masklets import Masklet, MaskletSource
from engine.masks import decode, encode
from engine.metrics import Work, best_match, masklet_jf
from engine.queues import Queue, TaskStatus, Verdict
from engine.simulated_annotator import VerifierSkill
from engine.simulated_segmenter import ModelQuality, simulated_auto_masklet
from phases.auto_masklets import (
    ModelCandidateGenerator,
    SimulatedCandidateGenerator,
    background_masklet,
    generate_and_submit,
    submit_candidates,
)
from phases.workers import Crew, Outcome, drain, verify_or_refine
from storage import masklets as masklet_queries
from storage.annotation_metrics import phase_metrics
from storage.catalog import Catalog
from storage.schema import MaskletRow, VerificationRow
from tests.phases.test_workers import Engine, make_engine

pytestmark = pytest.mark.usefixtures("no_bundled_model")  # counts follow from the weights: pinned random ones

PERFECT = ModelQuality(mask_side=256, image_errors=0.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=0.0)
AWFUL = ModelQuality(mask_side=256, image_errors=6.0, drift_per_frame=4.0, ghost_chance=1.0, lost_chance=1.0)


@pytest.fixture
def engine(catalog: Catalog, tmp_path: Path) -> Engine:
    return make_engine(catalog, tmp_path)


def ground_truth(engine: Engine) -> list[Masklet]:
    with engine.catalog.read() as session:
        return masklet_queries.ground_truth(session, engine.video_id)


def test_auto_candidates_are_routed_through_verification(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    good_truth, bad_truth = ground_truth(engine)
    candidates = [simulated_auto_masklet(good_truth, PERFECT), simulated_auto_masklet(bad_truth, AWFUL, seed=3)]
    submitted = submit_candidates(engine.store, candidates, model_version_id=None)
    assert len(submitted) == 2

    lenient_on_nothing = Crew(verifier_skill=VerifierSkill(reject_below=0.0))  # refine, never reject
    outcomes = drain(verify_or_refine(engine.worker("ver", lenient_on_nothing), engine.worker("ref")))
    first_verdicts = {o.masklet_id: o.verdict.value for o in outcomes if o.verdict is not None}
    assert first_verdicts[submitted[0].masklet_id] == "satisfactory"
    assert first_verdicts[submitted[1].masklet_id] == "unsatisfactory"

    with sqlite_catalog.read() as session:
        rows = session.execute(select(MaskletRow.id, MaskletRow.source, MaskletRow.status, MaskletRow.phase)).all()
        objects = dict(session.execute(select(MaskletRow.id, MaskletRow.object_id)).all())
    by_id = {r.id: r for r in rows}
    assert [objects[s.masklet_id] for s in submitted] == [2, 3]  # ids of their own, after the truth's 0 and 1
    good = by_id[submitted[0].masklet_id]
    assert (good.source, good.status) == ("auto", "satisfactory")  # in the dataset as auto
    assert by_id[submitted[1].masklet_id].status == "unsatisfactory"
    refined = [r for r in rows if r.source == "manual"]
    assert len(refined) == 1 and refined[0].phase == 3 and refined[0].status == "satisfactory"

    rows = phase_metrics(sqlite_catalog)
    auto = next(r for r in rows if r.work is Work.AUTO)
    assert auto.masklets == 2 and auto.verdicts == {"satisfactory": 1, "unsatisfactory": 1}
    assert any(r.work is Work.REFINE and r.phase == 3 for r in rows)


def test_only_auto_masklets_are_candidates_and_a_bad_batch_stores_nothing(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    truth = ground_truth(engine)[0]
    assert truth.source is MaskletSource.GROUND_TRUTH
    with pytest.raises(BadMaskError, match="only auto masklets"):
        submit_candidates(engine.store, [simulated_auto_masklet(truth, PERFECT), truth], None)
    assert engine.masklets("auto") == [] and engine.queue.list_tasks(Queue.VERIFY) == []


def test_a_candidate_that_follows_no_object_is_rejected(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    engine = make_engine(sqlite_catalog, tmp_path)
    truths = ground_truth(engine)
    speck = np.zeros((truths[0].height, truths[0].width), bool)
    speck[:3, :3] = True
    assert not any((decode(m) & speck).any() for t in truths for m in t.masks)  # no object ever there
    nothing = Masklet(engine.video_id, 0, MaskletSource.AUTO, tuple(encode(speck) for _ in truths[0].masks))
    (submitted,) = submit_candidates(engine.store, [nothing], None)
    (outcome,) = drain(engine.worker("ver").verify_one)
    assert outcome.masklet_id == submitted.masklet_id and outcome.verdict is Verdict.REJECTED


def test_background_candidates_stay_off_every_object(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    import random

    engine = make_engine(sqlite_catalog, tmp_path)
    truths = ground_truth(engine)
    square = background_masklet(truths, random.Random(1))
    assert square is not None and square.source is MaskletSource.AUTO and square.frame_count == truths[0].frame_count
    assert all(a == 16 for a in square.areas)
    assert not any((decode(s) & decode(m)).any() for t in truths for s, m in zip(square.masks, t.masks))
    full = Masklet(engine.video_id, 0, MaskletSource.GROUND_TRUTH, tuple(encode(np.ones((48, 64), bool)) for _ in range(2)))
    assert background_masklet([full], random.Random(1)) is None  # no room anywhere


# --- end to end: generate, verify, refine, verify again ---------------------------------------------


def expected_jf(candidate: Masklet, truths: Sequence[Masklet]) -> float:
    """The J&F a simulated verifier finds: against the object the candidate follows best, else against nothing."""
    truth = best_match(candidate, truths)
    if truth is None:
        return 1.0 if candidate.first_appeared_frame is None else 0.0
    return masklet_jf(candidate, truth)


def skill_splitting(jfs: Sequence[float]) -> VerifierSkill:
    """Thresholds between the candidates' J&Fs: the best satisfactory, the worst rejected, the rest unsatisfactory."""
    ranked = sorted(set(jfs))
    assert len(ranked) >= 3, f"the candidates' J&Fs {jfs} cannot be split three ways"
    return VerifierSkill(jf_threshold=(ranked[-1] + ranked[-2]) / 2, reject_below=(ranked[0] + ranked[1]) / 2)


def verdict_by_rule(jf: float, skill: VerifierSkill) -> Verdict:
    if jf < skill.reject_below:
        return Verdict.REJECTED
    return Verdict.SATISFACTORY if jf >= skill.jf_threshold else Verdict.UNSATISFACTORY


def work_the_verify_queue(engine: Engine, skill: VerifierSkill) -> list[Outcome]:
    """Simulated verifiers judge, simulated Phase 3 refiners fix, until nothing waits."""
    crew = Crew(verifier_skill=skill)
    return drain(verify_or_refine(engine.worker("verifier", crew), engine.worker("refiner", crew)))


def check_every_route(engine: Engine, submitted, expected: dict[int, Verdict], outcomes: list[Outcome]) -> None:  # type: ignore[no-untyped-def]
    """Each candidate went the way its verdict says, and the dataset holds exactly the satisfactory ones."""
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    first = {o.masklet_id: o.verdict for o in outcomes if o.queue is Queue.VERIFY and o.masklet_id in expected}
    assert first == expected

    auto = {r.id: r for r in engine.masklets("auto")}
    manual = engine.masklets("manual")
    with engine.catalog.read() as session:
        reasons = dict(session.execute(select(VerificationRow.masklet_id, VerificationRow.reason)).all())
        objects = dict(session.execute(select(MaskletRow.id, MaskletRow.object_id)).all())
    refines = {r.id: objects[r.id] for r in manual}
    for candidate in submitted:
        verdict = expected[candidate.masklet_id]
        row = auto[candidate.masklet_id]
        if verdict is Verdict.SATISFACTORY:
            assert row.status == "satisfactory"  # in the dataset, as auto
        elif verdict is Verdict.REJECTED:
            assert row.status == "rejected" and reasons[candidate.masklet_id]  # kept, with its reason, out of it
        else:
            assert row.status == "unsatisfactory"
            # Refined in Phase 3 (same object), then verified again: the refinement is what may enter.
            (refined_id,) = [m for m, obj in refines.items() if obj == objects[candidate.masklet_id]]
            refined = next(r for r in manual if r.id == refined_id)
            assert refined.phase == 3 and refined.annotator == "refiner"
            assert refined.status == "satisfactory"
            assert any(o.queue is Queue.VERIFY and o.masklet_id == refined_id for o in outcomes)
    assert len(manual) == sum(v is Verdict.UNSATISFACTORY for v in expected.values())
    assert all(s.pending == 0 for s in engine.queue.stats())
    assert not engine.queue.list_tasks(status=TaskStatus.DEAD)


def test_simulated_candidates_take_every_route_through_the_engine(engine: Engine) -> None:
    generator = SimulatedCandidateGenerator(engine.store, (PERFECT, AWFUL), spurious=1, seed=2)
    submitted = generate_and_submit(engine.store, generator, [engine.video_id])
    assert len(submitted) == 3  # two objects, one spurious square
    assert {engine.queue.get(s.verify_task_id).queue for s in submitted} == {Queue.VERIFY}
    truths = ground_truth(engine)
    jfs = {s.masklet_id: expected_jf(engine.store.masklet(s.masklet_id).masklet, truths) for s in submitted}
    assert jfs[submitted[2].masklet_id] == 0.0  # follows nothing
    skill = VerifierSkill(jf_threshold=0.85, reject_below=min(jfs[submitted[1].masklet_id], 0.3) / 2)
    expected = {m: verdict_by_rule(jf, skill) for m, jf in jfs.items()}
    assert list(expected.values()) == [Verdict.SATISFACTORY, Verdict.UNSATISFACTORY, Verdict.REJECTED]

    check_every_route(engine, submitted, expected, work_the_verify_queue(engine, skill))
    (auto,) = [r for r in phase_metrics(engine.catalog) if r.work is Work.AUTO]
    assert auto.masklets == 3 and auto.verdicts == {"rejected": 1, "satisfactory": 1, "unsatisfactory": 1}


@pytest.mark.slow
def test_the_model_s_candidates_take_the_same_routes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.auto_masklets with sam2-compact (random weights, a 3x3 grid, no thresholds): the engine routes them.

    Random weights make meaningless masks, so the verifier's thresholds are set between the
    candidates' J&Fs to send them down every route; what is checked is that each goes where its
    verdict says. Bilinear masks: the signs of random logits are speckles that differ from one
    candidate to the next; fitted to the frame's edges they come out alike (engine.mask_upsampling).
    """
    monkeypatch.setenv("DATAENGINE_MASK_UPSAMPLING", "bilinear")
    from engine.auto_masklets import AutoMaskConfig
    from engine.model_segmenters import RegistrySegmenterSource
    from tests.engine.sam_fixtures import CPU
    from tests.engine.segment_fixtures import one_torch_thread

    config = AutoMaskConfig.with_grid(3, 0, min_predicted_iou=0.0, min_stability=0.0, max_candidates=4)
    generator = ModelCandidateGenerator(RegistrySegmenterSource(None, device=CPU), config)
    with one_torch_thread():
        submitted = generate_and_submit(engine.store, generator, [engine.video_id])
    assert generator.last is not None and generator.last.stats.kept == len(submitted) >= 3
    stored = {s.masklet_id: engine.store.masklet(s.masklet_id) for s in submitted}
    assert {(m.source, m.status) for m in stored.values()} == {(MaskletSource.AUTO, "in_verification")}
    assert {engine.queue.get(s.verify_task_id).queue for s in submitted} == {Queue.VERIFY}

    truths = ground_truth(engine)
    jfs = {m: expected_jf(s.masklet, truths) for m, s in stored.items()}
    skill = skill_splitting(list(jfs.values()))
    expected = {m: verdict_by_rule(jf, skill) for m, jf in jfs.items()}
    assert set(expected.values()) == set(Verdict)
    check_every_route(engine, submitted, expected, work_the_verify_queue(engine, skill))
