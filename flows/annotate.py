"""The ``annotate`` flow: one phase over a batch of videos, by simulated annotators or by people.

1. enqueue one annotate task per ground-truth object of the videos (idempotent by phase,
   round, video and object: running the flow again adds nothing);
2. simulated annotators work the phase's queue in parallel, one Prefect task per masklet
   (:func:`annotate_masklet`), each masklet going on to verification as it is submitted;
   or, with ``annotators="people"``, the flow waits for people (the web app) to finish the
   batch's tasks and collects what they produced, up to ``timeout_s``.

Everything the phase does is :mod:`phases.workers`'; this module only schedules it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.queues import TaskStatus, annotate_queue
from engine.segmenters import DEFAULT_MODEL
from flows.models import model_tags, model_worker
from flows import parallel
from flows.parallel import Collected, Submission, run_rounds
from flows.progress import Progress
from flows.resources import release_thread_connections, resources
from flows.retries import retry_transient
from phases.workers import Outcome, enqueue_annotation
from storage.flow_queries import claimable_count, task_states

POLL_S = 5.0  # how often a flow waiting for people looks at the catalog


class Annotators(StrEnum):
    SIMULATED = "simulated"
    PEOPLE = "people"


@dataclass(frozen=True)
class FailedTask:
    task_id: int
    error: str
    will_retry: bool


@dataclass(frozen=True)
class AnnotateResult:
    """What one run of the flow did to its batch."""

    phase: int
    enqueued: tuple[int, ...]  # the batch's queue task ids
    masklet_ids: tuple[int, ...]  # masklets submitted to verification by this run (or collected from people)
    failed: tuple[FailedTask, ...] = ()
    pending: tuple[int, ...] = ()  # tasks still open when the run ended (people mode: at the timeout)
    infrastructure_errors: tuple[str, ...] = ()  # Prefect tasks that failed after their retries

    @property
    def complete(self) -> bool:
        return not self.pending and not self.failed and not self.infrastructure_errors


@task(
    name="enqueue-annotation",
    retries=3,
    retry_delay_seconds=[1, 5, 20],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def enqueue_phase(
    phase: int,
    video_ids: list[str] | None = None,
    annotation_round: int = 1,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> list[int]:
    """One annotate task per ground-truth object of the videos; the ids of the batch's tasks."""
    res = resources(catalog_url, object_store_url)
    tasks = enqueue_annotation(res.queue, res.annotations, phase, video_ids, round_=annotation_round)
    return [t.id for t in tasks]


@task(
    name="annotate-masklet",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="annotate phase {phase} by {annotator}",
)
def annotate_masklet(
    phase: int,
    annotator: str,
    model: str = DEFAULT_MODEL,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
    correction_budget: int | None = None,
    seed: int = 0,
) -> Outcome | None:
    """Claim one task of the phase's queue and annotate its object; None when nothing was claimable.

    No Prefect timeout: it could not interrupt a worker thread, only fail the run after the
    masklet was submitted. The queue's lease bounds the work instead: a worker that stops
    heartbeating loses the task, which goes back to the queue.
    """
    worker = model_worker(annotator, resources(catalog_url, object_store_url), model, seed=seed, correction_budget=correction_budget)
    return worker.annotate_one(phase)


