"""``/api/tasks/{id}/verdict``: a verifier's verdict on the masklet of their verify task."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from engine.errors import BadPromptError, LeaseLostError, QueueError
from engine.queues import Verdict
from webapp.api.deps import changing, web
from webapp.workspace import VerifyWorkspace

router = APIRouter(prefix="/api/tasks", tags=["verify"])


class VerdictBody(BaseModel):
    verdict: Literal["satisfactory", "unsatisfactory", "rejected"]
    note: str | None = Field(None, max_length=2000)  # unsatisfactory: what is wrong; rejected: why
    frames: list[int] = Field(default_factory=list, max_length=10_000)  # unsatisfactory: where


@router.post("/{task_id}/verdict")
def verdict(task_id: int, body: VerdictBody, request: Request, token: str = Depends(changing)) -> dict:
    """Satisfactory (to the dataset), unsatisfactory (to refinement, with a note and frames) or rejected (with a reason)."""
    app = web(request)
    user, held = app.work.held(token, task_id)
    workspace = app.workspace(user.name, held)
    if not isinstance(workspace, VerifyWorkspace):
        raise BadPromptError(f"task {task_id} is a {held.task.queue.value} task: it takes annotation, not a verdict")
    chosen = Verdict(body.verdict)
    note = (body.note or "").strip() or None
    if chosen is not Verdict.SATISFACTORY and note is None:
        raise QueueError(f"an {chosen.value} verdict needs a note saying what is wrong" if chosen is Verdict.UNSATISFACTORY
                         else "a rejected masklet needs a reason (what makes it unusable)")
    frames = sorted(set(body.frames))
    if any(not 0 <= f < workspace.view.frame_count for f in frames):
        raise BadPromptError(f"verdict frames must lie in 0..{workspace.view.frame_count - 1}")
    with workspace.lock.held():
        try:
            judged = app.work.judge(
                token, task_id, chosen, reason=note, frames=frames, verdict_event=workspace.verdict_event(chosen, note, frames)
            )
        except LeaseLostError:
            app.workspaces.drop(task_id)
            raise
    app.workspaces.drop(task_id)
    return {"verdict": judged.verdict.value, "verification_id": judged.verification_id, "next_task_id": judged.next_task_id}
