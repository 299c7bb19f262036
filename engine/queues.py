"""The work queues of the data engine and the decisions made about them.

Masklets travel through queues that people and simulated annotators work from, as in SAM 2's
data engine: an annotation queue per phase, then verification, where a verdict sends the
masklet to the dataset (satisfactory), to refinement and back to verification
(unsatisfactory), or out with its reason (rejected). Tasks that keep failing end in the dead
letter (a status, not a queue), kept with their last error for an operator to requeue.

Everything here is pure: names, records, the routing of a verdict, the retry backoff and the
validation of what callers hand the queue. The queue itself lives on the catalog in
:mod:`storage.task_queue`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.errors import BadPayloadError, QueueError, UnknownQueueError

DEFAULT_MAX_ATTEMPTS = 5
MAX_LEASE_SECONDS = 24 * 3600  # a lease longer than a day is a forgotten task, not a slow one
MAX_CLAIM = 1000
MAX_WORKER_NAME = 128  # the width of the catalog's worker columns
MAX_KEY = 255
REFINE_PHASE = 3  # unsatisfactory masklets are refined by hand with the Phase 3 tools
IN_VERIFICATION = "in_verification"  # the masklet status while a verify task is open


class Queue(StrEnum):
    """The queues a task can wait in; one name per kind of work."""

    ANNOTATE_PHASE_1 = "annotate_phase_1"
    ANNOTATE_PHASE_2 = "annotate_phase_2"
    ANNOTATE_PHASE_3 = "annotate_phase_3"
    VERIFY = "verify"
    REFINE = "refine"


ANNOTATE_QUEUES = (Queue.ANNOTATE_PHASE_1, Queue.ANNOTATE_PHASE_2, Queue.ANNOTATE_PHASE_3)
PRODUCING_QUEUES = (*ANNOTATE_QUEUES, Queue.REFINE)  # their workers hand back a masklet


class TaskStatus(StrEnum):
    """Where a task stands. ``dead`` is the dead letter: out of attempts, kept with its error."""

    READY = "ready"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


class Verdict(StrEnum):
    """A verifier's judgement of a masklet (the values of ``verifications.verdict``)."""

    SATISFACTORY = "satisfactory"
    UNSATISFACTORY = "unsatisfactory"
    REJECTED = "rejected"


class Contribution(StrEnum):
    """How a worker took part in making a masklet; any part bars them from verifying it."""

    ANNOTATED = "annotated"
    REFINED = "refined"


@dataclass(frozen=True)
class Task:
    """One unit of work in a queue, as the catalog holds it."""

    id: int
    queue: Queue
    status: TaskStatus
    payload: Mapping[str, Any]
    key: str | None
    priority: int
    attempts: int
    max_attempts: int
    available_at: datetime
    created_at: datetime
    masklet_id: int | None = None
    video_id: str | None = None
    leased_by: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's exclusive, expiring right to finish one task; the token proves it."""

    task: Task
    token: str
    worker: str
    expires_at: datetime

    @property
    def task_id(self) -> int:
        return self.task.id


@dataclass(frozen=True)
class Transition:
    """One line of a task's history: who moved it from which status to which, and why."""

    task_id: int
    queue: Queue
    from_status: TaskStatus | None  # None: the task was created
    to_status: TaskStatus
    worker: str | None
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class QueueStats:
    """How deep one queue is, by status, and how long its oldest waiting task has waited."""

    queue: Queue
    ready: int = 0
    leased: int = 0
    done: int = 0
    dead: int = 0
    oldest_ready_age_s: float | None = None  # None: nothing is waiting

    @property
    def pending(self) -> int:
        """Tasks not finished yet (waiting or being worked on)."""
        return self.ready + self.leased


@dataclass(frozen=True)
class Route:
    """Where a verdict sends a masklet: its new status and the queue that works it next."""

    verdict: Verdict | None  # None: a submission, not a judgement
    masklet_status: str
    next_queue: Queue | None
    in_dataset: bool = False
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewTask:
    """A task to enqueue, checked on construction so a bad one never reaches the catalog.

    ``key`` makes enqueueing idempotent: a second task with the same key in the same queue is
    the first one. ``delay_s`` holds the task back (a retry, a scheduled job).
    """

    queue: Queue
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    masklet_id: int | None = None
    video_id: str | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "queue", parse_queue(self.queue))
        object.__setattr__(self, "payload", validate_payload(self.payload))
        validate_key(self.key)
        validate_max_attempts(self.max_attempts)
        if not isinstance(self.priority, int) or isinstance(self.priority, bool) or abs(self.priority) > 2**31 - 1:
            raise QueueError(f"priority {self.priority!r} must be an integer (higher is served first)")
        if not math.isfinite(self.delay_s) or self.delay_s < 0:
            raise QueueError(f"delay_s={self.delay_s} must be zero or a positive number of seconds")
        if self.queue is Queue.VERIFY and self.masklet_id is None:
            raise QueueError("a verify task needs the masklet_id it verifies")


