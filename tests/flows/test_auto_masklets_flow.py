"""The auto-masklets flow under Prefect's test harness: candidates on new videos only, into verification."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine.queues import Queue, TaskStatus
from flows.auto_masklets import auto_masklets
from flows.resources import close_resources
from storage.schema import MaskletRow
from tests.flows.conftest import make_small_engine

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_candidates_on_new_videos_go_to_verification(tmp_path: Path) -> None:
    engine = make_small_engine(tmp_path, videos=2)
    try:
        first = auto_masklets(video_ids=engine.video_ids[:1], model="simulated", **engine.urls)
        (done,) = first.videos
        assert done.video_id == engine.video_ids[0] and len(done.masklet_ids) == 2 and first.candidates == 2
        with engine.res.catalog.read() as session:
            rows = session.execute(
                select(MaskletRow.video_id, MaskletRow.source, MaskletRow.status).where(MaskletRow.source == "auto")
            )
            assert {tuple(r) for r in rows} == {(engine.video_ids[0], "auto", "in_verification")}
        verify_tasks = engine.res.queue.list_tasks(Queue.VERIFY, TaskStatus.READY)
        assert sorted(t.id for t in verify_tasks) == sorted(done.verify_task_ids)

        # The nightly run: only the video without candidates is new; nothing is proposed twice.
        second = auto_masklets(model="simulated", **engine.urls)
        assert [v.video_id for v in second.videos] == [engine.video_ids[1]] and second.candidates == 2
        third = auto_masklets(model="simulated", **engine.urls)
        assert third.videos == () and third.candidates == 0
    finally:
        close_resources()


def test_an_unknown_video_is_an_error(tmp_path: Path) -> None:
    engine = make_small_engine(tmp_path, videos=1)
    try:
        state = auto_masklets(video_ids=["no-such-video"], model="simulated", return_state=True, **engine.urls)
        assert state.is_failed() and "no video 'no-such-video'" in str(state.message)
    finally:
        close_resources()
