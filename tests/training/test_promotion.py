"""The promotion gate: the decision on scores, and carrying it out in the real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError, ModelNotFoundError, PromotionError
from engine.model_registry import CHAMPION, previous_alias
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from storage.objects import LocalObjectStore
from storage.training_runs import SqlTrainingRuns
from engine.model_registry import PROMOTION_KEY
from training.promotion import (
    CHALLENGER,
    apply_promotion,
    decide_for_version,
    decide_promotion,
)

NAME = "sam2-compact"
CONFIG = {"model_type": "sam2_video"}


# --- the decision alone ------------------------------------------------------------------------


def test_no_champion_means_any_evaluated_candidate_is_promoted() -> None:
    decision = decide_promotion({"val_jf": 0.41}, None, margin=0.01)
    assert decision.promote and "no champion" in decision.reason and decision.candidate == 0.41


@pytest.mark.parametrize(
    ("candidate", "promote", "words"),
    [(0.80, True, "above"), (0.745, True, "within the margin"), (0.75, True, "within the margin"), (0.73, False, "0.0200 below")],
)
def test_a_candidate_is_promoted_unless_worse_than_the_champion_by_more_than_the_margin(
    candidate: float, promote: bool, words: str
) -> None:
    decision = decide_promotion({"val_jf": candidate}, {"val_jf": 0.75}, margin=0.01)
    assert decision.promote is promote and words in decision.reason
    assert (decision.candidate, decision.champion, decision.margin) == (candidate, 0.75, 0.01)


@pytest.mark.parametrize("metrics", [None, {}, {"val_jf": None}, {"val_jf": float("nan")}, {"val_jf": "0.9"}, {"val_jf": True}])
def test_a_candidate_without_a_usable_score_is_refused_with_what_to_do(metrics) -> None:
    decision = decide_promotion(metrics, {"val_jf": 0.1}, margin=0.5)
    assert not decision.promote and "evaluate-model" in decision.reason and decision.candidate is None
    assert not decide_promotion(metrics, None, margin=0.5).promote  # not even into an empty seat


def test_a_run_that_did_not_succeed_is_never_promoted_whatever_its_scores() -> None:
    for status in ("failed", "running"):
        decision = decide_promotion({"val_jf": 0.99}, None, margin=0.0, candidate_run_status=status)
        assert not decision.promote and status in decision.reason


def test_scores_from_different_validation_sets_or_a_champion_without_one_do_not_compare() -> None:
    other_set = decide_promotion(
        {"val_jf": 0.9, "validation_digest": "aaa"}, {"val_jf": 0.5, "validation_digest": "bbb"}, margin=0.01
    )
    assert not other_set.promote and "another validation set" in other_set.reason
    same_set = decide_promotion(
        {"val_jf": 0.9, "validation_digest": "aaa"}, {"val_jf": 0.5, "validation_digest": "aaa"}, margin=0.01
    )
    assert same_set.promote
    unscored = decide_promotion({"val_jf": 0.9}, {"note": "from the hub"}, margin=0.01)
    assert not unscored.promote and "champion has no val_jf" in unscored.reason


def test_scores_taken_under_another_protocol_or_mask_upsampling_do_not_compare() -> None:
    """Edge-fitted masks alone raised the bundled model's J&F by 0.03: a bilinear champion is no yardstick."""
    guided = {"eval_protocol": 3, "eval_mask_upsampling": "guided(r=3.2 cells, eps=0.001)"}
    bilinear = {"eval_protocol": 3, "eval_mask_upsampling": "bilinear"}
    worse = decide_promotion({"val_jf": 0.80, **guided}, {"val_jf": 0.78, **bilinear}, margin=0.01)
    assert not worse.promote and "another mask upsampling (bilinear vs guided" in worse.reason
    assert "evaluate-model" in worse.reason
    older = decide_promotion({"val_jf": 0.80, **guided}, {"val_jf": 0.78, "eval_protocol": 2}, margin=0.01)
    assert not older.promote and "another evaluation protocol (2 vs 3)" in older.reason
    assert decide_promotion({"val_jf": 0.80, **guided}, {"val_jf": 0.78, **guided}, margin=0.01).promote


