"""The engine's domain events on Prefect's event bus, where deployment triggers hear them."""

from __future__ import annotations

import logging

from prefect.events import emit_event

from engine.events import DomainEvent

log = logging.getLogger(__name__)


class PrefectEventSink:
    """:class:`engine.events.EventSink` on ``prefect.events.emit_event``.

    Emitting is best effort: the verdict that caused an event is already in the catalog, and a
    lost event only delays a triggered retrain until the nightly schedule; so a failure here
    is logged, never raised into the work.
    """

    def emit(self, event: DomainEvent) -> None:
        resource = {"prefect.resource.id": event.resource_id, **event.labels}
        related = [{"prefect.resource.id": rid, "prefect.resource.role": role} for rid, role in event.related]
        try:
            emit_event(
                event=event.name,
                resource=resource,
                related=related or None,
                payload=dict(event.payload),
                occurred=event.occurred,
            )
        except Exception as exc:  # noqa: BLE001 - see the class doc
            log.warning("could not emit %s for %s: %s", event.name, event.resource_id, exc)
