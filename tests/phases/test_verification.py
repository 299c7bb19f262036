"""Verification: the verdict a simulated verifier gives, and when a masklet is refused a verdict."""

from __future__ import annotations

import numpy as np
import pytest

from engine.annotation import Action, ActionLog, EventContext
from engine.annotation_store import StoredMasklet
from engine.errors import AlreadyVerifiedError
from engine.masklets import Masklet, MaskletSource
from engine.masks import encode
from engine.queues import Verdict
from engine.simulated_annotator import SimulatedVerifier
from engine.time_model import ManualClock, TimeModel
from phases.verification import verify

H, W, FRAMES = 48, 64, 6


def masks(shift: int = 0, cut: bool = False) -> tuple:
    out = []
    for i in range(FRAMES):
        m = np.zeros((H, W), bool)
        m[10:30, 10 + i + shift : 30 + i + shift] = True
        if cut and i in (1, 2, 3, 4):
            m[10:30, 10 + i : 18 + i] = False
        out.append(encode(m))
    return tuple(out)


TRUTH = Masklet("v", 0, MaskletSource.GROUND_TRUTH, masks())


def stored(masklet_masks: tuple, *, status: str = "in_verification", round_: int = 0) -> StoredMasklet:
    return StoredMasklet(7, Masklet("v", 0, MaskletSource.MANUAL, masklet_masks), status, 3, "ann", round_)


def log() -> ActionLog:
    return ActionLog(EventContext("v", "ver", 3), frame_count=FRAMES, time_model=TimeModel(), clock=ManualClock())


def test_a_good_masklet_is_satisfactory_and_the_verdict_is_timed() -> None:
    action_log = log()
    judgement = verify(stored(masks()), SimulatedVerifier(TRUTH, name="ver"), action_log)
    assert judgement.verdict is Verdict.SATISFACTORY
    (event,) = action_log.events
    assert event.action is Action.VERDICT and event.payload["verdict"] == "satisfactory"
    assert event.duration_s == pytest.approx(FRAMES * 0.1 + 1.5)


def test_a_flawed_masklet_is_unsatisfactory_with_its_failing_frames() -> None:
    judgement = verify(stored(masks(cut=True)), SimulatedVerifier(TRUTH, name="ver"), log())
    assert judgement.verdict is Verdict.UNSATISFACTORY and judgement.frames == (1, 2, 3, 4)


def test_still_unsatisfactory_after_the_last_refinement_is_rejected() -> None:
    judgement = verify(stored(masks(cut=True), round_=2), SimulatedVerifier(TRUTH, name="ver"), log(), max_refinements=2)
    assert judgement.verdict is Verdict.REJECTED
    assert judgement.reason.startswith("still unsatisfactory after 2 refinements")


def test_a_masklet_following_nothing_is_rejected() -> None:
    empty = tuple(encode(np.zeros((H, W), bool)) for _ in range(FRAMES))
    assert verify(stored(empty), SimulatedVerifier(TRUTH, name="ver"), log()).verdict is Verdict.REJECTED


@pytest.mark.parametrize("status", ["satisfactory", "unsatisfactory", "rejected", "draft"])
def test_a_masklet_not_waiting_for_a_verdict_gets_none(status: str) -> None:
    action_log = log()
    with pytest.raises(AlreadyVerifiedError, match=f"masklet 7 is {status}"):
        verify(stored(masks(), status=status), SimulatedVerifier(TRUTH, name="ver"), action_log)
    assert action_log.events == ()
