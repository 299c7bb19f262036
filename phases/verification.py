"""Verification: a different annotator judges each masklet, as in the SAM 2 data engine.

The verdict sends the masklet on (the queue does the routing, :func:`engine.queues.route_verdict`):
satisfactory masklets join the dataset (manual ones as manual, auto ones as auto);
unsatisfactory ones go to refinement with the Phase 3 tools (:func:`phases.phase3.refine`)
and come back here; rejected ones leave the engine with their reason. An object that is
still unsatisfactory after ``max_refinements`` refinements is rejected, so a masklet no one
can get right does not circle forever.
"""

from __future__ import annotations

from engine.annotation import ActionLog, Judgement, Verifier
from engine.annotation_store import StoredMasklet
from engine.errors import AlreadyVerifiedError
from engine.queues import IN_VERIFICATION, Verdict

MAX_REFINEMENTS = 2


def check_awaiting_verdict(stored: StoredMasklet) -> None:
    """A verdict is given once: refuse a masklet that is not waiting for one."""
    if stored.status != IN_VERIFICATION:
        raise AlreadyVerifiedError(
            f"masklet {stored.masklet_id} is {stored.status}, not {IN_VERIFICATION}: it was verified already "
            "(or never submitted); this verify task is stale and takes no verdict"
        )


def verify(stored: StoredMasklet, verifier: Verifier, log: ActionLog, *, max_refinements: int = MAX_REFINEMENTS) -> Judgement:
    """The verifier's judgement of ``stored``, recorded in ``log`` (the masklet's frames examined, one verdict)."""
    check_awaiting_verdict(stored)
    judgement = verifier.judge(stored.masklet)
    if judgement.verdict is Verdict.UNSATISFACTORY and stored.refinement_round >= max_refinements:
        reason = f"still unsatisfactory after {stored.refinement_round} refinements: {judgement.reason}"
        judgement = Judgement(Verdict.REJECTED, reason, judgement.frames, judgement.jf)
    log.verdict(judgement.verdict, reason=judgement.reason, jf=judgement.jf, frames=stored.masklet.frame_count)
    return judgement
