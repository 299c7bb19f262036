"""Which task runner a flow parameter names, and what it refuses."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from engine.errors import ConfigError
from flows.parallel import task_runner


def test_threads_by_default_one_per_worker() -> None:
    runner = task_runner("threads", 3)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3


def test_processes_one_per_worker() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        runner = task_runner("processes", 3)
    assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 3


def test_dask_on_a_cluster_or_a_local_one_of_single_threaded_processes() -> None:
    from prefect_dask import DaskTaskRunner

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        remote = task_runner("dask", 2, "tcp://10.0.0.5:8786")
        local = task_runner("dask", 4)
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    assert local.cluster_kwargs == {"n_workers": 4, "threads_per_worker": 1, "processes": True}


def test_what_cannot_work_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="'fibers' is none of 'threads', 'processes', 'dask'"):
        task_runner("fibers", 2)
    with pytest.raises(ConfigError, match="at least one worker"):
        task_runner("threads", 0)
    with pytest.raises(ConfigError, match="dask_address is for task_runner='dask'"):
        task_runner("threads", 2, "tcp://127.0.0.1:8786")
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError, match="PREFECT_API_URL"):
        task_runner("dask", 2)  # Dask's processes cannot reach a temporary in-process API
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError, match="'processes' runs"):
        task_runner("processes", 2)  # nor can a process pool's
