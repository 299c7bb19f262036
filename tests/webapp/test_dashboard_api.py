"""The dashboard's data: people beside simulated annotators, phases, verdicts, queues, models."""

from __future__ import annotations

from phases.workers import Worker, drain
from engine.simulated_segmenter import SimulatedSegmenterSource
from tests.webapp.conftest import GOOD, Site
from tests.webapp.test_verify_api import annotate_and_submit


def test_the_dashboard_shows_people_and_simulated_annotators(site: Site) -> None:
    site.enqueue_one(1, object_id=0)
    ann, ver = site.client("ann"), site.client("ver")
    submitted = annotate_and_submit(ann, 1)
    site.enqueue_one(1, object_id=1)
    simulated = Worker("sim-annotator-1", site.queue, site.annotations, SimulatedSegmenterSource(GOOD))
    assert [o.ok for o in drain(lambda: simulated.annotate_one(1))] == [True]
    task = ver.ok("POST", "/api/tasks/claim", {"queue": "verify"})["task"]
    ver.ok("POST", f"/api/tasks/{task['id']}/verdict", {"verdict": "satisfactory"})

    data = ann.ok("GET", "/api/dashboard")
    points = {p["annotator"]: p for p in data["masklets"]}
    assert points["ann"]["person"] is True and points["sim-annotator-1"]["person"] is False
    assert points["ann"]["masklet_id"] == submitted["masklet_id"] and points["ann"]["seconds_per_frame"] > 0
    (phase1,) = data["phases"]
    assert phase1["phase"] == 1 and phase1["masklets"] == 2 and phase1["clicks_per_clicked_frame"] >= 1
    assert sum(o["satisfactory"] for o in data["outcomes"]) == 1
    queues = {q["queue"]: q for q in data["queues"]}
    assert queues["annotate_phase_1"]["done"] == 2 and queues["verify"]["ready"] + queues["verify"]["done"] == 2
    assert queues["annotate_phase_1"]["median_wait_s"] is not None
    people = {p["name"]: p for p in data["people"]}
    assert people["ann"]["masklets"] == 1 and people["ann"]["role"] == "annotator"
    assert people["ver"]["verdicts"] == 1 and people["sim-annotator-1"]["person"] is False
    assert data["models"] == [] and data["promotions"] == []


def test_the_dashboard_shows_model_versions_and_the_champion(site: Site) -> None:
    from storage.schema import ModelAliasRow, ModelVersionRow

    with site.catalog.write() as session:
        first = ModelVersionRow(name="sam2-compact", version=1, config={}, metrics={"val_jf": 0.61})
        second = ModelVersionRow(name="sam2-compact", version=2, config={}, metrics={"val_jf": 0.68})
        session.add_all([first, second])
        session.flush()
        session.add(ModelAliasRow(name="sam2-compact", alias="champion", model_version_id=second.id))
    data = site.client("ver").ok("GET", "/api/dashboard")
    assert [(m["version"], m["val_jf"], m["aliases"]) for m in data["models"]] == [(1, 0.61, []), (2, 0.68, ["champion"])]
    assert [(p["name"], p["version"]) for p in data["promotions"]] == [("sam2-compact", 2)]