@task(
    name="await-people",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def await_people(
    phase: int,
    task_ids: list[int],
    timeout_s: float,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
    poll_s: float = POLL_S,
) -> AnnotateResult:
    """Wait until people finished (or dead-lettered) every task of the batch, or the timeout passed."""
    res = resources(catalog_url, object_store_url)
    deadline = time.monotonic() + timeout_s
    with Progress("annotate-people-progress", "tasks finished by people", len(task_ids)) as progress:
        while True:
            states = task_states(res.catalog, task_ids)
            finished = [s for s in states if s.finished]
            progress.advance(len(finished) - progress.done)
            if len(finished) == len(states) or time.monotonic() >= deadline:
                break
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    masklets = tuple(
        int(s.result["masklet_id"])
        for s in states
        if s.status is TaskStatus.DONE and s.result and "masklet_id" in s.result
    )
    failed = tuple(
        FailedTask(s.task_id, s.last_error or "dead letter", False) for s in states if s.status is TaskStatus.DEAD
    )
    pending = tuple(s.task_id for s in states if not s.finished)
    return AnnotateResult(phase, tuple(task_ids), masklets, failed, pending)


@flow(name="annotate", log_prints=False)
def annotate(
    phase: int,
    video_ids: list[str] | None = None,
    workers: int = 2,
    model: str = DEFAULT_MODEL,
    annotators: Annotators = Annotators.SIMULATED,
    task_runner: str = "threads",
    dask_address: str | None = None,
    annotation_round: int = 1,
    correction_budget: int | None = None,
    seed: int = 0,
    timeout_s: float = 24 * 3600.0,
    poll_s: float = POLL_S,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> AnnotateResult:
    """Annotate every ground-truth object of the videos (default: all with ground truth) in one phase."""
    annotate_queue(phase)  # an unknown phase fails here, before anything is enqueued
    logger = get_run_logger()
    enqueued = enqueue_phase(phase, video_ids, annotation_round, catalog_url, object_store_url)
    logger.info("phase %s: %d objects in the queue", phase, len(enqueued))
    if Annotators(annotators) is Annotators.PEOPLE:
        result = await_people(phase, enqueued, timeout_s, catalog_url, object_store_url, poll_s)
        if result.pending:
            logger.warning("%d tasks still open after %.0f s; they stay in the queue", len(result.pending), timeout_s)
        return result
    collected = work_phase(
        phase, workers, model, task_runner, dask_address, correction_budget, seed, catalog_url, object_store_url
    )
    result = _result(phase, enqueued, collected, catalog_url, object_store_url)
    logger.info(
        "phase %s: %d masklets sent to verification, %d failed, %d still open",
        phase,
        len(result.masklet_ids),
        len(result.failed),
        len(result.pending),
    )
    return result


def work_phase(
    phase: int,
    workers: int,
    model: str = DEFAULT_MODEL,
    task_runner: str = "threads",
    dask_address: str | None = None,
    correction_budget: int | None = None,
    seed: int = 0,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> Collected:
    """Simulated annotators work the phase's queue until nothing in it is claimable (inside a flow)."""
    res = resources(catalog_url, object_store_url)
    queue = annotate_queue(phase)
    step = annotate_masklet.with_options(tags=model_tags(model))
    names = [f"sim-annotator-{i + 1}" for i in range(workers)]

    def plan() -> list[Submission]:
        count = claimable_count(res.catalog, queue)
        params = dict(
            phase=phase,
            model=model,
            catalog_url=catalog_url,
            object_store_url=object_store_url,
            correction_budget=correction_budget,
            seed=seed,
        )
        return [Submission(step, {**params, "annotator": names[i % workers]}) for i in range(count)]

    total = claimable_count(res.catalog, queue)
    try:
        with (
            parallel.task_runner(task_runner, workers, dask_address) as runner,
            Progress(f"annotate-phase-{phase}-progress", f"phase {phase} masklets", total) as progress,
        ):
            return run_rounds(runner, plan, progress)
    finally:
        release_thread_connections(res)


def _result(
    phase: int, enqueued: list[int], collected: Collected, catalog_url: str | None, object_store_url: str | None
) -> AnnotateResult:
    outcomes: list[Outcome] = collected.results
    masklets = tuple(o.masklet_id for o in outcomes if o.ok and o.masklet_id is not None)
    failed = tuple(FailedTask(o.task_id, o.error or "", o.will_retry) for o in outcomes if not o.ok)
    states = task_states(resources(catalog_url, object_store_url).catalog, enqueued)
    pending = tuple(s.task_id for s in states if not s.finished)
    return AnnotateResult(phase, tuple(enqueued), masklets, failed, pending, tuple(collected.failures))
