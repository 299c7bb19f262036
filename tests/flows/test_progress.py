"""Progress: a Prefect progress artifact that follows the work, and a bar that never stops it."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows import progress as progress_module
from flows.progress import Progress


def latest(key: str):  # noqa: ANN201
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return artifact


@pytest.mark.usefixtures("prefect_harness")
def test_the_artifact_follows_growing_work_to_its_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress_module, "ARTIFACT_EVERY_S", 0.0)  # every update reaches the API

    @flow
    def work() -> None:
        with Progress("test-progress-growing", "masklets", 2, bar=True) as progress:
            progress.advance()
            assert float(latest("test-progress-growing").data) == pytest.approx(50.0)
            progress.grow(2)  # a refinement came back to verification
            assert progress.percent == pytest.approx(25.0)
            progress.advance(3)

    work()
    artifact = latest("test-progress-growing")
    assert float(artifact.data) == 100.0 and artifact.description == "masklets: 4 of 4"
    bar = capsys.readouterr().err  # the command line's bar, on stderr, ends at the grown total
    assert "masklets" in bar and "4/4" in bar


def test_progress_without_an_api_only_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("no Prefect API")

    monkeypatch.setattr(progress_module, "create_progress_artifact", unreachable)
    with Progress("test-progress-offline", "videos", 1, bar=False) as progress:
        progress.advance()
    assert progress.percent == 100.0 and "not created" in caplog.text
