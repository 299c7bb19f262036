"""Verification through the JSON API: the masklet played back, verdicts routed, refinement in the browser."""

from __future__ import annotations

from sqlalchemy import select

from engine.annotation import Action
from engine.queues import Queue
from storage import annotation_events
from storage.schema import MaskletRow, VerificationRow
from tests.webapp.conftest import Client, Site, claim
from webapp.wire import runs_mask


def annotate_and_submit(client: Client, phase: int) -> dict:
    task = claim(client, f"annotate_phase_{phase}")
    hint = client.ok("GET", f"/api/tasks/{task['id']}")["task"]["hint"]
    client.ok("POST", f"/api/tasks/{task['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    return client.ok("POST", f"/api/tasks/{task['id']}/submit", {"allow_untouched": True})


def test_unsatisfactory_goes_to_refinement_and_back(any_site: Site) -> None:
    site = any_site
    site.enqueue_one(1)
    ann, ver = site.client("ann"), site.client("ver")
    submitted = annotate_and_submit(ann, 1)
    task = claim(ver, Queue.VERIFY)
    state = ver.ok("GET", f"/api/tasks/{task['id']}")
    assert state["task"]["masklet_id"] == submitted["masklet_id"] and state["task"]["tools"] == []
    assert sum(runs_mask(f["mask"]).any() for f in state["frames"]) == 1  # only the clicked frame has a mask
    assert ver.post(f"/api/tasks/{task['id']}/click", {"frame": 0, "x": 1, "y": 1}).status_code == 400
    ver.ok("POST", f"/api/tasks/{task['id']}/examine", {"first": 0, "last": 3})

    no_note = ver.post(f"/api/tasks/{task['id']}/verdict", {"verdict": "unsatisfactory", "frames": [2]})
    assert no_note.status_code == 400 and "note" in no_note.json()["error"]
    judged = ver.ok("POST", f"/api/tasks/{task['id']}/verdict", {"verdict": "unsatisfactory", "note": "frames missing", "frames": [2, 3]})
    assert judged["verdict"] == "unsatisfactory" and judged["next_task_id"]

    refine = claim(ann, Queue.REFINE)
    view = ann.ok("GET", f"/api/tasks/{refine['id']}")
    assert view["task"]["reason"] == "frames missing" and view["task"]["flagged_frames"] == [2, 3]
    assert view["task"]["refinement_round"] == 1 and view["task"]["phase"] == 3
    assert {f["status"] for f in view["frames"]} == {"propagated"}  # the masklet under refinement
    lines = ann.post(f"/api/tasks/{refine['id']}/propagate", {"frame": 0}).text.splitlines()
    assert '"done":true' in lines[-1]
    refined = ann.ok("POST", f"/api/tasks/{refine['id']}/submit", {})

    again = claim(ver, Queue.VERIFY)
    assert again["masklet_id"] == refined["masklet_id"]
    rejected = ver.post(f"/api/tasks/{again['id']}/verdict", {"verdict": "rejected"})
    assert rejected.status_code == 400 and "reason" in rejected.json()["error"]
    ver.ok("POST", f"/api/tasks/{again['id']}/verdict", {"verdict": "rejected", "note": "wrong object"})

    with site.catalog.read() as session:
        statuses = dict(session.execute(select(MaskletRow.id, MaskletRow.status).where(MaskletRow.source == "manual")).all())
        verdicts = session.execute(select(VerificationRow.masklet_id, VerificationRow.verifier, VerificationRow.verdict, VerificationRow.reason)).all()
        refined_events = annotation_events.events_of(session, [refined["masklet_id"]])
        judged_events = annotation_events.events_of(session, [submitted["masklet_id"]])
    assert statuses == {submitted["masklet_id"]: "unsatisfactory", refined["masklet_id"]: "rejected"}
    assert {(v.masklet_id, v.verdict, v.reason) for v in verdicts} == {
        (submitted["masklet_id"], "unsatisfactory", "frames missing"),
        (refined["masklet_id"], "rejected", "wrong object"),
    }
    submit = next(e for e in refined_events if e.action is Action.SUBMIT)
    assert submit.payload["refines"] == submitted["masklet_id"] and submit.payload["round"] == 1
    verdict = next(e for e in judged_events if e.action is Action.VERDICT)
    assert verdict.annotator == "ver" and verdict.payload["verdict"] == "unsatisfactory" and verdict.duration_s >= 0
    # The annotator who refined it may not verify it either.
    assert site.client("boss").ok("POST", "/api/tasks/claim", {"queue": "verify"})["task"] is None


def test_a_masklet_already_judged_closes_its_stale_task(site: Site) -> None:
    site.enqueue_one(1)
    ann, ver = site.client("ann"), site.client("ver")
    annotate_and_submit(ann, 1)
    task = claim(ver, Queue.VERIFY)
    ver.ok("GET", f"/api/tasks/{task['id']}")
    with site.catalog.write() as session:
        session.get(MaskletRow, task["masklet_id"]).status = "satisfactory"  # judged elsewhere meanwhile
    stale = ver.post(f"/api/tasks/{task['id']}/verdict", {"verdict": "satisfactory"})
    assert stale.status_code == 409 and stale.json()["kind"] == "AlreadyVerifiedError"
    assert site.queue.get(task["id"]).status.value == "dead"


def test_two_people_one_masklet_per_phase_verified_and_timed(any_site: Site) -> None:
    """The web app's 'done when': logged in at the same time, one person annotates a masklet in each
    phase, the other verifies them, and the dashboard shows the annotator's real times per phase."""
    site = any_site
    for phase in (1, 2, 3):
        site.enqueue_one(phase)
    ann, ver = site.client("ann"), site.client("ver")  # two sessions, open together
    masklets = {phase: annotate_and_submit(ann, phase)["masklet_id"] for phase in (1, 2, 3)}

    judged = []
    while (task := ver.ok("POST", "/api/tasks/claim", {"queue": "verify"})["task"]) is not None:
        judged.append(ver.ok("GET", f"/api/tasks/{task['id']}")["task"]["masklet_id"])
        ver.ok("POST", f"/api/tasks/{task['id']}/verdict", {"verdict": "satisfactory"})
    assert sorted(judged) == sorted(masklets.values())

    with site.catalog.read() as session:
        made = {(r.phase, r.annotator, r.status) for r in (session.get(MaskletRow, m) for m in masklets.values())}
        verifiers = session.scalars(
            select(VerificationRow.verifier).where(VerificationRow.masklet_id.in_(list(masklets.values())))
        ).all()
    assert made == {(1, "ann", "satisfactory"), (2, "ann", "satisfactory"), (3, "ann", "satisfactory")}
    assert verifiers == ["ver", "ver", "ver"]

    data = ver.ok("GET", "/api/dashboard")
    timed = {p["phase"]: p for p in data["masklets"] if p["annotator"] == "ann"}
    assert set(timed) == {1, 2, 3} and all(p["person"] and p["seconds_per_frame"] > 0 for p in timed.values())
    people = {p["name"]: p for p in data["people"]}
    assert people["ann"]["masklets"] == 3 and people["ver"]["verdicts"] == 3