def test_another_metric_can_be_the_gate_and_bad_margins_are_refused() -> None:
    decision = decide_promotion({"val_jf": 0.1, "val_jf_3_clicks": 0.8}, {"val_jf_3_clicks": 0.7}, metric="val_jf_3_clicks")
    assert decision.promote and decision.metric == "val_jf_3_clicks"
    for margin in (-0.1, float("inf"), "0.1"):
        with pytest.raises(ConfigError, match="margin"):
            decide_promotion({"val_jf": 0.5}, None, margin=margin)


# --- in the registry -------------------------------------------------------------------------------


@pytest.fixture
def registry(catalog: Catalog, tmp_path: Path) -> SqlModelRegistry:
    return SqlModelRegistry(catalog, LocalObjectStore(tmp_path / "objects"), tmp_path / "cache")


@pytest.fixture
def runs(catalog: Catalog) -> SqlTrainingRuns:
    return SqlTrainingRuns(catalog)


def trained(registry: SqlModelRegistry, runs: SqlTrainingRuns, metrics: dict | None, *, succeed: bool = True):
    run = runs.start(NAME, {}, {})
    runs.succeed(run.id) if succeed else runs.fail(run.id, "out of memory")
    return registry.register(NAME, CONFIG, None, training_run_id=run.id, metrics=metrics)


def test_a_better_version_becomes_champion_with_its_decision_recorded(registry, runs) -> None:
    first = trained(registry, runs, {"val_jf": 0.60})
    apply_promotion(registry, first, decide_for_version(registry, first, runs=runs))
    second = trained(registry, runs, {"val_jf": 0.66})

    decision = decide_for_version(registry, second, runs=runs, margin=0.01)
    assert decision.promote and decision.champion_ref == first.ref and decision.candidate_ref == second.ref
    promoted = apply_promotion(registry, second, decision)

    assert registry.aliases(NAME)[CHAMPION] == second.version
    assert registry.aliases(NAME)[previous_alias(CHAMPION)] == first.version  # rollback still possible
    record = promoted.metrics[PROMOTION_KEY]
    assert record["promoted"] is True and record["champion_ref"] == first.ref and record["candidate"] == 0.66
    assert promoted.metrics["val_jf"] == 0.66  # the evaluation is kept beside the decision


def test_with_no_champion_a_first_version_must_beat_the_model_it_started_from(registry, runs) -> None:
    """The engine ran the unregistered starting point (bundled or embedded) until now: a first
    retrain scoring below it is kept as a challenger, and the bare name does not pick it up."""
    start = {"val_jf": 0.50, "validation_digest": "d1"}
    worse = trained(registry, runs, {"val_jf": 0.40, "validation_digest": "d1"})
    kept = apply_promotion(registry, worse, decide_for_version(registry, worse, runs=runs, baseline=start, baseline_ref="start"))
    assert registry.aliases(NAME) == {CHALLENGER: worse.version}
    record = kept.metrics[PROMOTION_KEY]
    assert record["promoted"] is False and record["against_baseline"] is True
    assert "below the starting point's (start) 0.5000" in record["reason"]
    with pytest.raises(ModelNotFoundError):
        registry.resolve(NAME)  # nothing to run but the starting point itself
    assert registry.resolve(f"{NAME}@latest").id == worse.id  # still there to inspect

    better = trained(registry, runs, {"val_jf": 0.55, "validation_digest": "d1"})
    decision = decide_for_version(registry, better, runs=runs, baseline=start)
    apply_promotion(registry, better, decision)
    assert decision.promote and registry.aliases(NAME)[CHAMPION] == better.version
    assert registry.resolve(NAME).id == better.id


def test_a_version_never_judged_is_still_what_the_bare_name_runs(registry, runs) -> None:
    registered = registry.register(NAME, CONFIG, None, metrics={"val_jf": 0.3})  # e.g. by hand, no gate
    assert registry.resolve(NAME).id == registered.id


