"""Annotating through the JSON API: claim, the phase's tools, propagation streamed, undo, submit."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import numpy as np
from sqlalchemy import select, update

from engine.annotation import Action
from engine.queues import Queue
from storage import annotation_events
from storage.schema import AnnotationEventRow, MaskletRow
from storage.queue_schema import TaskRow
from tests.webapp.conftest import Site, claim
from webapp.wire import runs_mask


def _stream(response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_a_phase_3_masklet_from_claim_to_verification(any_site: Site) -> None:
    site = any_site
    site.enqueue(3)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_3)
    state = ann.ok("GET", f"/api/tasks/{task['id']}")
    view = state["task"]
    assert view["tools"] == ["click", "brush", "eraser", "clear", "accept", "propagate"] and view["phase"] == 3
    assert len(state["frames"]) == view["frame_count"] and {f["status"] for f in state["frames"]} == {"todo"}
    hint = view["hint"]

    clicked = ann.ok("POST", f"/api/tasks/{task['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    (frame,) = clicked["frames"]
    assert frame["status"] == "edited" and runs_mask(frame["mask"]).any()

    response = ann.post(f"/api/tasks/{task['id']}/propagate", {"frame": hint["frame"]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = _stream(response)
    assert lines[-1]["done"] is True and lines[-1]["cancelled"] is False
    assert [line["frame"] for line in lines[:-1]] == list(range(hint["frame"], view["frame_count"]))
    assert {line["status"] for line in lines[:-1] if line["frame"] != hint["frame"]} == {"propagated"}

    last = view["frame_count"] - 1
    brushed = ann.ok("POST", f"/api/tasks/{task['id']}/stroke", {"frame": last, "points": [[5, 5], [20, 5]], "radius": 3})
    assert runs_mask(brushed["frames"][0]["mask"])[5, 12]
    undone = ann.ok("POST", f"/api/tasks/{task['id']}/undo")
    assert undone["undone"] == "brush" and undone["frames"][0]["status"] == "propagated"
    ann.ok("POST", f"/api/tasks/{task['id']}/examine", {"first": 0, "last": last})

    refused = ann.post(f"/api/tasks/{task['id']}/submit", {})
    if hint["frame"] > 0:  # frames before the object's first appearance are untouched
        assert refused.status_code == 409 and refused.json()["untouched"] == list(range(hint["frame"]))
    submitted = ann.ok("POST", f"/api/tasks/{task['id']}/submit", {"allow_untouched": True})

    with site.catalog.read() as session:
        row = session.get(MaskletRow, submitted["masklet_id"])
        assert (row.status, row.phase, row.annotator) == ("in_verification", 3, "ann")
        events = annotation_events.events_of(session, [row.id])
    actions = [e.action for e in events]
    assert actions[:2] == [Action.CLICK, Action.PROPAGATE] and actions[-1] is Action.SUBMIT
    assert Action.BRUSH in actions and Action.EXAMINE in actions
    brush = next(e for e in events if e.action is Action.BRUSH)
    assert brush.payload.get("undone") is True
    # Real timestamps: each action starts where the one before ended.
    for before, after in zip(events, events[1:]):
        assert abs((before.started_at + timedelta(seconds=before.duration_s) - after.started_at).total_seconds()) < 0.01
    assert events[0].payload["model_s"] > 0 and all(e.annotator == "ann" and e.task_id == task["id"] for e in events)
    assert site.queue.get(submitted["verify_task_id"]).queue is Queue.VERIFY
    assert ann.get(f"/api/tasks/{task['id']}").status_code == 409  # done: no longer leased


def test_each_phase_offers_its_own_tools_only(site: Site) -> None:
    site.enqueue_one(1)
    site.enqueue_one(2)
    ann = site.client("ann")
    one = claim(ann, Queue.ANNOTATE_PHASE_1)
    assert ann.ok("GET", f"/api/tasks/{one['id']}")["task"]["tools"] == ["click", "brush", "eraser", "clear", "accept"]
    refused = ann.post(f"/api/tasks/{one['id']}/propagate", {"frame": 0})
    assert refused.status_code == 400 and "not a tool" in refused.json()["error"]

    two = claim(ann, Queue.ANNOTATE_PHASE_2)
    view = ann.ok("GET", f"/api/tasks/{two['id']}")["task"]
    hint = view["hint"]
    # Phase 2 propagates the annotator's own mask: not from a frame they have not annotated.
    assert ann.post(f"/api/tasks/{two['id']}/propagate", {"frame": hint["frame"]}).status_code == 400
    ann.ok("POST", f"/api/tasks/{two['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    lines = _stream(ann.post(f"/api/tasks/{two['id']}/propagate", {"frame": hint["frame"]}))
    assert lines[-1]["done"] and lines[-1]["frames"] == view["frame_count"] - hint["frame"]


def test_a_lost_lease_refuses_the_action_and_the_submission(any_site: Site) -> None:
    site = any_site
    site.enqueue_one(3)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_3)
    hint = ann.ok("GET", f"/api/tasks/{task['id']}")["task"]["hint"]
    ann.ok("POST", f"/api/tasks/{task['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    with site.catalog.write() as session:
        session.execute(update(TaskRow).where(TaskRow.id == task["id"]).values(lease_expires_at=TaskRow.created_at))
    for path, body in (("click", {"frame": 0, "x": 1, "y": 1}), ("heartbeat", {}), ("submit", {"allow_untouched": True})):
        response = ann.post(f"/api/tasks/{task['id']}/{path}", body)
        assert response.status_code == 409 and response.json()["kind"] == "LeaseLostError", (path, response.text)
    with site.catalog.read() as session:
        assert session.scalar(select(MaskletRow.id).where(MaskletRow.source == "manual")) is None
        assert len(list(session.scalars(select(AnnotationEventRow.id)))) == 1  # the click before the loss only


def test_heartbeat_extends_the_lease(site: Site) -> None:
    site.enqueue_one(1)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_1)
    before = site.queue.get(task["id"]).lease_expires_at
    answer = ann.ok("POST", f"/api/tasks/{task['id']}/heartbeat")
    assert site.queue.get(task["id"]).lease_expires_at >= before
    assert answer["lease_expires_at"]


def test_claiming_again_returns_the_task_already_held(site: Site) -> None:
    site.enqueue(1)
    ann = site.client("ann")
    first = claim(ann, Queue.ANNOTATE_PHASE_1)
    assert claim(ann, Queue.ANNOTATE_PHASE_1)["id"] == first["id"]
    assert [t["id"] for t in ann.ok("GET", "/api/tasks/mine")["tasks"]] == [first["id"]]
    assert ann.post("/api/tasks/claim", {"queue": "verify"}).status_code == 403  # not an annotator's queue
    assert site.client("ann2").ok("POST", "/api/tasks/claim", {"queue": "annotate_phase_1"})["task"]["id"] != first["id"]


class _TrackerWrappingSource:
    """Simulated models whose trackers ``wrap(tracker)`` alters; the image model is the inner one."""

    def __init__(self, inner, wrap, description: str) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.wrap, self.description, self.fallback_used = inner, wrap, description, False

    def segmenters(self, truth=None):  # type: ignore[no-untyped-def]
        inner, wrap, label = self.inner.segmenters(truth), self.wrap, self.description

        class Wrapped:
            model_version_id, description = None, label

            def image(self, frames):  # type: ignore[no-untyped-def]
                return inner.image(frames)

            def tracker(self, frames, object_id, *, mask_only):  # type: ignore[no-untyped-def]
                tracker = inner.tracker(frames, object_id, mask_only=mask_only)
                wrap(tracker)
                return tracker

        return Wrapped()


def _slow_source(inner, delay_s: float) -> _TrackerWrappingSource:  # type: ignore[no-untyped-def]
    """Simulated models whose propagation takes ``delay_s`` a frame, so it can be cancelled half-way."""

    def slow(tracker) -> None:  # type: ignore[no-untyped-def]
        original = tracker.propagate

        def propagate(from_frame):  # type: ignore[no-untyped-def]
            for item in original(from_frame):
                time.sleep(delay_s)
                yield item

        tracker.propagate = propagate

    return _TrackerWrappingSource(inner, slow, "slow simulated")


def test_a_propagation_can_be_cancelled(sqlite_catalog, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from engine.simulated_segmenter import SimulatedSegmenterSource
    from tests.webapp.conftest import GOOD, build_site

    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    site = build_site(sqlite_catalog, tmp_path, models=_slow_source(SimulatedSegmenterSource(GOOD), 0.25))
    try:
        site.enqueue_one(3)
        ann = site.client("ann")
        task = claim(ann, Queue.ANNOTATE_PHASE_3)
        view = ann.ok("GET", f"/api/tasks/{task['id']}")["task"]
        hint = view["hint"]
        ann.ok("POST", f"/api/tasks/{task['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
        canceller = threading.Timer(0.4, lambda: ann.ok("POST", f"/api/tasks/{task['id']}/propagate/cancel"))
        canceller.start()
        lines = _stream(ann.post(f"/api/tasks/{task['id']}/propagate", {"frame": hint["frame"]}))
        canceller.join()
        assert lines[-1]["done"] and lines[-1]["cancelled"] is True
        assert 1 <= lines[-1]["frames"] < view["frame_count"] - hint["frame"] and len(lines) - 1 == lines[-1]["frames"]
        with site.catalog.read() as session:
            payload = session.scalars(select(AnnotationEventRow.payload).where(AnnotationEventRow.action == "propagate")).one()
        assert payload["cancelled"] is True and payload["frames"] == lines[-1]["frames"]
    finally:
        site.close()


def _recording_source(inner, refines: list) -> _TrackerWrappingSource:  # type: ignore[no-untyped-def,type-arg]
    """Simulated models whose trackers record, in ``refines``, what each click was told to refine."""

    def recording(tracker) -> None:  # type: ignore[no-untyped-def]
        original = tracker.click

        def click(frame, clicks, *, refine=True):  # type: ignore[no-untyped-def]
            refines.append((frame, len(clicks), refine if isinstance(refine, bool) else refine.copy()))
            return original(frame, clicks, refine=refine)

        tracker.click = click

    return _TrackerWrappingSource(inner, recording, "recording simulated")


def test_a_click_refines_the_mask_on_screen(sqlite_catalog, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The model's own mask where the screen shows it; the brushed or kept mask otherwise; none on a cleared frame."""
    from engine.simulated_segmenter import SimulatedSegmenterSource
    from tests.webapp.conftest import GOOD, build_site

    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    refines: list = []  # type: ignore[type-arg]
    site = build_site(sqlite_catalog, tmp_path, models=_recording_source(SimulatedSegmenterSource(GOOD), refines))
    try:
        site.enqueue_one(3)
        ann = site.client("ann")
        task = claim(ann, Queue.ANNOTATE_PHASE_3)
        url = f"/api/tasks/{task['id']}"
        view = ann.ok("GET", url)["task"]
        hint, last = view["hint"], view["frame_count"] - 1
        assert last - hint["frame"] >= 3
        f1, f2, f3 = hint["frame"] + 1, hint["frame"] + 2, hint["frame"] + 3

        def click(frame: int, x: float = hint["x"], y: float = hint["y"]):  # type: ignore[no-untyped-def]
            ann.ok("POST", f"{url}/click", {"frame": frame, "x": x, "y": y})
            return refines[-1][2]

        assert click(hint["frame"]) is False  # nothing on screen yet: segmented anew
        assert click(hint["frame"], hint["x"] + 1) is True  # the model's own mask from the click before
        _stream(ann.post(f"{url}/propagate", {"frame": hint["frame"]}))
        assert click(f1) is True  # a propagated frame shows the model's output

        brushed = runs_mask(ann.ok("POST", f"{url}/stroke", {"frame": f2, "points": [[2, 2], [12, 2]], "radius": 2})["frames"][0]["mask"])
        given = click(f2)
        assert isinstance(given, np.ndarray) and np.array_equal(given, brushed)  # the brushed mask the model never saw

        ann.ok("POST", f"{url}/clear", {"frame": f3})
        assert click(f3) is False  # cleared: annotated anew, not from the mask thrown away

        ann.ok("POST", f"{url}/undo")  # the click: the model is rebuilt from the prompts that stand
        screen = runs_mask(ann.ok("GET", url)["frames"][f1]["mask"])
        before = len(refines)
        given = click(f1)
        assert isinstance(given, np.ndarray) and np.array_equal(given, screen)  # the rebuilt model does not hold it
        # The rebuild replays each frame's clicks one at a time, as they were first decoded.
        replayed = [(frame, count) for frame, count, _ in refines[before:-1]]
        assert replayed == [(hint["frame"], 1), (hint["frame"], 2), (f1, 1), (f2, 1)]
    finally:
        site.close()
