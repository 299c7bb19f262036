"""The ``verify`` flow: simulated verifiers work the verification queue and route every verdict.

Rounds of two steps, until neither queue has anything claimable:

1. each masklet waiting in ``verify`` gets a verdict from a simulated verifier who did not
   make it (:func:`verify_masklet`); the queue routes it: satisfactory into the dataset,
   unsatisfactory to ``refine``, rejected out with its reason. Every verdict is announced as
   a ``dataengine.masklet.verified`` event, which the retrain deployment's trigger counts;
2. each masklet waiting in ``refine`` is refined with the Phase 3 tools by a simulated
   refiner (:func:`refine_masklet`) and goes back to ``verify``.

A masklet still unsatisfactory after ``max_refinements`` refinements is rejected, so the
rounds end. What a worker does is :mod:`phases.workers`'; this module only schedules it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.errors import DataEngineError
from engine.events import EventSink, NullEventSink, masklet_verified
from engine.queues import Queue, Verdict
from engine.segmenters import DEFAULT_MODEL
from engine.simulated_segmenter import SimulatedSegmenterSource
from flows import parallel
from flows.events import PrefectEventSink
from flows.models import model_tags, model_worker
from flows.parallel import Collected, Submission, run_rounds
from flows.progress import Progress
from flows.resources import Resources, release_thread_connections, resources
from flows.retries import retry_transient
from phases import verification
from phases.workers import Crew, Outcome, Worker
from storage.flow_queries import claimable_count, dataset_size, verified_masklet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """What one run of the flow decided."""

    verdicts: dict[str, int]  # verdict -> masklets judged so by this run
    refined: tuple[int, ...]  # masklets made by refinement (and sent back to verification)
    satisfactory: tuple[int, ...]  # masklets that entered the dataset
    failed: tuple[str, ...] = ()  # tasks that failed (queue retries them, or dead-lettered them)
    infrastructure_errors: tuple[str, ...] = ()
    rounds: int = 0

    @property
    def verified(self) -> int:
        return sum(self.verdicts.values())


def verify_next(res: Resources, verifier: Worker, events: EventSink) -> Outcome | None:
    """One verdict by ``verifier`` (None: nothing it may judge is waiting), announced on ``events``."""
    outcome = verifier.verify_one()
    if outcome is not None and outcome.verdict is not None and outcome.masklet_id is not None:
        try:
            facts = verified_masklet(res.catalog, outcome.masklet_id, outcome.verdict, verifier.name)
            events.emit(masklet_verified(facts, dataset_masklets=dataset_size(res.catalog)))
        except DataEngineError as exc:  # the verdict is recorded; its announcement is best effort
            log.warning("verdict on masklet %s recorded, its event not emitted: %s", outcome.masklet_id, exc)
    return outcome


@task(
    name="verify-masklet",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="verify by {verifier}",
)
def verify_masklet(
    verifier: str,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
    max_refinements: int = verification.MAX_REFINEMENTS,
    seed: int = 0,
    emit_events: bool = True,
) -> Outcome | None:
    """Claim one masklet waiting for a verdict and judge it; None when none was claimable.

    Verifying reads masks and ground truth only: no model is loaded (the source given to the
    worker is never asked), so the task carries no ``gpu`` tag.
    """
    res = resources(catalog_url, object_store_url)
    worker = Worker(
        verifier,
        res.queue,
        res.annotations,
        SimulatedSegmenterSource(),
        Crew(seed=seed),
        max_refinements=max_refinements,
    )
    return verify_next(res, worker, PrefectEventSink() if emit_events else NullEventSink())


@task(
    name="refine-masklet",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="refine by {refiner}",
)
def refine_masklet(
    refiner: str,
    model: str = DEFAULT_MODEL,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
    correction_budget: int | None = None,
    seed: int = 0,
) -> Outcome | None:
    """Claim one unsatisfactory masklet and refine it with Phase 3; None when none was claimable."""
    worker = model_worker(refiner, resources(catalog_url, object_store_url), model, seed=seed, correction_budget=correction_budget)
    return worker.refine_one()


@flow(name="verify", log_prints=False)
def verify(
    verifiers: int = 2,
    model: str = DEFAULT_MODEL,
    task_runner: str = "threads",
    dask_address: str | None = None,
    correction_budget: int | None = None,
    max_refinements: int = verification.MAX_REFINEMENTS,
    seed: int = 0,
    emit_events: bool = True,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> VerifyResult:
    """Verify every masklet waiting for a verdict; refine the unsatisfactory ones and verify them again."""
    logger = get_run_logger()
    collected = work_verification(
        verifiers,
        model,
        task_runner,
        dask_address,
        correction_budget,
        max_refinements,
        seed,
        emit_events,
        catalog_url,
        object_store_url,
    )
    result = _result(collected)
    logger.info(
        "verdicts: %s; refined %d; %d failed",
        ", ".join(f"{k} {v}" for k, v in sorted(result.verdicts.items())) or "none",
        len(result.refined),
        len(result.failed),
    )
    return result


def work_verification(
    verifiers: int = 2,
    model: str = DEFAULT_MODEL,
    task_runner: str = "threads",
    dask_address: str | None = None,
    correction_budget: int | None = None,
    max_refinements: int = verification.MAX_REFINEMENTS,
    seed: int = 0,
    emit_events: bool = True,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> Collected:
    """Rounds of verdicts and refinements until neither queue has claimable work (inside a flow)."""
    res = resources(catalog_url, object_store_url)
    urls = {"catalog_url": catalog_url, "object_store_url": object_store_url}
    refine_step = refine_masklet.with_options(tags=model_tags(model))

    def plan() -> list[Submission]:
        # Verdicts first: a refinement's result waits for one, and the dataset grows sooner.
        waiting = claimable_count(res.catalog, Queue.VERIFY)
        if waiting:
            return [
                Submission(
                    verify_masklet,
                    {
                        "verifier": f"sim-verifier-{i % verifiers + 1}",
                        "max_refinements": max_refinements,
                        "seed": seed,
                        "emit_events": emit_events,
                        **urls,
                    },
                )
                for i in range(waiting)
            ]
        to_refine = claimable_count(res.catalog, Queue.REFINE)
        return [
            Submission(
                refine_step,
                {
                    "refiner": f"sim-refiner-{i % verifiers + 1}",
                    "model": model,
                    "correction_budget": correction_budget,
                    "seed": seed,
                    **urls,
                },
            )
            for i in range(to_refine)
        ]

    total = claimable_count(res.catalog, Queue.VERIFY) + claimable_count(res.catalog, Queue.REFINE)
    try:
        with (
            parallel.task_runner(task_runner, verifiers, dask_address) as runner,
            Progress("verify-progress", "verdicts and refinements", total) as progress,
        ):
            return run_rounds(runner, plan, progress)
    finally:
        release_thread_connections(res)


def _result(collected: Collected) -> VerifyResult:
    outcomes: list[Outcome] = collected.results
    verdicts = Counter(o.verdict.value for o in outcomes if o.ok and o.verdict is not None)
    refined = tuple(o.masklet_id for o in outcomes if o.ok and o.queue is Queue.REFINE and o.masklet_id is not None)
    satisfactory = tuple(
        o.masklet_id for o in outcomes if o.ok and o.verdict is Verdict.SATISFACTORY and o.masklet_id is not None
    )
    failed = tuple(f"task {o.task_id} ({o.queue.value}): {o.error}" for o in outcomes if not o.ok)
    return VerifyResult(
        dict(sorted(verdicts.items())), refined, satisfactory, failed, tuple(collected.failures), collected.rounds
    )
