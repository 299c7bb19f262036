"""Workers: take a task from a queue, do it with a simulated person and the registry's model, hand it back.

- **annotate** (``annotate_phase_N``, payload ``video_id``, ``object_id``): run the phase,
  then submit: in one transaction the queue finishes the task, the store's effect writes the
  masklet with its events, the masklet becomes ``in_verification`` and its verify task is
  enqueued.
- **refine** (``refine``, an unsatisfactory masklet): Phase 3 refinement; the new masklet is
  submitted to verification the same way.
- **verify** (``verify``): judge the masklet and route the verdict; the verdict, the
  masklet's new status, its refine task if any and the verifier's events commit together.
  The queue never hands a worker a masklet they annotated or refined; the catalog refuses
  such a verdict anyway.

Whatever fails, no partial masklet enters the dataset: a phase keeps everything in memory
until it is done, its writes commit with the submission or not at all, and the task is
failed through the queue, to be retried after a backoff, or dead-lettered straight away
when retrying cannot help (no such video, no ground truth, an object never visible, a stale
verdict). A worker killed mid-submission leaves nothing, and its lease expires into a retry.
Each task asks its :class:`~engine.segmenters.SegmenterSource` for the model, so the
registry's champion of the moment is the one used.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engine.annotation import ActionLog, AnnotatedMasklet, EventContext
from engine.annotation_store import AnnotationInputs, AnnotationStore, WorkQueue
from engine.errors import (
    AlreadyVerifiedError,
    AnnotationError,
    BadPayloadError,
    BadPromptError,
    DataEngineError,
    LeaseLostError,
    NotFoundError,
)
from engine.masklets import Masklet, MaskletSource
from engine.masks import empty
from engine.queues import Lease, NewTask, Queue, Task, TaskStatus, Verdict, annotate_queue
from engine.segmenters import SegmenterSource
from engine.simulated_annotator import SimulatedAnnotator, SimulatedVerifier, Skill, VerifierSkill
from engine.time_model import Clock, SystemClock, TimeModel
from phases import phase1, phase2, phase3, verification
from phases.procedure import PhaseJob

log = logging.getLogger(__name__)

LEASE_S = 1800.0  # a masklet on a slow CPU model takes minutes; heartbeats keep longer ones alive
PHASES: Mapping[int, Callable[[PhaseJob], AnnotatedMasklet]] = {
    1: phase1.annotate,
    2: phase2.annotate,
    3: phase3.annotate,
}
# Errors no retry can cure: the task goes to the dead letter with the message.
PERMANENT = (NotFoundError, AnnotationError, BadPayloadError, BadPromptError, AlreadyVerifiedError)


@dataclass(frozen=True)
class Crew:
    """Who does the work: simulated annotators and verifiers of one skill, seeded per task."""

    skill: Skill = field(default_factory=Skill)
    verifier_skill: VerifierSkill = field(default_factory=VerifierSkill)
    seed: int = 0

    def annotator(self, inputs: AnnotationInputs, name: str, task_id: int) -> SimulatedAnnotator:
        return SimulatedAnnotator(inputs.truth, name=name, skill=self.skill, seed=self._seed(task_id, 0))

    def verifier(self, inputs: AnnotationInputs, name: str, task_id: int) -> SimulatedVerifier:
        return SimulatedVerifier(inputs.truth, name=name, skill=self.verifier_skill, seed=self._seed(task_id, 1))

    def _seed(self, task_id: int, role: int) -> int:
        """One stream per (crew seed, task, role): a retried task is done the same way again."""
        return (self.seed * 1_000_003 + task_id) * 2 + role


@dataclass(frozen=True)
class Outcome:
    """What became of one task a worker took."""

    task_id: int
    queue: Queue
    worker: str
    masklet_id: int | None = None  # the masklet produced, or judged
    verdict: Verdict | None = None
    next_task_id: int | None = None
    error: str | None = None
    will_retry: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Worker:
    """One simulated person working the queues under one name."""

    def __init__(
        self,
        name: str,
        queue: WorkQueue,
        store: AnnotationStore,
        models: SegmenterSource,
        crew: Crew = Crew(),
        *,
        time_model: TimeModel = TimeModel(),
        clock: Clock = SystemClock(),
        lease_s: float = LEASE_S,
        correction_budget: int | None = None,
        max_refinements: int = verification.MAX_REFINEMENTS,
    ) -> None:
        self.name = name
        self.queue = queue
        self.store = store
        self.models = models
        self.crew = crew
        self.time_model = time_model
        self.clock = clock
        self.lease_s = lease_s
        self.correction_budget = correction_budget
        self.max_refinements = max_refinements

    # --- the three kinds of work ----------------------------------------------------------------

    def annotate_one(self, phase: int) -> Outcome | None:
        """Annotate one object of the phase's queue; None when nothing is ready."""
        queue = annotate_queue(phase)
        return self._take(queue, lambda lease: self._annotate(lease, phase))

    def refine_one(self) -> Outcome | None:
        """Refine one unsatisfactory masklet; None when nothing is ready."""
        return self._take(Queue.REFINE, self._refine)

    def verify_one(self) -> Outcome | None:
        """Verify one masklet (never one's own); None when nothing is ready for this worker."""
        return self._take(Queue.VERIFY, self._verify)

    def _annotate(self, lease: Lease, phase: int) -> Outcome:
        video_id, object_id = _annotate_payload(lease.task.payload)
        inputs = self.store.inputs(video_id, object_id)
        result = PHASES[phase](self._job(inputs, lease.task.id))
        return self._submit(lease, result)

    def _refine(self, lease: Lease) -> Outcome:
        old = self.store.masklet(_masklet_id(lease))
        if old.status != Verdict.UNSATISFACTORY.value:
            raise AlreadyVerifiedError(
                f"masklet {old.masklet_id} is {old.status}, not unsatisfactory: there is nothing to refine"
            )
        job = self._job(self.store.inputs_for(old.masklet), lease.task.id)
        result = phase3.refine(job, old.masklet, refines=old.masklet_id, round_=old.refinement_round + 1)
        return self._submit(lease, result)

    def _verify(self, lease: Lease) -> Outcome:
        stored = self.store.masklet(_masklet_id(lease))
        verification.check_awaiting_verdict(stored)
        inputs = self.store.inputs_for(stored.masklet)
        if inputs.truth is None and stored.source is MaskletSource.AUTO:
            inputs = dataclasses.replace(inputs, truth=nothing_like(stored.masklet))  # it follows no real object
        verifier = self.crew.verifier(inputs, self.name, lease.task.id)
        context = EventContext(stored.masklet.video_id, self.name, stored.phase, lease.task.id)
        action_log = ActionLog(context, frame_count=stored.masklet.frame_count, time_model=self.time_model, clock=self.clock)
        judgement = verification.verify(stored, verifier, action_log, max_refinements=self.max_refinements)
        routed = self.queue.route_verdict(
            lease.task_id,
            lease.token,
            judgement.verdict,
            reason=judgement.reason,
            frames=list(judgement.frames),
            effect=self.store.events_effect(action_log.events, stored.masklet_id),
        )
        return self._outcome(lease, masklet_id=stored.masklet_id, verdict=judgement.verdict, next_task=routed.next_task)

    # --- shared steps --------------------------------------------------------------------------

    def _job(self, inputs: AnnotationInputs, task_id: int) -> PhaseJob:
        return PhaseJob(
            video_id=inputs.video_id,
            object_id=inputs.object_id,
            frames=inputs.frames,
            annotator=self.crew.annotator(inputs, self.name, task_id),
            segmenters=self.models.segmenters(inputs.truth),
            time_model=self.time_model,
            clock=self.clock,
            task_id=task_id,
            correction_budget=self.correction_budget,
        )

    def _submit(self, lease: Lease, result: AnnotatedMasklet) -> Outcome:
        """The masklet, its events and the submission, in one transaction (the verify task names the masklet)."""
        routed = self.queue.submit_masklet(lease.task_id, lease.token, effect=self.store.masklet_effect(result))
        masklet_id = None if routed.next_task is None else routed.next_task.masklet_id
        return self._outcome(lease, masklet_id=masklet_id, next_task=routed.next_task)

    def _take(self, queue: Queue, work: Callable[[Lease], Outcome]) -> Outcome | None:
        leases = self.queue.claim(queue, self.name, self.lease_s)
        if not leases:
            return None
        lease = leases[0]
        try:
            with _Heartbeat(self.queue, lease, self.lease_s):
                return work(lease)
        except LeaseLostError as exc:
            log.warning("%s lost task %s: %s", self.name, lease.task_id, exc)
            return self._outcome(lease, error=f"lease lost: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure is reported through the queue
            return self._give_back(lease, exc)

    def _give_back(self, lease: Lease, exc: Exception) -> Outcome:
        message = str(exc) if isinstance(exc, DataEngineError) else f"{type(exc).__name__}: {exc}"
        retry = not isinstance(exc, PERMANENT)
        log.warning("%s failed task %s (%s): %s", self.name, lease.task_id, "retry" if retry else "dead", message)
        try:
            task = self.queue.fail(lease.task_id, lease.token, message, retry=retry)
        except LeaseLostError:
            return self._outcome(lease, error=message)
        return self._outcome(lease, error=message, will_retry=task.status is TaskStatus.READY)

    def _outcome(self, lease: Lease, *, next_task: Any = None, **fields: Any) -> Outcome:
        next_id = None if next_task is None else next_task.id
        return Outcome(lease.task_id, lease.task.queue, self.name, next_task_id=next_id, **fields)


class _Heartbeat:
    """Extends a lease every third of its length while the work runs, so long masklets keep it."""

    def __init__(self, queue: WorkQueue, lease: Lease, lease_s: float) -> None:
        self._queue = queue
        self._lease = lease
        self._lease_s = lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{lease.task_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                self._queue.heartbeat(self._lease.task_id, self._lease.token, self._lease_s)
            except DataEngineError as exc:  # lost or unreachable: the submission will say so
                log.warning("heartbeat of task %s failed: %s", self._lease.task_id, exc)
                return


def enqueue_annotation(
    queue: WorkQueue, store: AnnotationStore, phase: int, video_ids: Sequence[str] | None = None, *, round_: int = 1
) -> list[Task]:
    """One annotate task per ground-truth object of each video (all videos with ground truth by default).

    Keyed by phase, round, video and object, so enqueueing twice adds nothing; a new
    ``round_`` annotates the same objects again.
    """
    queue_name = annotate_queue(phase)
    videos = store.videos_with_ground_truth() if video_ids is None else list(video_ids)
    specs = [
        NewTask(
            queue_name,
            {"video_id": video_id, "object_id": object_id},
            key=f"phase{phase}/round{round_}/{video_id}/{object_id}",
            video_id=video_id,
        )
        for video_id in videos
        for object_id in store.objects_with_ground_truth(video_id)
    ]
    return queue.enqueue_many(specs, by="dataengine annotate") if specs else []


def drain(step: Callable[[], Outcome | None]) -> list[Outcome]:
    """Call ``step`` until it finds nothing ready; the outcomes in order."""
    outcomes = []
    while (outcome := step()) is not None:
        outcomes.append(outcome)
    return outcomes


def drain_in_threads(steps: Sequence[Callable[[], Outcome | None]]) -> list[Outcome]:
    """:func:`drain` each step in a thread of its own (one per simulated person); all outcomes."""
    if len(steps) == 1:
        return drain(steps[0])
    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="worker") as pool:
        return [outcome for outcomes in pool.map(drain, steps) for outcome in outcomes]


def verify_or_refine(verifier: Worker, refiner: Worker) -> Callable[[], Outcome | None]:
    """A step that verifies when a masklet waits for it, else refines: the verification loop's work.

    Two names, so the verifier never judges what the refiner made.
    """

    def step() -> Outcome | None:
        return verifier.verify_one() or refiner.refine_one()

    return step


def nothing_like(masklet: Masklet) -> Masklet:
    """A truth of empty frames, the size of ``masklet``: what the ground truth says of a non-object."""
    frames = tuple(empty(masklet.height, masklet.width) for _ in range(masklet.frame_count))
    return Masklet(masklet.video_id, masklet.object_id, MaskletSource.GROUND_TRUTH, frames)


def _annotate_payload(payload: Mapping[str, Any]) -> tuple[str, int]:
    video_id, object_id = payload.get("video_id"), payload.get("object_id")
    if not isinstance(video_id, str) or isinstance(object_id, bool) or not isinstance(object_id, int):
        raise BadPayloadError(
            f"an annotate task's payload needs video_id (a string) and object_id (an integer), got {dict(payload)}"
        )
    return video_id, object_id


def _masklet_id(lease: Lease) -> int:
    masklet_id = lease.task.masklet_id if lease.task.masklet_id is not None else lease.task.payload.get("masklet_id")
    if not isinstance(masklet_id, int):
        raise BadPayloadError(f"a {lease.task.queue.value} task needs the masklet_id it works on")
    return masklet_id
