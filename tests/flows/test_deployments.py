"""``prefect.yaml`` as users run it: a real Prefect server on loopback, ``prefect deploy``, process workers.

The fast test reads the file and checks every deployment against the flows it names. The
slow one does what the docs say: start a server, create the ``cpu`` and ``gpu`` pools and the
``gpu`` tag concurrency limit, ``prefect deploy --all`` from the repository root (the file as
it is), start a process worker, run the report deployment and see it complete; then it
deploys a copy of the retrain deployment with its event trigger at a lower threshold and
checks that ``dataengine.masklet.verified`` events, as our event sink emits them, start a
retrain run only once enough satisfactory ones arrived, and that the run completes on a
``gpu`` worker.
"""

from __future__ import annotations

import copy
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from training.policy import DEFAULT_THRESHOLD

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
OURS = {  # every deployment: flow/deployment -> entrypoint
    "ingest/hourly": "flows/ingest.py:ingest",
    "annotate/simulated": "flows/annotate.py:annotate",
    "annotate/people": "flows/annotate.py:annotate",
    "auto-masklets/nightly": "flows/auto_masklets.py:auto_masklets",
    "verify/simulated": "flows/verify.py:verify",
    "report/every-15-minutes": "flows/report.py:report",
    "retrain/nightly": "flows/retrain.py:retrain",
    "engine-cycle/demo": "flows/engine_cycle.py:engine_cycle",
}


def deployments() -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]


def by_name() -> dict[str, dict[str, Any]]:
    return {f"{d['entrypoint'].rsplit(':', 1)[1].replace('_', '-')}/{d['name']}": d for d in deployments()}


def test_prefect_yaml_deploys_every_flow_with_schedules_pools_and_the_retrain_trigger() -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.utilities.importtools import import_object

    found = by_name()
    assert {k: v["entrypoint"] for k, v in found.items()} == OURS
    assert {d["work_pool"]["name"] for d in found.values()} == {"cpu", "gpu"}
    assert found["ingest/hourly"]["schedules"] == [{"cron": "0 * * * *", "timezone": "UTC"}]
    assert found["auto-masklets/nightly"]["schedules"][0]["cron"].endswith("* * *")
    assert found["retrain/nightly"]["schedules"][0]["cron"].endswith("* * *")
    assert found["report/every-15-minutes"]["schedules"] == [{"interval": 900}]

    (trigger,) = found["retrain/nightly"]["triggers"]
    parsed = DeploymentEventTrigger.model_validate(trigger)
    assert parsed.expect == {"dataengine.masklet.verified"} and parsed.threshold >= 10
    assert parsed.threshold == DEFAULT_THRESHOLD  # the retrain flow's own default, one number
    assert parsed.match.root["dataengine.verdict"] == "satisfactory"
    assert f" {parsed.threshold} masklets" in found["retrain/nightly"]["description"]  # what it says is what it does

    # Model-bound work goes to the gpu pool, and every deployment is tagged for filtering in the UI.
    gpu_bound = {"annotate/simulated", "auto-masklets/nightly", "verify/simulated", "retrain/nightly", "engine-cycle/demo"}
    assert {name for name, d in found.items() if d["work_pool"]["name"] == "gpu"} == gpu_bound
    assert all("dataengine" in d["tags"] and name.split("/")[0] in d["tags"] for name, d in found.items())

    for name, entrypoint in OURS.items():  # parameters a flow does not take would fail its runs
        flow = import_object(str(REPO / entrypoint))
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(found[name].get("parameters", {})) <= accepted, name
        assert flow.name == name.split("/")[0]


