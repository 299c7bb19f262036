"""Domain events: the masklet-verified event carries what a trigger matches on and a reader needs."""

from __future__ import annotations

from engine.events import MASKLET_VERIFIED, ListEventSink, NullEventSink, VerifiedMasklet, masklet_verified
from engine.queues import Verdict


def verified(verdict: Verdict, phase: int | None = 3, source: str = "manual") -> VerifiedMasklet:
    return VerifiedMasklet(42, "syn0000_0001", 3, source, phase, 24, 5, verdict, "sim-verifier-1", refinement_round=1)


def test_the_event_names_the_masklet_and_labels_its_verdict_source_and_phase() -> None:
    event = masklet_verified(verified(Verdict.SATISFACTORY), dataset_masklets=7)
    assert event.name == MASKLET_VERIFIED == "dataengine.masklet.verified"
    assert event.resource_id == "dataengine.masklet.42"
    assert event.labels == {
        "dataengine.verdict": "satisfactory",
        "dataengine.source": "manual",
        "dataengine.video": "syn0000_0001",
        "dataengine.phase": "3",
    }
    assert all(isinstance(v, str) for v in event.labels.values())  # triggers match strings
    assert event.payload["in_dataset"] is True and event.payload["frame_count"] == 24
    assert event.payload["dataset_masklets"] == 7 and event.payload["refinement_round"] == 1
    assert event.related == (("dataengine.video.syn0000_0001", "video"),)


def test_auto_masklets_have_no_phase_label_and_rejections_are_not_in_the_dataset() -> None:
    event = masklet_verified(verified(Verdict.REJECTED, phase=None, source="auto"), dataset_masklets=0)
    assert "dataengine.phase" not in event.labels and event.labels["dataengine.source"] == "auto"
    assert event.payload["in_dataset"] is False and event.payload["verdict"] == "rejected"


def test_sinks() -> None:
    sink = ListEventSink()
    first = masklet_verified(verified(Verdict.SATISFACTORY), dataset_masklets=1)
    second = masklet_verified(verified(Verdict.UNSATISFACTORY), dataset_masklets=1)
    sink.emit(first)
    sink.emit(second)
    assert sink.events == [first, second]
    assert NullEventSink().emit(first) is None
