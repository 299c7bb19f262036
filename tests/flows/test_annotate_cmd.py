"""``dataengine annotate``, ``verify`` and ``metrics`` as a user runs them, on the embedded catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.synthetic import SyntheticSpec, synthesize
from flows.cli import annotate_cmd, ingest_cmd

SMALL = SyntheticSpec(width=64, height=48, source_frames=32, objects=2, parts=0)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("DATAENGINE_CATALOG_URL", "DATAENGINE_OBJECT_STORE_URL", "DATAENGINE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATAENGINE_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("DATAENGINE_OBJECT_STORE_URL", f"file://{tmp_path / 'objects'}")
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    app = typer.Typer()
    ingest_cmd.register(app)
    annotate_cmd.register(app)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result

    return run


def test_annotate_verify_and_read_the_metrics(cli, tmp_path: Path) -> None:
    synthesize(tmp_path / "videos", 1, seed=4, spec=SMALL)
    cli("ingest", str(tmp_path / "videos"))
    annotated = cli("annotate", "--phase", "1", "--annotators", "2", "--model", "simulated")
    assert "phase 1: 2 objects in the queue" in annotated.output
    assert "2 masklets annotated and sent to verification" in annotated.output
    assert "verdicts: satisfactory 2" in cli("verify", "--model", "simulated").output

    records = json.loads(cli("metrics", "--format", "json").output)
    (phase1,) = records
    assert phase1["phase"] == 1 and phase1["masklets"] == 2 and phase1["edited_frame_pct"] == 100.0
    assert phase1["seconds_per_frame"] > 0 and phase1["clicks_per_clicked_frame"] >= 1 and phase1["jf"] > 0.9
    assert phase1["verdicts"] == {"satisfactory": 2}
    assert "paper: SAM only" in cli("metrics").output


def test_bad_requests_are_one_clear_line(cli) -> None:
    assert "no annotated masklets yet" in cli("metrics").output
    missing = cli("annotate", "--phase", "2", "no-such-video", "--model", "simulated", code=2)
    assert "no video 'no-such-video'" in missing.output
    cli("annotate", "--phase", "4", code=2)
    cli("metrics", "--format", "yaml", code=2)