# --- a real server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own session, stopped (its whole group) at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                continue


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_for(check, timeout: float, what: str, every: float = 1.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


EMIT = """
import sys
from engine.events import VerifiedMasklet, masklet_verified
from engine.queues import Verdict
from flows.events import PrefectEventSink
from prefect.events.worker import EventsWorker

sink = PrefectEventSink()
for number, line in enumerate(sys.stdin):  # one batch of verdicts a line; an empty line ends
    if not line.strip():
        break
    for i, verdict in enumerate(line.split()):
        masklet = VerifiedMasklet(100 * number + i, "vid", i, "manual", 3, 8, 2, Verdict(verdict), "sim-verifier-1")
        sink.emit(masklet_verified(masklet, dataset_masklets=i))
    EventsWorker.drain_all()
    print("sent", flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deploy_run_on_a_process_worker_and_trigger_on_events(tmp_path: Path) -> None:
    from prefect.workers.process import ProcessWorker

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # no scheduled runs: only the ones we start
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "DATAENGINE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "DATAENGINE_OBJECT_STORE_URL": f"file://{tmp_path / 'objects'}",
        "DATAENGINE_CONFIG": str(tmp_path / "none.toml"),
    }
    http = httpx.Client(base_url=api, timeout=30)

    def healthy() -> bool:
        try:
            return http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    # Beside the repository's deployments: a copy of the retrain deployment with its trigger at a
    # threshold of three and no schedule (the real one waits for 250 verdicts).
    trigger_check = copy.deepcopy(by_name()["retrain/nightly"])
    trigger_check.pop("schedules", None)
    trigger_check["name"] = "trigger-check"
    trigger_check["triggers"][0].update(threshold=3, within=600)
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deploy_file = tmp_path / "prefect.yaml"
    deploy_file.write_text(yaml.safe_dump({"name": project["name"], "deployments": [trigger_check]}))

    server_cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(server_cmd, env, tmp_path / "server.log"):
        wait_for(healthy, 120, "the Prefect server")
        template = ProcessWorker.get_default_base_job_template()
        for pool in ("cpu", "gpu"):  # what `prefect work-pool create NAME --type process` does
            created = http.post("/work_pools/", json={"name": pool, "type": "process", "base_job_template": template})
            assert created.status_code == 201, created.text
        run([PREFECT, "--no-prompt", "concurrency-limit", "create", "gpu", "1"], env)
        assert http.get("/concurrency_limits/tag/gpu").json()["concurrency_limit"] == 1
        run([PREFECT, "--no-prompt", "deploy", "--all"], env)  # from the repository root, as the docs say
        run([PREFECT, "--no-prompt", "deploy", "--prefect-file", str(deploy_file), "--all"], env)

        deployed = {(d["name"], d["entrypoint"]) for d in http.post("/deployments/filter", json={}).json()}
        assert deployed == {(d["name"], d["entrypoint"]) for d in [*deployments(), trigger_check]}
        automations = http.post("/automations/filter", json={}).json()
        thresholds = sorted(a["trigger"]["threshold"] for a in automations)
        assert thresholds == [3, by_name()["retrain/nightly"]["triggers"][0]["threshold"]]  # the real trigger too

        worker_cmd = [PREFECT, "worker", "start", "--pool", "cpu", "--type", "process", "--limit", "2"]
        with background(worker_cmd, env, tmp_path / "worker.log"):
            report = http.get("/deployments/name/report/every-15-minutes").json()
            out = tmp_path / "report"
            flow_run = http.post(
                f"/deployments/{report['id']}/create_flow_run", json={"parameters": {"out_dir": str(out)}}
            ).json()

            def finished() -> dict[str, Any] | None:
                state = http.get(f"/flow_runs/{flow_run['id']}").json()["state"]
                return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

            state = wait_for(finished, 180, "the report flow run")
            assert state["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            assert (out / "dashboard.html").is_file() and (out / "phase_metrics.parquet").is_file()

        triggered = http.get("/deployments/name/retrain/trigger-check").json()

        def runs_of_trigger_check() -> list[dict[str, Any]]:
            return http.post("/flow_runs/filter", json={"deployments": {"id": {"any_": [triggered["id"]]}}}).json()

        emitter = subprocess.Popen(
            [sys.executable, "-c", EMIT], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert emitter.stdin is not None and emitter.stdout is not None
            emitter.stdin.write("satisfactory unsatisfactory rejected satisfactory\n")
            emitter.stdin.flush()
            assert emitter.stdout.readline().strip() == "sent"
            time.sleep(3)
            assert runs_of_trigger_check() == []  # two satisfactory verdicts: below the threshold
            emitter.stdin.write("satisfactory\n\n")
            emitter.stdin.flush()
            assert emitter.stdout.readline().strip() == "sent"
        finally:
            emitter.communicate(timeout=60)
        (started,) = wait_for(runs_of_trigger_check, 60, "the trigger to start a retrain run")

        # The retrain run goes to the gpu pool; a worker there runs it: the policy finds no new
        # masklets in this empty catalog, says so, and the run completes without training.
        gpu_worker = [PREFECT, "worker", "start", "--pool", "gpu", "--type", "process", "--limit", "1"]
        with background(gpu_worker, env, tmp_path / "gpu-worker.log"):

            def retrain_finished() -> dict[str, Any] | None:
                state = http.get(f"/flow_runs/{started['id']}").json()["state"]
                return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

            state = wait_for(retrain_finished, 180, "the triggered retrain run")
            assert state["type"] == "COMPLETED", (tmp_path / "gpu-worker.log").read_text()[-3000:]
        said = http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [started["id"]]}}}).json()
        assert any("not due" in str(a.get("data")) and "nothing is new" in str(a.get("data")) for a in said), said
