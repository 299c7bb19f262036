"""Domain events: what the engine tells the outside world happened, through a port.

Orchestration reacts to the engine's progress: a retrain is triggered when enough new
satisfactory masklets have arrived. The engine says so by emitting a :class:`DomainEvent`
to an :class:`EventSink` it is handed; which system hears it (Prefect's event bus, a log, a
list in a test) is the caller's choice, so domain code never imports an orchestrator.
:mod:`flows.events` implements the sink on Prefect's ``emit_event``.

Names follow Prefect's event grammar (``dataengine.<thing>.<past tense>``) and every event is
about one resource with an id and labels, which is what deployment triggers match on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from engine.queues import Verdict

MASKLET_VERIFIED = "dataengine.masklet.verified"


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to one resource, with labels to match on and a payload to read."""

    name: str  # e.g. "dataengine.masklet.verified"
    resource_id: str  # e.g. "dataengine.masklet.42"
    labels: Mapping[str, str] = field(default_factory=dict)  # matched by triggers, so strings only
    payload: Mapping[str, Any] = field(default_factory=dict)
    related: tuple[tuple[str, str], ...] = ()  # (resource id, role), e.g. the video the masklet is on
    occurred: datetime | None = None  # None: when the sink emits it


class EventSink(Protocol):
    """Where domain events go. Emitting must not fail the work that caused the event."""

    def emit(self, event: DomainEvent) -> None: ...


class NullEventSink:
    """Hears nothing: for callers that do not orchestrate (the command line, benchmarks)."""

    def emit(self, event: DomainEvent) -> None:
        return None


class ListEventSink:
    """Keeps every event in a list, in order: for tests and for counting what a run emitted."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)


@dataclass(frozen=True)
class VerifiedMasklet:
    """What is known of a masklet once its verdict is recorded."""

    masklet_id: int
    video_id: str
    object_id: int
    source: str  # manual or auto
    phase: int | None
    frame_count: int
    edited_frame_count: int
    verdict: Verdict
    verifier: str
    refinement_round: int = 0


def masklet_verified(masklet: VerifiedMasklet, *, dataset_masklets: int) -> DomainEvent:
    """The ``dataengine.masklet.verified`` event of one verdict.

    Labels carry the verdict, source and phase, so a trigger can count only satisfactory
    masklets (``dataengine.verdict: satisfactory``); the payload carries the masklet's counts
    and ``dataset_masklets``, the satisfactory masklets in the dataset once this verdict was
    recorded, for whoever reads the event later.
    """
    labels = {
        "dataengine.verdict": masklet.verdict.value,
        "dataengine.source": masklet.source,
        "dataengine.video": masklet.video_id,
    }
    if masklet.phase is not None:
        labels["dataengine.phase"] = str(masklet.phase)
    return DomainEvent(
        name=MASKLET_VERIFIED,
        resource_id=f"dataengine.masklet.{masklet.masklet_id}",
        labels=labels,
        payload={
            "masklet_id": masklet.masklet_id,
            "video_id": masklet.video_id,
            "object_id": masklet.object_id,
            "verdict": masklet.verdict.value,
            "source": masklet.source,
            "phase": masklet.phase,
            "verifier": masklet.verifier,
            "frame_count": masklet.frame_count,
            "edited_frame_count": masklet.edited_frame_count,
            "refinement_round": masklet.refinement_round,
            "in_dataset": masklet.verdict is Verdict.SATISFACTORY,
            "dataset_masklets": dataset_masklets,
        },
        related=((f"dataengine.video.{masklet.video_id}", "video"),),
    )
