"""The engine cycle and the retrain flow under Prefect's test harness, and the demo in a reduced size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.synthetic import synthesize
from flows.engine_cycle import STATE_FILE, CycleState, check_rounds, engine_cycle, plan_cycle
from flows.resources import close_resources, resources
from flows.retrain import retrain
from storage.schema import MaskletRow
from tests.flows.conftest import TINY

pytestmark = pytest.mark.usefixtures("prefect_harness")
REPO = Path(__file__).resolve().parents[2]


def test_plan_gives_validation_first_and_three_batches() -> None:
    plan = plan_cycle([f"v{i}" for i in range(8, 0, -1)], validation_videos=2)
    assert plan.validation == ("v1", "v2")
    assert plan.phase1 + plan.phase2 + plan.phase3 == tuple(f"v{i}" for i in range(3, 9))
    assert all(plan.phase1) and all(plan.phase2) and all(plan.phase3)
    with pytest.raises(ValueError, match="at least 5 videos"):
        plan_cycle(["a", "b", "c", "d"], validation_videos=2)


def _round(after_phase: int, low: float | None, high: float | None = 0.05) -> dict:
    return {"after_phase": after_phase, "val_gain": None if low is None else (low + (high or 0)) / 2,
            "val_gain_low": low, "val_gain_high": high, "val_gain_videos": None if low is None else 8}


def test_the_retraining_target_counts_only_rises_whose_interval_is_above_zero() -> None:
    every = check_rounds([_round(1, 0.01), _round(2, 0.002), _round(3, 0.03)])
    assert every is not None and every.startswith("Retraining: 3 of 3 rounds a measured rise") and every.endswith(": met")
    # a higher score within noise, a fall, a round without an interval (one validation video), a NaN
    some = check_rounds([_round(1, 0.02), _round(2, -0.01, 0.04), _round(3, -0.05, -0.01), _round(4, None),
                         _round(5, float("nan"))])
    assert some == (
        "Retraining: 1 of 5 rounds a measured rise of validation J&F, after Phase 1 "
        "(target: every round; gains below): missed by 4 rounds"
    )
    one = check_rounds([_round(1, -0.01), _round(2, 0.01)])
    assert one is not None and one.endswith("after Phase 2 (target: every round; gains below): missed by 1 round")
    assert check_rounds([]) is None  # the simulated model is not trained: no target to check


def _annotated(catalog_url: str, object_store_url: str) -> int:
    with resources(catalog_url, object_store_url).catalog.read() as session:
        return session.scalar(select(func.count()).select_from(MaskletRow).where(MaskletRow.source != "ground_truth"))


def test_cycle_runs_every_phase_then_resumes_without_redoing_work(tmp_path: Path) -> None:
    paths = synthesize(tmp_path / "videos", 5, seed=11, spec=TINY)
    urls = {"catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}", "object_store_url": f"file://{tmp_path / 'objects'}"}
    out = tmp_path / "cycle"
    try:
        result = engine_cycle(sources=[str(p) for p in paths], model="simulated", out_dir=str(out), **urls)
        for phase in (1, 2, 3):
            assert f"Phase {phase}" in result.table
        state = CycleState.load(out / STATE_FILE)
        assert {"phase-1", "phase-2", "phase-3", "verify-3", "auto-masklets"} <= set(state.done)
        assert int(result.exports["sav_files"]) >= 5 and (out / "report" / "dashboard.html").exists()
        parquet = sorted((out / "export" / "parquet").glob("*.parquet"))
        assert len(parquet) == int(result.exports["parquet_tables"]) > 0
        assert {"masklets.parquet", "videos.parquet"} <= {p.name for p in parquet}
        assert any("Phase 3" in line for line in result.targets)
        assert not any(line.startswith("Retraining") for line in result.targets)  # simulated: no rounds
        made = _annotated(**urls)
        assert made >= 10  # 5 videos x 2 objects, plus auto masklets and refinements

        again = engine_cycle(sources=[str(p) for p in paths], model="simulated", out_dir=str(out), **urls)
        assert _annotated(**urls) == made  # nothing redone
        assert again.plan == result.plan
    finally:
        close_resources()


def test_retrain_flow_says_why_it_did_not_run(tmp_path: Path) -> None:
    urls = {"catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}", "object_store_url": f"file://{tmp_path / 'objects'}"}
    try:
        report = retrain(threshold=5, schedule_every_hours=None, **urls)
    finally:
        close_resources()
    assert not report.retrained and report.version is None
    assert report.reason  # the policy's sentence


@pytest.mark.slow
def test_the_retrain_flow_trains_when_enough_is_new_and_announces_the_promotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy's path a trigger takes (not forced): due on new satisfactory masklets, trained, promoted, announced."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.annotate import annotate
    from flows.engine_cycle import reserve_validation
    from flows.verify import verify
    from tests.flows.conftest import make_small_engine

    monkeypatch.setenv("DATAENGINE_MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.setenv("DATAENGINE_TORCH_THREADS", "1")
    started = time.time()
    engine = make_small_engine(tmp_path, videos=2, seed=12)
    try:
        reserve_validation.fn(engine.video_ids[:1], **engine.urls)
        annotate(phase=1, workers=1, model="simulated", **engine.urls)
        assert verify(verifiers=1, model="simulated", **engine.urls).verified == 4

        report = retrain(steps=2, threshold=2, schedule_every_hours=None, work_dir=str(tmp_path / "runs"), **engine.urls)
        assert report.retrained and report.reason.startswith("2 new satisfactory masklet(s)"), report
        assert report.version == "sam2-compact@1" and report.val_jf_before is not None and report.val_jf_after is not None
        # Two steps at the fine-tuning rate move validation J&F by less than the gate's margin (0.01),
        # and the first version of a model is judged against its unregistered starting point: promoted.
        assert report.promoted and abs(report.val_jf_after - report.val_jf_before) < 0.01, report
        deadline, seen = time.monotonic() + 30, []
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline and not seen:
                events = client.read_events(EventFilter(event=EventNameFilter(name=["dataengine.model.promoted"])), limit=50)
                seen = [e for e in events.events if e.payload.get("ref") == report.version and e.occurred.timestamp() > started]
                time.sleep(0.5)
        assert seen, "no dataengine.model.promoted event for the promoted version"
        assert seen[0].resource.id == "dataengine.model.sam2-compact"

        again = retrain(steps=2, threshold=2, schedule_every_hours=None, **engine.urls)
        assert not again.retrained and again.reason.startswith("0 new satisfactory masklet(s)")  # counted from the round
    finally:
        close_resources()


@pytest.mark.slow
def test_demo_in_a_reduced_size_runs_the_real_model_and_retrains(tmp_path: Path) -> None:
    """``dataengine demo`` end to end with sam2-compact: phases, three retraining rounds, table."""
    env = {
        **os.environ,
        "DATAENGINE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "DATAENGINE_OBJECT_STORE_URL": f"file://{tmp_path / 'objects'}",
        "DATAENGINE_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "DATAENGINE_TORCH_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "flows.cli", "demo", "--videos", "5", "--validation-videos", "1", "--frames", "24",
        "--objects", "1", "--retrain-steps", "2", "--no-auto", "--out", str(tmp_path / "demo"),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "paper: SAM 2" in done.stdout and "Phase 3:" in done.stdout
    assert done.stdout.count("retrain after Phase") == 3
    state = json.loads((tmp_path / "demo" / STATE_FILE).read_text())
    assert [r["after_phase"] for r in state["rounds"]] == [1, 2, 3]
    assert all(r["retrained"] and r["version"] for r in state["rounds"])
    # one validation video: no interval, so no gain is claimed either way
    assert all(r["val_gain"] is None for r in state["rounds"]) and "gain - (" in done.stdout
    assert "Retraining: 0 of 3 rounds a measured rise of validation J&F" in done.stdout



@pytest.mark.slow
def test_the_demo_runs_a_hub_model_from_the_local_cache(tmp_path: Path) -> None:
    """``dataengine demo --model facebook/sam2.1-hiera-tiny`` where its weights were downloaded.

    No weights can be downloaded here, so the cache holds the bundled checkpoint under the hub
    name (what ``hf download`` lays out); the engine cannot tell, and runs, retrains and registers it.
    """
    import shutil

    name, revision = "facebook/sam2.1-hiera-tiny", "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / ("models--" + name.replace("/", "--"))
    shutil.copytree(REPO / "engine" / "weights" / "sam2-compact", repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    env = {
        **os.environ,
        "DATAENGINE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "DATAENGINE_OBJECT_STORE_URL": f"file://{tmp_path / 'objects'}",
        "DATAENGINE_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "DATAENGINE_TORCH_THREADS": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        sys.executable, "-m", "flows.cli", "demo", "--videos", "5", "--validation-videos", "1", "--frames", "24",
        "--objects", "1", "--retrain-steps", "2", "--no-auto", "--model", name, "--out", str(tmp_path / "demo"),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "paper: SAM 2" in done.stdout and "Phase 3:" in done.stdout
    state = json.loads((tmp_path / "demo" / STATE_FILE).read_text())
    assert [r["version"] for r in state["rounds"]] == [f"{name}@{i}" for i in (1, 2, 3)]
    # Phase 1 ran on the cached model (a round needs its satisfactory masklets), later phases on the rounds'
    phase1 = next(line for line in done.stdout.splitlines() if line.startswith("Phase 1 "))
    assert "satisfactory 3" in phase1  # the validation video and Phase 1's two, one object each
