"""The ``dataengine`` command as a user runs it: a real process, the embedded defaults, S3 by URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from engine.synthetic import SyntheticSpec, synthesize
from tests.engine.test_ingest import write_mp4

SMALL = SyntheticSpec(width=96, height=64, source_frames=48, objects=2)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli.__main__", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dataengine {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def test_a_new_user_s_session(workdir: Path, tmp_path: Path) -> None:
    """config -> db upgrade -> synthesize -> ingest (twice) -> videos list -> export -> import -> evaluate."""
    assert "catalog_url = 'sqlite:///.dataengine/catalog.db'" in run(["config"], workdir).stdout
    assert "-> 0" in run(["db", "upgrade"], workdir).stdout
    synthesize(tmp_path / "videos", videos=2, seed=3, spec=SMALL)
    first = run(["ingest", str(tmp_path / "videos")], workdir).stdout
    assert "2 ingested" in first and "ground-truth masklets" in first
    assert "2 already present" in run(["ingest", str(tmp_path / "videos")], workdir).stdout
    lines = run(["videos", "list"], workdir).stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["syn0003_0000", "syn0003_0001"]

    out = tmp_path / "sav"
    run(["export-sav", "--out", str(out), "--masklets", "ground-truth"], workdir)
    exported = json.loads((out / "syn0003_0000_manual.json").read_text())
    original = json.loads((tmp_path / "videos" / "syn0003_0000.json").read_text())
    assert exported["masklet"] == original["masklet"]
    assert exported["masklet_id"] == original["masklet_id"]

    parquet = tmp_path / "parquet"
    run(["export-parquet", "--out", str(parquet)], workdir)
    assert (parquet / "masklets.parquet").is_file()


def test_bad_files_are_reported_and_the_rest_ingested(workdir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_mp4(folder / "good.mp4")
    (folder / "bad.mp4").write_text("not a video")
    result = run(["ingest", str(folder)], workdir, check=False)
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "bad.mp4" in result.stdout
    assert "1 ingested" in result.stdout and "1 failed" in result.stdout
    assert run(["videos", "list"], workdir).stdout.startswith("good\t")


def test_errors_are_one_line_not_a_traceback(workdir: Path) -> None:
    result = run(["export-sav", "--out", "x", "no_such_video"], workdir, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = run(["config"], workdir, env={"DATAENGINE_CATALOG_URL": "mysql://nope"}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr


@pytest.mark.postgres
def test_the_catalog_moves_to_postgres_by_url_alone(workdir: Path, tmp_path: Path, postgres_url: str) -> None:
    env = {"DATAENGINE_CATALOG_URL": postgres_url}
    run(["db", "upgrade"], workdir, env)
    write_mp4(tmp_path / "pg_clip.mp4")
    run(["ingest", str(tmp_path / "pg_clip.mp4")], workdir, env)
    assert run(["videos", "list"], workdir, env).stdout.startswith("pg_clip\t")


@pytest.mark.s3
def test_objects_move_to_s3_and_videos_come_from_s3(
    workdir: Path, tmp_path: Path, s3_server: str, s3_bucket: str, s3_admin
) -> None:
    """Frames written to S3 by URL alone; videos ingested from an S3 prefix, ground truth included."""
    synthesize(tmp_path / "videos", videos=1, seed=5, spec=SMALL)
    for name in ("syn0005_0000.mp4", "syn0005_0000.json"):
        s3_admin.upload_file(str(tmp_path / "videos" / name), s3_bucket, f"incoming/{name}")
    env = {
        "DATAENGINE_OBJECT_STORE_URL": f"s3://{s3_bucket}/engine",
        "DATAENGINE_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = run(["ingest", f"s3://{s3_bucket}/incoming"], workdir, env).stdout
    assert "1 ingested" in out and "ground-truth masklets" in out
    keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket, Prefix="engine/")["Contents"]]
    assert "engine/videos/syn0005_0000/frames/00000.jpg" in keys
    assert run(["videos", "list"], workdir, env).stdout.split("\t")[-1].strip() == (
        f"s3://{s3_bucket}/incoming/syn0005_0000.mp4"
    )


@pytest.mark.s3
def test_a_missing_bucket_is_a_clear_error(workdir: Path, tmp_path: Path, s3_server: str) -> None:
    write_mp4(tmp_path / "clip.mp4")
    env = {
        "DATAENGINE_OBJECT_STORE_URL": "s3://no-such-bucket/x",
        "DATAENGINE_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = run(["ingest", str(tmp_path / "clip.mp4")], workdir, env, check=False)
    assert result.returncode != 0
    assert "no-such-bucket" in result.stdout + result.stderr
    assert run(["videos", "list"], workdir, env).stdout == ""


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_the_demo_killed_midway_resumes_without_redoing_work(workdir: Path, stop: str) -> None:
    """A demo killed (SIGKILL) or interrupted (Ctrl-C: SIGINT to its process group) after Phase 1
    leaves a consistent catalog; run again, it finishes."""
    import signal
    import sqlite3
    import time

    args = ["demo", "--videos", "5", "--frames", "24", "--objects", "2", "--model", "simulated", "--out", "out"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENGINE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli.__main__", *args], cwd=workdir, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    state = workdir / "out" / "cycle_state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and "phase-1" in json.loads(state.read_text())["done"]:
            break
        time.sleep(0.2)
    stopped_at = time.monotonic()
    os.killpg(proc.pid, getattr(signal, stop))
    # Ctrl-C: the flow records its crash and the command exits 130 at once (it used to hang for minutes).
    assert proc.wait(timeout=120) == (130 if stop == "SIGINT" else -signal.SIGKILL)
    assert time.monotonic() - stopped_at < 30
    assert "phase-1" in json.loads(state.read_text())["done"]

    result = run(args, workdir)
    assert "paper: SAM 2" in result.stdout and "Phase 3:" in result.stdout
    done = json.loads(state.read_text())["done"]
    assert {"phase-1", "verify-1", "phase-2", "phase-3", "verify-3"} <= set(done)
    with sqlite3.connect(workdir / ".dataengine" / "catalog.db") as db:
        per_object = db.execute(
            "SELECT video_id, object_id, COUNT(*) FROM masklets WHERE source = 'manual' AND status != 'draft' "
            "GROUP BY video_id, object_id"
        ).fetchall()
    # Each object was annotated once, in its phase; refinements could add more, never a redo.
    assert len(per_object) == 5 * 2


def test_the_demo_passes_its_noise_and_retraining_rate_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--noise`` makes the demo's videos noisier (a domain the bootstrap did not train on); ``--retrain-lr`` reaches the rounds."""
    import types

    import engine.synthetic
    import flows.engine_cycle
    from typer.testing import CliRunner

    from flows.cli import app

    seen: dict[str, object] = {}

    def synthesize_recorded(out_dir: Path, videos: int, seed: int, spec: SyntheticSpec) -> list[Path]:
        seen["spec"] = spec
        return [out_dir / f"v{i}.mp4" for i in range(videos)]

    def cycle_recorded(**kwargs: object) -> object:
        seen.update(kwargs)
        return types.SimpleNamespace(table="table", targets=[], rounds=[], exports={})

    monkeypatch.setattr(engine.synthetic, "synthesize", synthesize_recorded)
    monkeypatch.setattr(flows.engine_cycle, "engine_cycle", cycle_recorded)
    out = ["--out", str(tmp_path / "demo")]
    result = CliRunner().invoke(app, ["demo", "--noise", "20", "--retrain-lr", "2e-5", *out])
    assert result.exit_code == 0, result.output
    assert seen["spec"].noise_sigma == 20.0 and seen["retrain_lr"] == 2e-5
    result = CliRunner().invoke(app, ["demo", *out])
    assert result.exit_code == 0, result.output
    assert seen["spec"] == SyntheticSpec(source_frames=48, objects=2, parts=0) and seen["retrain_lr"] is None
    result = CliRunner().invoke(app, ["demo", "--noise", "-1", *out])
    assert result.exit_code != 0 and "--noise" in result.output


