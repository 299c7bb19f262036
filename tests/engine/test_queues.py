"""The queues' policy: names, routing of verdicts, backoff and the validation of what callers send."""

from __future__ import annotations

import math
import random

import pytest

from engine.errors import BadPayloadError, QueueError, UnknownQueueError
from engine.queues import (
    Backoff,
    NewTask,
    Queue,
    Verdict,
    after_submission,
    annotate_queue,
    parse_queue,
    route_verdict,
    validate_claim_count,
    validate_lease_seconds,
    validate_payload,
)


def test_each_phase_has_its_annotation_queue() -> None:
    assert [annotate_queue(p) for p in (1, 2, 3)] == [
        Queue.ANNOTATE_PHASE_1,
        Queue.ANNOTATE_PHASE_2,
        Queue.ANNOTATE_PHASE_3,
    ]
    with pytest.raises(UnknownQueueError, match="phases are 1, 2 and 3"):
        annotate_queue(4)


def test_an_unknown_queue_names_the_real_ones() -> None:
    assert parse_queue("verify") is Queue.VERIFY
    with pytest.raises(UnknownQueueError, match="unknown queue 'verfy'.*annotate_phase_1.*refine"):
        parse_queue("verfy")


def test_a_satisfactory_masklet_joins_the_dataset() -> None:
    route = route_verdict("satisfactory")
    assert route.in_dataset and route.next_queue is None and route.masklet_status == "satisfactory"


def test_an_unsatisfactory_masklet_is_refined_in_phase_3_with_the_verifiers_notes() -> None:
    route = route_verdict(Verdict.UNSATISFACTORY, "drifts onto the dog", [4, 5])
    assert route.next_queue is Queue.REFINE and not route.in_dataset
    assert route.masklet_status == "unsatisfactory"
    assert route.payload == {"phase": 3, "reason": "drifts onto the dog", "frames": [4, 5]}


def test_a_rejection_must_say_why() -> None:
    assert route_verdict("rejected", "not an object").masklet_status == "rejected"
    assert route_verdict("rejected", "not an object").next_queue is None
    with pytest.raises(QueueError, match="needs a reason"):
        route_verdict("rejected", "  ")
    with pytest.raises(QueueError, match="unknown verdict 'meh'"):
        route_verdict("meh")


def test_annotated_and_refined_masklets_go_to_verification_and_verify_tasks_are_not_submitted() -> None:
    for queue in (Queue.ANNOTATE_PHASE_1, Queue.ANNOTATE_PHASE_3, Queue.REFINE):
        route = after_submission(queue)
        assert route.next_queue is Queue.VERIFY and route.masklet_status == "in_verification"
    with pytest.raises(QueueError, match="does not produce a masklet"):
        after_submission(Queue.VERIFY)


def test_backoff_grows_exponentially_within_its_jitter_and_is_capped() -> None:
    backoff = Backoff(base_s=1.0, factor=2.0, cap_s=30.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (10_000, 30.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one value


def test_backoff_without_jitter_is_exact_and_bad_settings_are_refused() -> None:
    assert Backoff(base_s=2.0, jitter=0.0).delay(3, random.Random()) == 8.0
    with pytest.raises(QueueError):
        Backoff(base_s=5.0, cap_s=1.0)


@pytest.mark.parametrize("lease", [0, -1, -0.5, math.inf, math.nan, 10**9, "30", True])
def test_unusable_leases_are_refused(lease: object) -> None:
    with pytest.raises(QueueError, match="lease"):
        validate_lease_seconds(lease)  # type: ignore[arg-type]


def test_claim_counts_are_bounded() -> None:
    assert validate_claim_count(8) == 8
    for n in (0, -1, 10_000):
        with pytest.raises(QueueError, match="claim n="):
            validate_claim_count(n)


def test_payloads_must_be_json_objects() -> None:
    assert validate_payload({"masklet_id": 3, "frames": (1, 2)}) == {"masklet_id": 3, "frames": [1, 2]}
    assert validate_payload(None) == {}
    with pytest.raises(BadPayloadError, match="not serialise"):
        validate_payload({"when": object()})
    with pytest.raises(BadPayloadError, match="not serialise"):
        validate_payload({"iou": float("nan")})
    with pytest.raises(BadPayloadError, match="mapping"):
        validate_payload([1, 2])  # type: ignore[arg-type]


def test_new_tasks_are_checked_when_made() -> None:
    task = NewTask("refine", {"masklet_id": 1}, key="m1", masklet_id=1)  # type: ignore[arg-type]
    assert task.queue is Queue.REFINE
    with pytest.raises(QueueError, match="verify task needs the masklet_id"):
        NewTask(Queue.VERIFY, {})
    with pytest.raises(UnknownQueueError):
        NewTask("nope")  # type: ignore[arg-type]
    with pytest.raises(QueueError, match="at least one attempt"):
        NewTask(Queue.REFINE, max_attempts=0)
    with pytest.raises(QueueError, match="delay_s"):
        NewTask(Queue.REFINE, delay_s=-1)
    with pytest.raises(QueueError, match="idempotency key"):
        NewTask(Queue.REFINE, key="")
