"""The ingest flow under Prefect's test harness: one task per video, idempotent, bad input reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import DataEngineError
from engine.synthetic import synthesize
from flows.ingest import ingest
from flows.resources import close_resources, resources
from storage import videos as video_queries
from tests.flows.conftest import TINY

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def urls(tmp_path: Path):
    yield {"catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}", "object_store_url": f"file://{tmp_path / 'objects'}"}
    close_resources()


def test_a_folder_is_ingested_video_by_video_once(tmp_path: Path, urls: dict[str, str]) -> None:
    folder = tmp_path / "incoming"
    synthesize(folder, 2, seed=7, spec=TINY)
    (folder / "broken.mp4").write_bytes(b"not a video")

    summary = ingest([str(folder)], **urls)

    assert len(summary.ingested) == 2 and summary.already_present == ()
    (failed,) = summary.failed
    assert failed.source.endswith("broken.mp4") and failed.error
    with resources(**urls).catalog.read() as session:
        stored = video_queries.list_videos(session)
        assert sorted(v.id for v in stored) == sorted(summary.ingested)
        assert all(v.frame_count == 8 for v in stored)

    again = ingest([str(folder)], **urls)
    assert again.ingested == () and sorted(again.already_present) == sorted(summary.ingested)
    assert sorted(again.video_ids) == sorted(summary.video_ids)


def test_a_missing_source_fails_the_run_after_the_others(tmp_path: Path, urls: dict[str, str]) -> None:
    (video, *_) = synthesize(tmp_path / "one", 1, seed=8, spec=TINY)
    state = ingest([str(tmp_path / "nowhere"), str(video)], return_state=True, **urls)

    assert state.is_failed() and "nowhere: no such file or folder" in str(state.message)
    with pytest.raises(DataEngineError):
        state.result()
    with resources(**urls).catalog.read() as session:
        assert [v.id for v in video_queries.list_videos(session)] == [video.stem]  # the good one is in


def test_a_video_that_outlasts_its_timeout_fails_alone(
    tmp_path: Path, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect enforces ``ingest-video``'s timeout (the flow's own thread); the other videos go on."""
    import time

    from flows import ingest as ingest_module

    slow, fast = synthesize(tmp_path / "two", 2, seed=9, spec=TINY)
    real = ingest_module.ingest_sources

    def stuck_on_slow(sources, **kwargs):  # noqa: ANN001, ANN003, ANN202 - a decoder that hangs on one file
        if sources == [str(slow)]:
            for _ in range(300):
                time.sleep(0.1)
        return real(sources, **kwargs)

    assert ingest_module.ingest_video.timeout_seconds == 3600  # what the deployment runs with
    monkeypatch.setattr(ingest_module, "ingest_sources", stuck_on_slow)
    monkeypatch.setattr(ingest_module, "ingest_video", ingest_module.ingest_video.with_options(timeout_seconds=1, retries=0))
    started = time.monotonic()
    summary = ingest([str(slow), str(fast)], **urls)

    assert time.monotonic() - started < 25
    (failed,) = summary.failed
    assert failed.source == str(slow) and "exceeded timeout of 1.0 second" in failed.error
    assert summary.ingested == (fast.stem,)


@pytest.mark.s3
def test_an_s3_prefix_is_ingested_video_by_video(
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    s3_admin,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("DATAENGINE_S3_ENDPOINT_URL", s3_server)
    for path in synthesize(tmp_path / "videos", 2, seed=9, spec=TINY):
        for local in (path, path.with_suffix(".json")):
            s3_admin.upload_file(str(local), s3_bucket, f"incoming/{local.name}")
    urls = {"catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}", "object_store_url": f"s3://{s3_bucket}/engine"}
    try:
        summary = ingest([f"s3://{s3_bucket}/incoming"], **urls)
        assert sorted(r.source for r in summary.results) == [
            f"s3://{s3_bucket}/incoming/syn0009_0000.mp4",
            f"s3://{s3_bucket}/incoming/syn0009_0001.mp4",
        ]
        assert len(summary.ingested) == 2 and all(r.ground_truth_masklets == 2 for r in summary.results)
        keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=s3_bucket, Prefix="engine/")["Contents"]]
        assert len(keys) == 16  # 8 sampled frames of each video
    finally:
        close_resources()