def test_synthesize_passes_its_noise_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``synthesize --noise`` writes videos at another sensor noise (the demo's ``--noise``, for the step-by-step commands)."""
    from typer.testing import CliRunner

    import flows.cli.synthesize_cmd
    from engine.synthetic import DEFAULT_SPEC
    from flows.cli import app

    seen: list[SyntheticSpec] = []
    monkeypatch.setattr(flows.cli.synthesize_cmd, "synthesize", lambda out, videos, seed, spec, on_video: seen.append(spec))
    out = ["--out", str(tmp_path / "videos")]
    assert CliRunner().invoke(app, ["synthesize", "--noise", "20", *out]).exit_code == 0
    assert CliRunner().invoke(app, ["synthesize", *out]).exit_code == 0
    assert seen == [replace(DEFAULT_SPEC, noise_sigma=20.0), DEFAULT_SPEC]
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["synthesize", "--noise", "-1", "--videos", "1", *out])
    assert result.exit_code == 2 and "noise_sigma must not be negative" in result.output


def test_validation_videos_are_reserved_from_the_command_line(workdir: Path, tmp_path: Path) -> None:
    """``videos reserve-validation`` by id and by fraction; the split shows in ``videos list``; bad requests change nothing."""
    synthesize(tmp_path / "videos", videos=4, seed=3, spec=SMALL)
    run(["ingest", str(tmp_path / "videos")], workdir)

    def splits() -> dict[str, str]:
        lines = run(["videos", "list"], workdir).stdout.splitlines()
        return {line.split("\t")[0]: line.split("\t")[4] for line in lines}

    by_id = run(["videos", "reserve-validation", "syn0003_0002"], workdir)
    assert by_id.stdout.split() == ["syn0003_0002"] and "1 in the 'val' split" in by_id.stderr
    assert [v for v, split in splits().items() if split == "val"] == ["syn0003_0002"]

    unknown = run(["videos", "reserve-validation", "syn0003_0000", "nope"], workdir, check=False)
    assert unknown.returncode == 2 and "nope" in unknown.stderr and "Traceback" not in unknown.stderr
    both = run(["videos", "reserve-validation", "syn0003_0000", "--fraction", "0.5"], workdir, check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr
    assert list(splits().values()).count("val") == 1

    by_fraction = run(["videos", "reserve-validation", "--fraction", "0.5"], workdir)
    assert len(by_fraction.stdout.split()) == 1 and "2 in the 'val' split" in by_fraction.stderr
    again = run(["videos", "reserve-validation", "--fraction", "0.5"], workdir)
    assert again.stdout == "" and "reserved 0 video(s)" in again.stderr
    assert list(splits().values()).count("val") == 2
