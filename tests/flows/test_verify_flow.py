"""The verify flow under Prefect's test harness: every route of a verdict, and the events it emits."""

from __future__ import annotations

import time

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from sqlalchemy import select

from engine.events import MASKLET_VERIFIED, ListEventSink
from engine.simulated_segmenter import ModelQuality, SimulatedSegmenterSource, simulated_auto_masklet
from flows import verify as verify_module
from flows.verify import verify
from phases.auto_masklets import submit_candidates
from phases.workers import Worker, drain, enqueue_annotation
from storage import masklets as masklet_queries
from storage.schema import MaskletRow
from tests.flows.conftest import SmallEngine

pytestmark = pytest.mark.usefixtures("prefect_harness")

PERFECT = ModelQuality(mask_side=256, image_errors=0.0, drift_per_frame=0.0, ghost_chance=0.0, lost_chance=0.0)
AWFUL = ModelQuality(mask_side=256, image_errors=6.0, drift_per_frame=4.0, ghost_chance=1.0, lost_chance=1.0)


def statuses(engine: SmallEngine) -> dict[int, tuple[str, str]]:
    with engine.res.catalog.read() as session:
        rows = session.execute(
            select(MaskletRow.id, MaskletRow.source, MaskletRow.status).where(MaskletRow.source != "ground_truth")
        )
        return {r.id: (r.source, r.status) for r in rows}


def test_verdicts_are_routed_and_unsatisfactory_masklets_refined(
    small_engine: SmallEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = small_engine.res
    with res.catalog.read() as session:
        good, bad = masklet_queries.ground_truth(session, small_engine.video_ids[0])
    # One perfect auto masklet (satisfactory) and one awful one (unsatisfactory, refined, verified again).
    (good_id, _), (bad_id, _) = submit_candidates(
        res.annotations, [simulated_auto_masklet(good, PERFECT), simulated_auto_masklet(bad, AWFUL, seed=3)], None
    )
    sink = ListEventSink()
    monkeypatch.setattr(verify_module, "PrefectEventSink", lambda: sink)

    result = verify(verifiers=2, model="simulated", **small_engine.urls)

    masklets = statuses(small_engine)
    assert masklets[good_id] == ("auto", "satisfactory")
    assert masklets[bad_id][1] in ("unsatisfactory", "rejected")
    refined = [m for m, (source, _) in masklets.items() if source == "manual"]
    assert result.refined == tuple(refined) and len(refined) >= 1
    assert result.verdicts.get("satisfactory", 0) >= 1 and result.verified == len(sink.events) >= 3
    assert good_id in result.satisfactory and result.rounds >= 3  # verify, refine, verify again
    assert not result.failed and not result.infrastructure_errors

    by_masklet = {e.payload["masklet_id"]: e for e in sink.events}
    event = by_masklet[good_id]
    assert event.name == MASKLET_VERIFIED and event.resource_id == f"dataengine.masklet.{good_id}"
    assert event.labels["dataengine.verdict"] == "satisfactory" and event.labels["dataengine.source"] == "auto"
    assert event.payload["frame_count"] == good.frame_count and event.payload["in_dataset"] is True
    final = {masklet_id for masklet_id, (_, status) in statuses(small_engine).items() if status == "satisfactory"}
    assert max(e.payload["dataset_masklets"] for e in sink.events) == len(final)  # the dataset after the last verdict
    assert {s for s in statuses(small_engine).values() if s[1] == "in_verification"} == set()  # nothing left waiting


def test_verdict_events_reach_prefect(small_engine: SmallEngine) -> None:
    res = small_engine.res
    enqueue_annotation(res.queue, res.annotations, 3)
    drain(lambda: Worker("ann", res.queue, res.annotations, SimulatedSegmenterSource()).annotate_one(3))

    result = verify(verifiers=1, model="simulated", **small_engine.urls)
    assert result.verified == 2

    wanted = {f"dataengine.masklet.{m}" for m in statuses(small_engine)}
    deadline = time.monotonic() + 30  # the event bus persists events in batches
    seen: set[str] = set()
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and not wanted <= seen:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=[MASKLET_VERIFIED]), resource=EventResourceFilter(id=sorted(wanted))
                ),
                limit=50,
            )
            seen = {e.resource.id for e in page.events}
            time.sleep(0.5)
        events = page.events
    assert wanted <= seen
    assert {e.resource["dataengine.verdict"] for e in events} <= {"satisfactory", "unsatisfactory", "rejected"}
    assert all(e.related and e.related[0].role == "video" for e in events)