def test_a_decision_against_the_starting_point_is_stale_once_a_champion_exists(registry, runs) -> None:
    candidate = trained(registry, runs, {"val_jf": 0.60})
    decision = decide_for_version(registry, candidate, runs=runs, baseline={"val_jf": 0.5})
    champion = trained(registry, runs, {"val_jf": 0.70})
    apply_promotion(registry, champion, decide_for_version(registry, champion, runs=runs))
    with pytest.raises(PromotionError, match="decide again"):
        apply_promotion(registry, candidate, decision)


def test_a_worse_version_stays_a_challenger_with_the_reason(registry, runs) -> None:
    champion = trained(registry, runs, {"val_jf": 0.70})
    apply_promotion(registry, champion, decide_for_version(registry, champion, runs=runs))
    worse = trained(registry, runs, {"val_jf": 0.60})

    kept = apply_promotion(registry, worse, decide_for_version(registry, worse, runs=runs, margin=0.05))

    assert registry.aliases(NAME) == {CHAMPION: champion.version, CHALLENGER: worse.version}
    assert kept.metrics[PROMOTION_KEY]["promoted"] is False
    assert "0.1000 below the champion's 0.7000" in kept.metrics[PROMOTION_KEY]["reason"]
    assert registry.resolve(f"{NAME}@challenger").id == worse.id


def test_a_failed_or_unevaluated_run_never_replaces_the_champion(registry, runs) -> None:
    champion = trained(registry, runs, {"val_jf": 0.50})
    apply_promotion(registry, champion, decide_for_version(registry, champion, runs=runs))
    failed = trained(registry, runs, {"val_jf": 0.95}, succeed=False)
    unevaluated = trained(registry, runs, None)

    for version in (failed, unevaluated):
        decision = decide_for_version(registry, version, runs=runs)
        assert not decision.promote
        apply_promotion(registry, version, decision)
        assert registry.aliases(NAME)[CHAMPION] == champion.version
    assert "failed" in registry.get(NAME, failed.version).metrics[PROMOTION_KEY]["reason"]


def test_a_decision_is_not_applied_once_stale_or_to_another_version(registry, runs) -> None:
    first = trained(registry, runs, {"val_jf": 0.60})
    second = trained(registry, runs, {"val_jf": 0.70})
    third = trained(registry, runs, {"val_jf": 0.65})
    decision_for_third = decide_for_version(registry, third, runs=runs)  # against no champion
    apply_promotion(registry, second, decide_for_version(registry, second, runs=runs))

    with pytest.raises(PromotionError, match="decide again"):
        apply_promotion(registry, third, decision_for_third)
    with pytest.raises(PromotionError, match="not " + first.ref):
        apply_promotion(registry, first, decision_for_third)
    scores_only = decide_promotion({"val_jf": 0.60}, {"val_jf": 0.55}, margin=0.0)  # not the champion's 0.70
    with pytest.raises(PromotionError, match="decide again"):
        apply_promotion(registry, first, scores_only)
    unrecorded = decide_promotion({"val_jf": 0.99}, {"val_jf": 0.70}, margin=0.0)  # not first's recorded 0.60
    with pytest.raises(PromotionError, match="record the evaluation"):
        apply_promotion(registry, first, unrecorded)
    assert registry.aliases(NAME)[CHAMPION] == second.version


def test_promoting_the_champion_again_changes_nothing(registry, runs) -> None:
    first = trained(registry, runs, {"val_jf": 0.60})
    second = trained(registry, runs, {"val_jf": 0.61})
    apply_promotion(registry, first, decide_for_version(registry, first, runs=runs))
    apply_promotion(registry, second, decide_for_version(registry, second, runs=runs))

    again = decide_for_version(registry, second, runs=runs)
    assert again.promote and again.reason == "already the champion"
    apply_promotion(registry, second, again)
    assert registry.aliases(NAME) == {CHAMPION: second.version, previous_alias(CHAMPION): first.version}
