"""When to retrain: enough new satisfactory masklets, or the schedule, and always a reason why.

SAM 2's data engine retrained its model as annotation went on (SAM 2 Mask twice in Phase 2,
SAM 2 five times in Phase 3). The flows ask :func:`retrain_decision` after each batch of
verification or on a timer:

- **threshold**: retrain once ``threshold`` masklets that the last training did not have
  would now be in the training set;
- **schedule**: retrain every ``schedule_every`` if there is anything new at all (retraining
  on the same data again teaches nothing).

"The last training" is the newest run of the model, running or succeeded, that is not older
than the champion (by run id when the champion has a run, by time when it was registered from
a checkpoint): usually the champion's own run, but a challenger trained since (and refused by
the gate) counts, so a model that lost does not make the engine retrain on almost the same
data at once, and a run in progress stops another one from starting. Failed runs do not count.
New masklets are counted as a set difference with that run's manifest, which is exact
whatever order concurrent writers committed in (ids above a marker are not: a sequence hands
out ids at insert, transactions commit in any order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.errors import ConfigError
from engine.model_registry import ModelRegistry, ModelVersion
from engine.training_data import RunStatus, TrainingDataSource, TrainingRun, TrainingRunLog
from training.dataset import DatasetManifest, manifest_of, training_masklet_ids
from training.promotion import champion_of

# New satisfactory masklets that start a retrain, by default (the retrain flow and the
# retrain/nightly deployment's event trigger). Fewer, about 12 videos' worth at the earlier 50,
# teach sam2-compact those videos rather than their domain (docs/training-data.md).
DEFAULT_THRESHOLD = 250


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain now, and why (a sentence for logs and dashboards)."""

    retrain: bool
    reason: str
    due_at: datetime | None = None  # when the schedule next makes a retrain due, if it has one


@dataclass(frozen=True)
class RetrainInputs:
    """What the policy weighs, gathered from the catalog and the registry."""

    new_satisfactory: int  # training masklets now that the reference training did not have
    last_trained_at: datetime | None  # when the reference run started (None: never trained here)
    reference: str  # which training the count is relative to, for the reason
    reference_run_id: int | None = None
    champion_ref: str | None = None


def should_retrain(
    now: datetime,
    *,
    new_satisfactory: int,
    threshold: int,
    last_trained_at: datetime | None,
    schedule_every: timedelta | None,
    reference: str = "the champion's training data",
) -> RetrainDecision:
    """Retrain when ``new_satisfactory`` reaches ``threshold``, or when the schedule is due and there is anything new."""
    _check(now, threshold, schedule_every, last_trained_at)
    if new_satisfactory < 0:
        raise ConfigError(f"new_satisfactory={new_satisfactory} cannot be negative")
    due_at = None
    if schedule_every is not None:
        due_at = now if last_trained_at is None else last_trained_at + schedule_every
    counted = f"{new_satisfactory} new satisfactory masklet(s) since {reference}"
    if new_satisfactory >= threshold:
        return RetrainDecision(True, f"{counted}, threshold {threshold}", due_at)
    if due_at is not None and now >= due_at:
        if new_satisfactory == 0:
            return RetrainDecision(
                False, f"the scheduled retrain is due, but nothing is new since {reference}: nothing to learn", due_at
            )
        return RetrainDecision(True, f"scheduled retrain due (every {schedule_every}); {counted}", due_at)
    waiting = f"{counted}, fewer than the threshold {threshold}"
    if due_at is not None:
        waiting += f"; next scheduled retrain at {due_at.isoformat()}"
    return RetrainDecision(False, waiting, due_at)


def retrain_inputs(
    registry: ModelRegistry,
    runs: TrainingRunLog,
    data: TrainingDataSource,
    model_name: str,
    *,
    include_sav_imports: bool = False,
) -> RetrainInputs:
    """Count the training masklets the last training of ``model_name`` did not have (see the module doc)."""
    champion = champion_of(registry, model_name)
    history = runs.list(model_name)
    champion_run = None
    if champion is not None and champion.training_run_id is not None:
        champion_run = next((r for r in history if r.id == champion.training_run_id), None)
    reference = _reference_run(history, champion, champion_run)
    manifest: DatasetManifest | None = None if reference is None else manifest_of(reference)
    current = training_masklet_ids(data.snapshot(), include_sav_imports=include_sav_imports)
    trained = frozenset() if manifest is None else manifest.training_masklet_ids
    champion_ref = None if champion is None else champion.ref
    if reference is None:
        since = "the start (no training run yet)" if champion is None else f"{champion.ref} (trained outside the catalog)"
        trained_at = None if champion is None else champion.created_at
        return RetrainInputs(len(current - trained), trained_at, since, None, champion_ref)
    since = f"training run {reference.id} ({_role(reference, champion_run)}{'' if manifest else ', not on catalog data'})"
    return RetrainInputs(len(current - trained), reference.started_at, since, reference.id, champion_ref)


def retrain_decision(
    now: datetime,
    registry: ModelRegistry,
    runs: TrainingRunLog,
    data: TrainingDataSource,
    model_name: str,
    *,
    threshold: int,
    schedule_every: timedelta | None = None,
    include_sav_imports: bool = False,
) -> RetrainDecision:
    """:func:`should_retrain` on the inputs :func:`retrain_inputs` gathers: what a flow calls."""
    _check(now, threshold, schedule_every, None)
    inputs = retrain_inputs(registry, runs, data, model_name, include_sav_imports=include_sav_imports)
    return should_retrain(
        now,
        new_satisfactory=inputs.new_satisfactory,
        threshold=threshold,
        last_trained_at=inputs.last_trained_at,
        schedule_every=schedule_every,
        reference=inputs.reference,
    )


def _reference_run(
    history: list[TrainingRun], champion: ModelVersion | None, champion_run: TrainingRun | None
) -> TrainingRun | None:
    """The newest running or succeeded run not older than the champion (the champion's own run if none is newer).

    "Not older" is by run id when the champion has a run, else by time: a champion registered
    from a checkpoint makes every run before it history.
    """
    live = [r for r in history if r.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)]
    if champion_run is not None:
        live = [r for r in live if r.id >= champion_run.id]
    elif champion is not None:
        live = [r for r in live if r.started_at >= champion.created_at]
    return max(live, key=lambda r: r.id, default=None) or champion_run


def _role(run: TrainingRun, champion_run: TrainingRun | None) -> str:
    if champion_run is not None and run.id == champion_run.id:
        return "the champion's"
    if run.status is RunStatus.RUNNING:
        return "still running"
    return "newer than the champion's" if champion_run is not None else "no champion yet"


def _check(now: datetime, threshold: int, schedule_every: timedelta | None, last: datetime | None) -> None:
    if now.tzinfo is None or (last is not None and last.tzinfo is None):
        raise ConfigError("the retrain policy compares timezone-aware times (UTC); a naive datetime was given")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"retrain threshold {threshold!r} must be a whole number of masklets, at least 1")
    if schedule_every is not None and schedule_every <= timedelta(0):
        raise ConfigError(f"retrain schedule {schedule_every} must be a positive interval (or none)")
