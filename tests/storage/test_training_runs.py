"""Training runs in the catalog, on both backends: started once, finished once, never rewritten."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import BadModelRefError, NotFoundError, TrainingRunError
from engine.training_data import RunStatus
from storage.catalog import Catalog
from storage.model_registry import SqlModelRegistry
from storage.objects import LocalObjectStore
from storage.training_runs import SqlTrainingRuns

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def runs(catalog: Catalog) -> SqlTrainingRuns:
    return SqlTrainingRuns(catalog, clock=Clock())


def test_a_run_is_recorded_running_with_its_config_and_dataset_then_succeeds(runs: SqlTrainingRuns) -> None:
    dataset = {"format": "dataengine.dataset/1", "training": [{"video_id": "v1", "masklets": [1, 2]}]}
    run = runs.start("sam2-compact", {"steps": 100, "lr": 5e-5, "resume": None}, dataset)
    assert run.status is RunStatus.RUNNING and run.finished_at is None and run.error is None
    assert runs.get(run.id).config == {"steps": 100, "lr": 5e-5, "resume": None}
    assert runs.get(run.id).dataset == dataset

    done = runs.succeed(run.id)
    assert done.status is RunStatus.SUCCEEDED and done.finished_at > done.started_at and done.error is None
    assert runs.get(run.id) == done


def test_a_failed_run_keeps_its_error_and_neither_outcome_can_be_rewritten(runs: SqlTrainingRuns) -> None:
    run = runs.start("sam2-compact", {}, {})
    failed = runs.fail(run.id, "CUDA out of memory at step 412\nTraceback ...")
    assert failed.status is RunStatus.FAILED and failed.error.startswith("CUDA out of memory")
    with pytest.raises(TrainingRunError, match="already ended failed"):
        runs.succeed(run.id)
    with pytest.raises(TrainingRunError, match="already ended failed"):
        runs.fail(run.id, "again")
    assert runs.get(run.id) == failed

    other = runs.start("sam2-compact", {}, {})
    with pytest.raises(TrainingRunError, match="why"):
        runs.fail(other.id, "  ")
    assert runs.get(other.id).status is RunStatus.RUNNING


def test_two_processes_finishing_the_same_run_cannot_both_win(catalog: Catalog) -> None:
    runs = SqlTrainingRuns(catalog)
    run = runs.start("sam2-compact", {}, {})
    outcomes: list[str] = []

    def finish(succeed: bool) -> None:
        try:
            (runs.succeed(run.id) if succeed else runs.fail(run.id, "killed"))
            outcomes.append("won")
        except TrainingRunError:
            outcomes.append("refused")

    threads = [threading.Thread(target=finish, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["won"]


def test_bad_input_is_refused_and_records_nothing(runs: SqlTrainingRuns) -> None:
    with pytest.raises(TrainingRunError, match="config does not serialise"):
        runs.start("sam2-compact", {"lr": float("nan")}, {})
    with pytest.raises(TrainingRunError, match="dataset does not serialise"):
        runs.start("sam2-compact", {}, {"when": datetime.now()})
    with pytest.raises(BadModelRefError):
        runs.start("not a name", {}, {})
    with pytest.raises(NotFoundError):
        runs.get(999)
    with pytest.raises(NotFoundError):
        runs.succeed(999)
    assert runs.list() == []


def test_runs_are_listed_oldest_first_per_model_and_versions_point_at_them(
    runs: SqlTrainingRuns, catalog: Catalog, tmp_path: Path
) -> None:
    a = runs.start("sam2-compact", {}, {})
    b = runs.start("facebook/sam2.1-hiera-tiny", {}, {})
    c = runs.start("sam2-compact", {}, {})
    assert [r.id for r in runs.list()] == [a.id, b.id, c.id]
    assert [r.id for r in runs.list("sam2-compact")] == [a.id, c.id]

    registry = SqlModelRegistry(catalog, LocalObjectStore(tmp_path / "objects"), tmp_path / "cache")
    version = registry.register("sam2-compact", {"model_type": "sam2_video"}, None, training_run_id=c.id)
    assert runs.get(version.training_run_id).id == c.id
