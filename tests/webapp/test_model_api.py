"""The real model path through the API: sam2-compact (random weights, CPU) behind clicks, propagation and undo.

The masks mean nothing (random weights); what is tested is that the registry's model (here
its embedded fallback, as with an empty registry) serves every tool, that model time is
measured into the events, and that undo rebuilds the model's memory from the prompts left.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.annotation import Action
from engine.queues import Queue
from storage import annotation_events
from storage.catalog import Catalog
from tests.engine.sam_fixtures import CPU
from tests.webapp.conftest import build_site, claim

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_bundled_model")]  # the registry is empty: pinned random weights


def test_sam2_compact_serves_the_phase_3_tools(sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.model_segmenters import RegistrySegmenterSource

    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    models = RegistrySegmenterSource(None, device=CPU)
    site = build_site(sqlite_catalog, tmp_path, models=models)
    site.enqueue_one(3)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_3)
    view = ann.ok("GET", f"/api/tasks/{task['id']}")["task"]
    assert view["model"].startswith("sam2-compact (random initialisation")
    hint = view["hint"]
    url = f"/api/tasks/{task['id']}"
    first = ann.ok("POST", f"{url}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    assert first["frames"][0]["status"] == "edited"
    ann.ok("POST", f"{url}/click", {"frame": hint["frame"], "x": 2, "y": 2, "positive": False})
    lines = [json.loads(x) for x in ann.post(f"{url}/propagate", {"frame": hint["frame"]}).text.splitlines()]
    assert lines[-1]["done"] and len(lines) - 1 == view["frame_count"] - hint["frame"]
    assert ann.ok("POST", f"{url}/undo")["undone"] == "propagate"
    # The model is rebuilt from the two clicks left, and tracks again.
    again = [json.loads(x) for x in ann.post(f"{url}/propagate", {"frame": hint["frame"]}).text.splitlines()]
    assert again[-1]["done"] and not again[-1]["cancelled"]
    # Random weights may find nothing: the brush makes sure the masklet is not empty.
    ann.ok("POST", f"{url}/stroke", {"frame": hint["frame"], "points": [[hint["x"], hint["y"]]], "radius": 3})
    submitted = ann.ok("POST", f"{url}/submit", {"allow_untouched": True})
    with site.catalog.read() as session:
        events = annotation_events.events_of(session, [submitted["masklet_id"]])
    model_times = [e.payload.get("model_s", 0) for e in events if e.action in (Action.CLICK, Action.PROPAGATE)]
    assert len(model_times) == 4 and all(t > 0 for t in model_times)  # two clicks, two propagations
    assert models.fallback_used
    site.close()
