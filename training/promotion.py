"""The promotion gate: when a newly trained model version becomes the ``champion``.

A candidate replaces the champion only when its validation J&F is not worse than the
champion's by more than a margin (noise in a small validation set should not block a model
trained on more data, but a real regression must). A version that cannot be judged (no
metric, a training run that failed or never finished, metrics from another validation set)
is never promoted. Every decision, either way, is recorded with the version's metrics under
``promotion``, and a refused version is pointed at by the ``challenger`` alias, so
``dataengine models show NAME@challenger`` says why it lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from engine.errors import ConfigError, PromotionError
from engine.model_registry import CHAMPION, PROMOTION_KEY, ModelRegistry, ModelVersion
from engine.training_data import RunStatus, TrainingRunLog

DEFAULT_METRIC = "val_jf"  # semi-supervised J&F on the validation videos, first-frame mask
DEFAULT_MARGIN = 0.01
CHALLENGER = "challenger"  # the alias of the last version the gate refused
# The digest of the validation set a version's metrics were measured on, where the evaluation
# records it (training.dataset.DatasetManifest.validation_digest): scores on two different
# validation sets do not compare.
VALIDATION_SET_KEY = "validation_digest"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a candidate becomes champion, and why, with the numbers the decision rests on."""

    promote: bool
    reason: str
    metric: str
    candidate: float | None  # the candidate's score, None when it has none
    champion: float | None  # the champion's score, None when there is no champion (or no score)
    margin: float
    champion_ref: str | None = None  # the champion the candidate was judged against, when known
    candidate_ref: str | None = None
    # Judged against the unregistered model the engine ran before any version was champion (the
    # bundled or embedded starting point, scored on the same validation set), not a registered champion.
    against_baseline: bool = False

    def to_json(self, decided_at: datetime) -> dict[str, Any]:
        return {
            "promoted": self.promote,
            "reason": self.reason,
            "metric": self.metric,
            "candidate": self.candidate,
            "champion": self.champion,
            "champion_ref": self.champion_ref,
            "against_baseline": self.against_baseline,
            "margin": self.margin,
            "decided_at": decided_at.astimezone(timezone.utc).isoformat(),
        }


def decide_promotion(
    candidate_metrics: Mapping[str, Any] | None,
    champion_metrics: Mapping[str, Any] | None,
    *,
    margin: float = DEFAULT_MARGIN,
    metric: str = DEFAULT_METRIC,
    candidate_run_status: RunStatus | str | None = None,
) -> PromotionDecision:
    """Promote when the candidate's ``metric`` is at least the champion's minus ``margin``.

    No champion (``champion_metrics`` None): the candidate is promoted if it has a score at
    all. A candidate without a score, or whose training run did not succeed, is refused; so
    is one compared with a champion that has no score or was scored on another validation set
    (evaluate the champion on the same set first).
    """
    if not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise ConfigError(f"promotion margin {margin!r} must be a number >= 0 (e.g. 0.01 of J&F)")
    margin = float(margin)
    candidate = _score(candidate_metrics, metric)

    def refuse(reason: str, champion: float | None = None) -> PromotionDecision:
        return PromotionDecision(False, reason, metric, candidate, champion, margin)

    if candidate_run_status is not None and RunStatus(candidate_run_status) is not RunStatus.SUCCEEDED:
        return refuse(f"its training run is {RunStatus(candidate_run_status).value}, not succeeded: a partial model is never promoted")
    if candidate is None:
        return refuse(
            f"it has no {metric} (its evaluation did not run or failed): evaluate it "
            "(`dataengine evaluate-model REF`) before it can be promoted"
        )
    if champion_metrics is None:
        return PromotionDecision(True, f"no champion yet; {metric} {candidate:.4f}", metric, candidate, None, margin)
    champion = _score(champion_metrics, metric)
    if champion is None:
        return refuse(
            f"the champion has no {metric} to compare with: evaluate the champion on the same validation set "
            "(`dataengine evaluate-model NAME@champion`), then decide again"
        )
    sets = (candidate_metrics or {}).get(VALIDATION_SET_KEY), champion_metrics.get(VALIDATION_SET_KEY)
    if None not in sets and sets[0] != sets[1]:
        return refuse(
            f"the champion's {metric} was measured on another validation set ({sets[1]!s:.12} vs {sets[0]!s:.12}): "
            "evaluate the champion on the candidate's validation set, then decide again",
            champion,
        )
    # Scores taken two ways are not comparable: evaluation protocol 3 fitted masks to the frame's
    # edges, which alone raised the bundled model's J&F by 0.03 (engine.mask_upsampling).
    for key, what in (("eval_protocol", "evaluation protocol"), ("eval_mask_upsampling", "mask upsampling")):
        ours, theirs = (candidate_metrics or {}).get(key), champion_metrics.get(key)
        if ours != theirs:
            return refuse(
                f"the champion's {metric} was scored under another {what} ({theirs} vs {ours}): evaluate the "
                "champion again (`dataengine evaluate-model NAME@champion`), then decide again",
                champion,
            )
    difference = candidate - champion
    if difference < -margin:
        return refuse(
            f"{metric} {candidate:.4f} is {-difference:.4f} below the champion's {champion:.4f}, "
            f"more than the margin {margin:g}",
            champion,
        )
    relation = "above" if difference > 0 else "within the margin of"
    return PromotionDecision(
        True,
        f"{metric} {candidate:.4f} is {relation} the champion's {champion:.4f} (margin {margin:g})",
        metric,
        candidate,
        champion,
        margin,
    )