@dataclass(frozen=True)
class Routed:
    """What finishing a task set in motion: the route taken and the task it created, if any."""

    route: Route
    next_task: Task | None = None
    verification_id: int | None = None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, capped, for a failed task's next attempt.

    Jitter spreads the retries of tasks that failed together (a model server down for a
    minute), so they do not all come back in the same instant.
    """

    base_s: float = 2.0
    factor: float = 2.0
    cap_s: float = 600.0
    jitter: float = 0.5  # the fraction of the delay drawn at random: 0 none, 1 "full jitter"

    def __post_init__(self) -> None:
        if not (self.base_s >= 0 and self.factor >= 1 and self.cap_s >= self.base_s and 0 <= self.jitter <= 1):
            raise QueueError(f"backoff {self} needs base_s >= 0, factor >= 1, cap_s >= base_s, 0 <= jitter <= 1")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after ``attempt`` (>= 1) failures."""
        exponent = max(attempt - 1, 0)
        # Cap before exponentiating too far: factor ** 1000 overflows a float.
        ceiling = self.cap_s if exponent > 64 else min(self.cap_s, self.base_s * self.factor**exponent)
        return ceiling * (1 - self.jitter) + ceiling * self.jitter * rng.random()


def annotate_queue(phase: int) -> Queue:
    """The annotation queue of a phase (1: SAM per frame, 2: SAM + SAM 2 Mask, 3: SAM 2)."""
    queues = {1: Queue.ANNOTATE_PHASE_1, 2: Queue.ANNOTATE_PHASE_2, 3: Queue.ANNOTATE_PHASE_3}
    if phase not in queues:
        raise UnknownQueueError(f"there is no annotation phase {phase}: phases are 1, 2 and 3")
    return queues[phase]


def parse_queue(name: str | Queue) -> Queue:
    """The queue called ``name``; an UnknownQueueError listing the real ones otherwise."""
    try:
        return Queue(name)
    except ValueError:
        known = ", ".join(q.value for q in Queue)
        raise UnknownQueueError(f"unknown queue {name!r}: the queues are {known}") from None


def parse_status(name: str | TaskStatus) -> TaskStatus:
    try:
        return TaskStatus(name)
    except ValueError:
        known = ", ".join(s.value for s in TaskStatus)
        raise QueueError(f"unknown task status {name!r}: statuses are {known}") from None


def after_submission(queue: Queue) -> Route:
    """Where a masklet goes once an annotator or refiner hands it in: to verification."""
    if queue not in PRODUCING_QUEUES:
        raise QueueError(
            f"a {queue.value} task does not produce a masklet; only annotation and refine tasks are submitted"
        )
    return Route(None, IN_VERIFICATION, Queue.VERIFY)


def route_verdict(verdict: Verdict | str, reason: str | None = None, frames: list[int] | None = None) -> Route:
    """Where a verifier's verdict sends the masklet.

    Satisfactory masklets join the dataset; unsatisfactory ones go to refinement (Phase 3
    tools) carrying the verifier's reason and frames, then back to verification; rejected
    ones leave the engine but keep their reason, which a rejection must give.
    """
    verdict = parse_verdict(verdict)
    if verdict is Verdict.SATISFACTORY:
        return Route(verdict, Verdict.SATISFACTORY.value, None, in_dataset=True)
    if verdict is Verdict.REJECTED:
        if not reason or not reason.strip():
            raise QueueError("a rejected masklet needs a reason (what makes it unusable)")
        return Route(verdict, Verdict.REJECTED.value, None)
    payload: dict[str, Any] = {"phase": REFINE_PHASE, "reason": reason, "frames": list(frames or [])}
    return Route(verdict, Verdict.UNSATISFACTORY.value, Queue.REFINE, payload=payload)


def parse_verdict(verdict: Verdict | str) -> Verdict:
    try:
        return Verdict(verdict)
    except ValueError:
        known = ", ".join(v.value for v in Verdict)
        raise QueueError(f"unknown verdict {verdict!r}: verdicts are {known}") from None


def validate_payload(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON object the catalog can store exactly, or a BadPayloadError saying what is wrong.

    Round-tripping through JSON here, rather than at the database, turns a numpy scalar or a
    NaN deep in a payload into an error naming the problem instead of a driver traceback.
    """
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise BadPayloadError(f"a task payload is a JSON object (a mapping), not {type(payload).__name__}")
    try:
        return json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BadPayloadError(f"task payload does not serialise to JSON: {exc}") from None


def validate_lease_seconds(lease_seconds: float) -> float:
    """A usable lease length: positive, finite, at most a day."""
    if not isinstance(lease_seconds, (int, float)) or isinstance(lease_seconds, bool):
        raise QueueError(f"lease_seconds must be a number of seconds, not {lease_seconds!r}")
    if not math.isfinite(lease_seconds) or lease_seconds <= 0 or lease_seconds > MAX_LEASE_SECONDS:
        raise QueueError(
            f"lease_seconds={lease_seconds} is not a usable lease: give a positive number of "
            f"seconds up to {MAX_LEASE_SECONDS}"
        )
    return float(lease_seconds)


def validate_worker(worker: str) -> str:
    if not isinstance(worker, str) or not worker.strip() or len(worker) > MAX_WORKER_NAME:
        raise QueueError(f"worker {worker!r} must be a non-empty name of at most {MAX_WORKER_NAME} characters")
    return worker


def validate_claim_count(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLAIM:
        raise QueueError(f"claim n={n!r}: ask for between 1 and {MAX_CLAIM} tasks")
    return n


def validate_max_attempts(max_attempts: int) -> int:
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise QueueError(f"max_attempts={max_attempts!r}: a task needs at least one attempt")
    return max_attempts


def validate_key(key: str | None) -> str | None:
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY):
        raise QueueError(f"idempotency key {key!r} must be a non-empty string of at most {MAX_KEY} characters")
    return key


def error_note(error: str, limit: int = 4000) -> str:
    """An error message short enough to keep on the task and in its history."""
    error = error.strip() or "failed without a message"
    return error if len(error) <= limit else error[: limit - 1] + "…"
