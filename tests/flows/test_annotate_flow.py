"""The annotate flow under Prefect's test harness: simulated crews on threads, processes and Dask, people, retries."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
from sqlalchemy import select

from engine.errors import CatalogError
from engine.queues import Queue
from engine.simulated_segmenter import SimulatedSegmenterSource
from flows import annotate as annotate_module
from flows import models as models_module
from flows.annotate import annotate
from flows.resources import close_resources
from phases.workers import Worker, drain
from storage.schema import MaskletRow
from tests.flows.conftest import SmallEngine, make_small_engine_at

pytestmark = pytest.mark.usefixtures("prefect_harness")


def manual_masklets(engine: SmallEngine) -> list[tuple[int, str, int | None, str | None]]:
    with engine.res.catalog.read() as session:
        rows = session.execute(
            select(MaskletRow.id, MaskletRow.status, MaskletRow.phase, MaskletRow.annotator)
            .where(MaskletRow.source == "manual")
            .order_by(MaskletRow.id)
        )
        return [tuple(r) for r in rows]


def test_simulated_annotators_work_a_phase_on_threads(small_engine: SmallEngine) -> None:
    result = annotate(phase=1, workers=2, model="simulated", **small_engine.urls)

    assert len(result.enqueued) == 2 and len(result.masklet_ids) == 2 and result.complete
    rows = manual_masklets(small_engine)
    assert sorted(r[0] for r in rows) == sorted(result.masklet_ids)
    assert {(r[1], r[2]) for r in rows} == {("in_verification", 1)}  # submitted, waiting for a verdict
    assert {r[3] for r in rows} <= {"sim-annotator-1", "sim-annotator-2"}
    assert {s.queue: s.ready for s in small_engine.res.queue.stats()}[Queue.VERIFY] == 2

    again = annotate(phase=1, workers=2, model="simulated", **small_engine.urls)
    assert again.enqueued == result.enqueued and again.masklet_ids == ()  # idempotent: nothing twice
    assert len(manual_masklets(small_engine)) == 2

    with get_client(sync_client=True) as client:
        (progress,) = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["annotate-phase-1-progress"]))
        )
    assert progress.type == "progress" and float(progress.data) == 100.0


def test_a_new_round_and_a_dask_cluster(small_engine: SmallEngine) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        result = annotate(
            phase=3,
            workers=2,
            model="simulated",
            task_runner="dask",
            dask_address=cluster.scheduler_address,
            **small_engine.urls,
        )
    assert len(result.masklet_ids) == 2 and result.complete
    assert {r[2] for r in manual_masklets(small_engine)} == {3}


def test_a_process_pool_works_a_phase(small_engine: SmallEngine) -> None:
    """Each annotate-masklet task runs in a process of its own, opening the catalog by URL."""
    result = annotate(phase=2, workers=2, model="simulated", task_runner="processes", **small_engine.urls)
    assert len(result.masklet_ids) == 2 and result.complete and not result.failed
    assert {r[2] for r in manual_masklets(small_engine)} == {2}


def test_model_bound_tasks_carry_the_gpu_tag_only_with_a_real_model(small_engine: SmallEngine) -> None:
    """A ``gpu`` tag concurrency limit bounds the tasks that run a model, and never a simulation."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    def tags_of_run(state) -> dict[str, set[str]]:  # noqa: ANN001
        """Tags by task of a flow run, once its task runs are recorded (they reach the server as events)."""
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all()
        wanted = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        deadline, tags = time.monotonic() + 30, {}
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline and not {"enqueue_phase", "annotate_masklet"} <= tags.keys():
                runs = client.read_task_runs(task_run_filter=wanted)
                tags = {r.task_key.rsplit("-", 1)[0].rsplit(".", 1)[-1]: set(r.tags) for r in runs}
                time.sleep(0.2)
        assert {"enqueue_phase", "annotate_masklet"} <= tags.keys(), tags
        return tags

    real = annotate(phase=1, workers=1, model="sam2-compact", return_state=True, **small_engine.urls)
    assert real.is_completed() and len(real.result().masklet_ids) == 2
    tags = tags_of_run(real)
    assert tags["annotate_masklet"] == {"gpu"}
    assert "gpu" not in set().union(*(t for name, t in tags.items() if name != "annotate_masklet"))

    simulated = annotate(phase=2, workers=1, model="simulated", return_state=True, **small_engine.urls)
    assert simulated.is_completed() and set().union(*tags_of_run(simulated).values()) == set()


