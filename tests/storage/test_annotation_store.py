"""Drafts, events and metrics queries of annotation work on the catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine.annotation import Action
from engine.errors import NotFoundError
from engine.simulated_annotator import SimulatedAnnotator
from engine.simulated_segmenter import SimulatedSegmenters
from engine.time_model import ManualClock
from phases import phase1
from phases.procedure import PhaseJob
from storage import annotation_events
from storage.annotation_events import CatalogEventSink
from storage.annotation_metrics import phase_metrics
from storage.catalog import Catalog
from storage.schema import MaskletRow
from tests.phases.conftest import GOOD_TRACKER
from tests.phases.test_workers import make_engine


@pytest.fixture
def engine(catalog: Catalog, tmp_path: Path):
    return make_engine(catalog, tmp_path)


def annotated(engine):
    inputs = engine.store.inputs(engine.video_id, 0)
    annotator = SimulatedAnnotator(inputs.truth, name="ann")
    segmenters = SimulatedSegmenters(inputs.truth, GOOD_TRACKER)
    return phase1.annotate(PhaseJob(engine.video_id, 0, inputs.frames, annotator, segmenters, clock=ManualClock()))


def test_a_draft_and_its_events_are_stored_together_and_removed_together(engine) -> None:
    result = annotated(engine)
    draft = engine.store.save_draft(result)
    stored = engine.store.masklet(draft)
    assert stored.status == "draft" and stored.phase == 1 and stored.refinement_round == 0
    with engine.catalog.read() as session:
        events = annotation_events.events_of(session, [draft])
    assert [e.action for e in events] == [e.action for e in result.events]
    assert events[0].started_at == result.events[0].started_at
    assert phase_metrics(engine.catalog) == []  # drafts never count

    engine.store.discard_draft(draft)
    with pytest.raises(NotFoundError):
        engine.store.masklet(draft)
    assert engine.event_count() == 0


def test_a_submitted_masklet_is_never_discarded(engine) -> None:
    draft = engine.store.save_draft(annotated(engine))
    with engine.catalog.write() as session:
        session.execute(update(MaskletRow).where(MaskletRow.id == draft).values(status="in_verification"))
    engine.store.discard_draft(draft)
    assert engine.store.masklet(draft).status == "in_verification"
    (row,) = phase_metrics(engine.catalog)
    assert row.phase == 1 and row.masklets == 1 and row.jf is not None and row.jf > 0.9


def test_the_event_sink_records_events_of_any_source(engine) -> None:
    result = annotated(engine)
    CatalogEventSink(engine.catalog).record(result.events[:3])
    with engine.catalog.read() as session:
        actions = list(session.scalars(select(annotation_events.events_table.c.action)))
    assert actions == [e.action.value for e in result.events[:3]]
    assert Action(actions[0]) is result.events[0].action


def test_inputs_of_a_missing_video_are_a_clear_error(engine) -> None:
    with pytest.raises(NotFoundError, match="no video 'nope'"):
        engine.store.inputs("nope", 0)
    assert engine.store.inputs(engine.video_id, 42).truth is None
