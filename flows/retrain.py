"""The ``retrain`` flow: decide, retrain on the data collected so far, promote or not.

It runs nightly and whenever enough satisfactory masklets have been verified (the deployment's
trigger counts ``dataengine.masklet.verified`` events). Either way the retrain policy decides
first, from the catalog (:func:`training.policy.retrain_decision`), and says why it did or did
not trigger; then one task does the round (:func:`training.retrain.retrain`: datasets,
training, validation, registration, promotion gate), tagged ``gpu`` so a tag concurrency limit
keeps training off a GPU that annotation tasks are using. A promotion is announced as a
``dataengine.model.promoted`` event and the next annotation task picks the new champion up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from engine.events import DomainEvent
from engine.segmenter_config import COMPACT
from flows.events import PrefectEventSink
from flows.models import GPU_TAG
from flows.resources import resources
from training.gain import gain_text
from training.policy import DEFAULT_THRESHOLD

DEFAULT_STEPS = 200


@dataclass(frozen=True)
class RetrainReport:
    """What one run of the flow did: the policy's answer and, if it trained, the round's outcome."""

    retrained: bool
    reason: str
    version: str | None = None
    promoted: bool = False
    val_jf_before: float | None = None
    val_jf_after: float | None = None
    # The change of validation J&F and its 95 % interval over videos (training.gain); None
    # without two validation videos scored by both versions.
    val_gain: float | None = None
    val_gain_low: float | None = None
    val_gain_high: float | None = None
    val_gain_videos: int | None = None
    summary: str | None = None


@task(name="retrain-decision", cache_policy=NO_CACHE)
def retrain_due(
    model: str, threshold: int, schedule_every_hours: float | None, catalog_url: str | None, object_store_url: str | None
) -> tuple[bool, str]:
    """The retrain policy on the catalog now: ``(retrain?, why)``."""
    from storage.model_registry import SqlModelRegistry
    from storage.training_data import SqlTrainingData
    from storage.training_runs import SqlTrainingRuns
    from training.policy import retrain_decision

    res = resources(catalog_url, object_store_url)
    registry = SqlModelRegistry(res.catalog, res.store, Path(res.settings.model_cache_dir))
    decision = retrain_decision(
        datetime.now(timezone.utc),
        registry,
        SqlTrainingRuns(res.catalog),
        SqlTrainingData(res.catalog, res.store),
        model,
        threshold=threshold,
        schedule_every=timedelta(hours=schedule_every_hours) if schedule_every_hours else None,
    )
    return decision.retrain, decision.reason


@task(name="retrain-model", cache_policy=NO_CACHE, tags=[GPU_TAG], timeout_seconds=6 * 3600)
def retrain_model(
    model: str,
    steps: int,
    lr: float | None,
    recipe: str | None,
    margin: float,
    include_sav_imports: bool,
    with_phase3: bool,
    work_dir: str | None,
    catalog_url: str | None,
    object_store_url: str | None,
) -> RetrainReport:
    """One retraining round; a failure marks the training run failed and leaves the champion alone.

    No retries: a rerun resumes from the round's checkpoints only through a new training run,
    and the policy decides again whether one is due.
    """
    from engine.model_loading import choose_device
    from storage.model_registry import SqlModelRegistry
    from storage.training_data import SqlTrainingData
    from storage.training_runs import SqlTrainingRuns
    from training.retrain import fine_tune_config, retrain

    res = resources(catalog_url, object_store_url)
    registry = SqlModelRegistry(res.catalog, res.store, Path(res.settings.model_cache_dir))
    logger = get_run_logger()

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        logger.info("step %d/%d loss %.3f", step, total, losses.get("loss", float("nan")))

    outcome = retrain(
        registry=registry,
        runs=SqlTrainingRuns(res.catalog),
        data=SqlTrainingData(res.catalog, res.store),
        model_name=model,
        config=fine_tune_config(model, steps, lr, recipe),
        work_dir=Path(work_dir) if work_dir else Path(res.settings.model_cache_dir).parent / "runs",
        device=choose_device(torch_threads=res.settings.torch_threads),
        include_sav_imports=include_sav_imports,
        margin=margin,
        with_phase3=with_phase3,
        progress=progress,
    )
    if outcome.promoted:
        PrefectEventSink().emit(
            DomainEvent(
                name="dataengine.model.promoted",
                resource_id=f"dataengine.model.{outcome.version.name}",
                labels={"dataengine.model.version": str(outcome.version.version)},
                payload={"ref": outcome.version.ref, "val_jf": outcome.after.get("val_jf")},
            )
        )
    return RetrainReport(
        retrained=True,
        reason="trained",
        version=outcome.version.ref,
        promoted=outcome.promoted,
        val_jf_before=outcome.before.get("val_jf"),
        val_jf_after=outcome.after.get("val_jf"),
        **(outcome.gain.metrics() if outcome.gain is not None else {}),
        summary=outcome.summary(),
    )


@flow(name="retrain", log_prints=False)
def retrain(
    model: str = COMPACT,
    steps: int = DEFAULT_STEPS,
    lr: float | None = None,  # None: the fine-tuning rate (training.retrain.FINE_TUNE_LR)
    recipe: str | None = None,  # None: the model's own (training.retrain.fine_tune_config)
    threshold: int = DEFAULT_THRESHOLD,
    schedule_every_hours: float | None = 24.0,
    force: bool = False,
    margin: float = 0.01,
    include_sav_imports: bool = False,
    with_phase3: bool = False,
    work_dir: str | None = None,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> RetrainReport:
    """Retrain ``model`` when the policy says so (or ``force``), then promote through the gate."""
    logger = get_run_logger()
    if force:
        due, reason = True, "forced"
    else:
        due, reason = retrain_due(model, threshold, schedule_every_hours, catalog_url, object_store_url)
    logger.info("retrain %s: %s", "due" if due else "not due", reason)
    if not due:
        report = RetrainReport(retrained=False, reason=reason)
    else:
        report = retrain_model(
            model, steps, lr, recipe, margin, include_sav_imports, with_phase3, work_dir, catalog_url, object_store_url
        )
        report = RetrainReport(**{**report.__dict__, "reason": reason})
        logger.info(report.summary)
    create_markdown_artifact(
        key="retrain",
        markdown=_markdown(model, report),
        description=f"retrain {model}: {report.summary or report.reason}",
    )
    return report


def _markdown(model: str, report: RetrainReport) -> str:
    if not report.retrained:
        return f"### Retrain `{model}`: not due\n\n{report.reason}\n"
    return (
        f"### Retrain `{model}` -> `{report.version}`\n\n"
        f"| | validation J&F |\n|---|---|\n| champion before | {_fmt(report.val_jf_before)} |\n"
        f"| new version | {_fmt(report.val_jf_after)} |\n"
        f"| gain (95 % interval over videos) | {gain_text(asdict(report))} |\n\n"
        f"**{'promoted to champion' if report.promoted else 'kept as challenger'}** - {report.summary}\n\nWhy it ran: {report.reason}\n"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