def decide_for_version(
    registry: ModelRegistry,
    version: ModelVersion,
    *,
    runs: TrainingRunLog,
    margin: float = DEFAULT_MARGIN,
    metric: str = DEFAULT_METRIC,
    baseline: Mapping[str, Any] | None = None,
    baseline_ref: str | None = None,
) -> PromotionDecision:
    """Judge a registered version against its model's current champion, on their recorded metrics.

    A version trained by a run that did not succeed (failed, or still running: a partial
    model) is refused whatever its scores. Where the model has no champion yet, ``baseline``
    (the metrics of the unregistered model the engine has been running, on the candidate's
    validation set) stands in for one: a first retrain that is worse than what annotators
    already had must not take its place.
    """
    champion = champion_of(registry, version.name)
    status = None
    if version.training_run_id is not None:
        status = runs.get(version.training_run_id).status
    if champion is not None and champion.id == version.id:
        return PromotionDecision(
            True, "already the champion", metric, _score(version.metrics, metric), _score(champion.metrics, metric),
            float(margin), champion.ref, version.ref,
        )
    against_baseline = champion is None and baseline is not None
    decision = decide_promotion(
        version.metrics,
        baseline if against_baseline else None if champion is None else champion.metrics,
        margin=margin,
        metric=metric,
        candidate_run_status=status,
    )
    if against_baseline:
        reason = decision.reason.replace("the champion's", f"the starting point's ({baseline_ref or 'unregistered'})")
        return replace(decision, reason=reason, candidate_ref=version.ref, against_baseline=True)
    return replace(decision, champion_ref=None if champion is None else champion.ref, candidate_ref=version.ref)


def apply_promotion(
    registry: ModelRegistry,
    version: ModelVersion,
    decision: PromotionDecision,
    *,
    now: datetime | None = None,
) -> ModelVersion:
    """Carry out a decision: move ``champion`` to ``version``, or keep it as the ``challenger``.

    Either way the decision is recorded in the version's metrics under ``promotion``. A
    promotion is refused (PromotionError, nothing changed) when the decision is not about this
    version's recorded score, or when the champion moved since it was made.
    """
    decided_at = now or datetime.now(timezone.utc)
    if decision.candidate_ref is not None and decision.candidate_ref != version.ref:
        raise PromotionError(f"the decision is about {decision.candidate_ref}, not {version.ref}")
    version = registry.get(version.name, version.version)  # its metrics as recorded now, not as the caller last saw them
    if not decision.promote:
        registry.record_metrics(version.id, {PROMOTION_KEY: decision.to_json(decided_at)})
        registry.set_alias(version.name, CHALLENGER, version.version)
        return registry.get(version.name, version.version)
    recorded = _score(version.metrics, decision.metric)
    if recorded is None or decision.candidate is None or not math.isclose(recorded, decision.candidate):
        raise PromotionError(
            f"{version.ref} has {decision.metric}={recorded} recorded, but the decision was made on "
            f"{decision.candidate}: record the evaluation with the version (registry.record_metrics) and decide on it"
        )
    current = champion_of(registry, version.name)
    if current is None or current.id != version.id:  # moving the alias onto itself would lose previous-champion
        _refuse_if_stale(decision, current)
        registry.set_alias(version.name, CHAMPION, version.version)
    return registry.record_metrics(version.id, {PROMOTION_KEY: decision.to_json(decided_at)})


def _refuse_if_stale(decision: PromotionDecision, current: ModelVersion | None) -> None:
    """A decision made against one champion does not hold once another one (or none) is in place."""
    if decision.against_baseline:
        stale = current is not None  # a champion was set since: judge against it instead
    elif decision.champion_ref is not None:
        stale = current is None or current.ref != decision.champion_ref
    elif current is None:
        stale = decision.champion is not None
    else:  # a decision from scores alone: the champion's score must be the one it was judged against
        score = _score(current.metrics, decision.metric)
        stale = score is None or decision.champion is None or not math.isclose(score, decision.champion)
    if stale:
        raise PromotionError(
            f"the champion is {current.ref if current else 'unset'} now, not the one the decision was made against "
            f"({decision.champion_ref or decision.champion or 'no champion'}): decide again"
        )


def champion_of(registry: ModelRegistry, name: str) -> ModelVersion | None:
    """The version ``name@champion`` points at; None when the model has no champion (or no versions)."""
    number = registry.aliases(name).get(CHAMPION)
    return None if number is None else registry.get(name, number)


def _score(metrics: Mapping[str, Any] | None, metric: str) -> float | None:
    """The metric as a finite number, or None (absent, not a number, NaN)."""
    value = (metrics or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