def test_people_are_waited_for_and_their_masklets_collected(small_engine: SmallEngine) -> None:
    res = small_engine.res

    def person() -> None:
        # A person opens the web app once there is work: wait for the flow to enqueue it (its
        # start takes seconds on a loaded machine), then work the queue dry.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if {s.queue: s.ready for s in res.queue.stats()}.get(Queue.ANNOTATE_PHASE_2, 0) >= 2:
                break
            time.sleep(0.1)
        drain(lambda: Worker("alice", res.queue, res.annotations, SimulatedSegmenterSource()).annotate_one(2))

    helper = threading.Thread(target=person)
    helper.start()
    try:
        result = annotate(phase=2, annotators="people", timeout_s=60, poll_s=0.2, **small_engine.urls)
    finally:
        helper.join()
    assert len(result.masklet_ids) == 2 and result.pending == () and result.complete
    assert {r[3] for r in manual_masklets(small_engine)} == {"alice"}


def test_waiting_for_people_ends_at_the_timeout(small_engine: SmallEngine) -> None:
    started = time.monotonic()
    result = annotate(phase=1, annotators="people", timeout_s=0.5, poll_s=0.1, **small_engine.urls)
    assert time.monotonic() - started < 30
    assert sorted(result.pending) == sorted(result.enqueued) and len(result.enqueued) == 2
    assert result.masklet_ids == () and not result.complete


def test_a_failed_task_is_retried_by_prefect(small_engine: SmallEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = {"left": 1}
    real_worker = models_module.Worker

    class FlakyWorker(real_worker):  # type: ignore[misc,valid-type]
        def annotate_one(self, phase: int):  # noqa: ANN201
            if failures["left"]:
                failures["left"] -= 1
                raise CatalogError("catalog sqlite:///x: connection reset (simulated outage)")
            return super().annotate_one(phase)

    monkeypatch.setattr(models_module, "Worker", FlakyWorker)
    monkeypatch.setattr(
        annotate_module, "annotate_masklet", annotate_module.annotate_masklet.with_options(retry_delay_seconds=0)
    )
    state = annotate(phase=1, workers=1, model="simulated", return_state=True, **small_engine.urls)
    result = state.result()

    assert failures["left"] == 0 and len(result.masklet_ids) == 2 and result.complete
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    annotate_runs = [r for r in runs if r.name.startswith("annotate phase 1")]
    assert max(r.run_count for r in annotate_runs) == 2  # the flaky one ran twice
    assert all(r.state.is_completed() for r in annotate_runs)


def test_an_unknown_phase_is_refused_before_anything_is_enqueued(small_engine: SmallEngine) -> None:
    state = annotate(phase=4, model="simulated", return_state=True, **small_engine.urls)
    assert state.is_failed() and "no annotation phase 4" in str(state.message)
    assert small_engine.res.queue.list_tasks() == []


@pytest.mark.postgres
def test_flow_after_flow_on_postgresql(migrated_postgres_url: str, tmp_path) -> None:  # noqa: ANN001
    """Each flow's threads end with it; the connections the queue kept for them must not pile up.

    On PostgreSQL the queue keeps a connection per thread; left to the garbage collector,
    those of finished flows would exhaust its small pool within a few runs in one process.
    """
    engine = make_small_engine_at(tmp_path, migrated_postgres_url, videos=3)
    gc.disable()  # so nothing but the flow's own clean-up can give the connections back
    try:
        for annotation_round in (1, 2, 3):
            result = annotate(phase=3, workers=4, model="simulated", annotation_round=annotation_round, **engine.urls)
            assert len(result.masklet_ids) == 6 and result.complete
            assert engine.res.queue.engine.pool.checkedout() == 0
    finally:
        gc.enable()
        close_resources()
