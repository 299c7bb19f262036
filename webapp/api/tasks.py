"""``/api/tasks``: claim a task, keep its lease, work it (clicks, strokes, propagation, undo), submit it.

Each action is authorised twice: a read before any model runs (so an anonymous request or
someone else's task never costs a model call), and again inside the transaction that
records its annotation event; if that one refuses (the lease was lost meanwhile), the
change is reverted and the page told.
"""

from __future__ import annotations

import json
import logging
import queue as queue_module
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from engine.errors import BadPromptError, DataEngineError, LeaseLostError
from engine.queues import Queue, parse_queue
from webapp.api.deps import changing, session_token, web
from webapp.work import HeldTask
from webapp.workspace import AnnotationWorkspace, Change, TaskView, VerifyWorkspace, Workspace

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/tasks", tags=["tasks"])

Frame = Annotated[int, Field(ge=0, le=10_000_000)]
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
MAX_STROKE_POINTS = 4000


class ClaimBody(BaseModel):
    queue: str | None = Field(None, max_length=32)


class ClickBody(BaseModel):
    frame: Frame
    x: Coordinate
    y: Coordinate
    positive: bool = True


class StrokeBody(BaseModel):
    frame: Frame
    points: list[tuple[Coordinate, Coordinate]] = Field(min_length=1, max_length=MAX_STROKE_POINTS)
    radius: float = Field(gt=0, le=256, allow_inf_nan=False)
    eraser: bool = False


class FrameBody(BaseModel):
    frame: Frame


class RangeBody(BaseModel):
    first: Frame
    last: Frame


class SubmitBody(BaseModel):
    allow_untouched: bool = False


@router.post("/claim")
def claim(body: ClaimBody, request: Request, token: str = Depends(changing)) -> dict:
    """The user's next task in ``queue`` (or the first of their queues with work); ``task`` null: none ready."""
    app = web(request)
    chosen: Queue | None = None if body.queue is None else parse_queue(body.queue)
    user, held = app.work.claim(token, chosen, app.config.lease_s)
    if held is None:
        return {"task": None, "message": "nothing is ready for you in " + (chosen.value if chosen else "your queues")}
    return {"task": _summary(held), "page": _page(held)}


@router.get("/mine")
def mine(request: Request) -> dict:
    """The tasks the user holds now (to go back to one after closing its page)."""
    user, held = web(request).work.leased_to(session_token(request))
    return {"tasks": [{**_summary(h), "page": _page(h)} for h in held]}


@router.get("/{task_id}")
def task_state(task_id: int, request: Request) -> dict:
    """The task as its page shows it: what it is, its tools, and every frame's status and mask."""
    app = web(request)
    user, held = app.work.held(session_token(request), task_id)
    workspace = app.workspace(user.name, held)
    return {"task": view_json(workspace.view, held, app.config.lease_s), "frames": workspace.state(), "undo": _undo_depth(workspace)}


@router.post("/{task_id}/heartbeat")
def heartbeat(task_id: int, request: Request, token: str = Depends(changing)) -> dict:
    """Keep the lease while the page is open; 409 once it is lost (the page then refuses to submit)."""
    app = web(request)
    try:
        expires = app.work.heartbeat(token, task_id, app.config.lease_s)
    except LeaseLostError:
        app.workspaces.drop(task_id)
        raise
    return {"lease_expires_at": expires.isoformat()}


@router.post("/{task_id}/click")
def click(task_id: int, body: ClickBody, request: Request, token: str = Depends(changing)) -> dict:
    return _act(request, token, task_id, lambda ws: ws.click(body.frame, body.x, body.y, body.positive))


@router.post("/{task_id}/stroke")
def stroke(task_id: int, body: StrokeBody, request: Request, token: str = Depends(changing)) -> dict:
    return _act(request, token, task_id, lambda ws: ws.stroke(body.frame, body.points, body.radius, eraser=body.eraser))


@router.post("/{task_id}/clear")
def clear(task_id: int, body: FrameBody, request: Request, token: str = Depends(changing)) -> dict:
    return _act(request, token, task_id, lambda ws: ws.clear(body.frame))


@router.post("/{task_id}/accept")
def accept(task_id: int, body: FrameBody, request: Request, token: str = Depends(changing)) -> dict:
    return _act(request, token, task_id, lambda ws: ws.accept(body.frame))


@router.post("/{task_id}/examine")
def examine(task_id: int, body: RangeBody, request: Request, token: str = Depends(changing)) -> dict:
    """Frames looked at (the page reports runs of frames viewed): time spent examining."""
    return _act(request, token, task_id, lambda ws: ws.examine(body.first, body.last), verify_too=True)


@router.post("/{task_id}/undo")
def undo(task_id: int, request: Request, token: str = Depends(changing)) -> dict:
    """Take back the last action; its event stays (it happened, and took its time), marked undone."""
    app = web(request)
    workspace = _annotation_workspace(request, token, task_id)
    with workspace.lock.held():
        last = workspace.undoable()
        _guarded(app, task_id, lambda: app.work.mark_undone(token, task_id, last.event_id))
        change = workspace.undo()
    return {"frames": [workspace.frame_state(i) for i in sorted(change.saved.frames)] if change.saved else [],
            "undone": change.event.action.value, "undo": _undo_depth(workspace)}


@router.post("/{task_id}/propagate")
def propagate(task_id: int, body: FrameBody, request: Request, token: str = Depends(changing)) -> StreamingResponse:
    """Propagate from a frame, streamed as NDJSON: one line per frame as it is computed, then a last line.

    The last line is ``{"done": true, ...}`` or ``{"error": ...}``. The propagation stops at
    ``POST .../propagate/cancel`` or when the page goes away, and its event says how far it got.
    """
    app = web(request)
    workspace = _annotation_workspace(request, token, task_id)
    workspace.check_propagation(body.frame)
    workspace.lock.acquire(wait_s=0.5)
    lines: queue_module.Queue[dict[str, Any] | None] = queue_module.Queue()

    def run() -> None:
        try:
            change = workspace.propagate(body.frame, lambda state: lines.put(state))
            _record(app, token, task_id, workspace, change)
            lines.put({"done": True, "frames": change.event.payload["frames"], "cancelled": change.event.payload["cancelled"],
                       "event_id": change.event_id, "undo": _undo_depth(workspace)})
        except DataEngineError as exc:
            lines.put({"error": str(exc), "kind": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001 - the stream must end with a line, whatever happened
            log.exception("propagation of task %s failed", task_id)
            lines.put({"error": f"propagation failed: {type(exc).__name__}", "kind": "InternalError"})
        finally:
            workspace.lock.release()
            lines.put(None)

    threading.Thread(target=run, name=f"propagate-{task_id}", daemon=True).start()

    def stream() -> Iterator[bytes]:
        try:
            while (line := lines.get()) is not None:
                yield (json.dumps(line, separators=(",", ":")) + "\n").encode()
        finally:
            workspace.cancel.set()  # the page went away (or the run ended: then this changes nothing)

    return StreamingResponse(stream(), media_type="application/x-ndjson", headers={"X-Accel-Buffering": "no"})


@router.post("/{task_id}/propagate/cancel")
def cancel_propagation(task_id: int, request: Request, token: str = Depends(changing)) -> dict:
    workspace = _annotation_workspace(request, token, task_id)
    workspace.cancel.set()
    return {"cancelling": True}


@router.post("/{task_id}/submit")
def submit(task_id: int, body: SubmitBody, request: Request, token: str = Depends(changing)) -> dict:
    """End the task: the masklet, with every event of its making, goes to verification."""
    app = web(request)
    workspace = _annotation_workspace(request, token, task_id)
    with workspace.lock.held():
        masklet = workspace.masklet(allow_untouched=body.allow_untouched)
        submitted = _guarded(
            app,
            task_id,
            lambda: app.work.submit(
                token,
                task_id,
                masklet,
                phase=workspace.phase,
                model_version_id=workspace.segmenters.model_version_id,
                edited_frames=sorted(workspace.edited),
                event_ids=workspace.event_ids,
                submit_event=workspace.submit_event(),
            ),
        )
    app.workspaces.drop(task_id)
    return {"masklet_id": submitted.masklet_id, "verify_task_id": submitted.verify_task_id}


# --- shared steps -----------------------------------------------------------------------------------


def _act(request: Request, token: str, task_id: int, action: Callable[[Any], Change], *, verify_too: bool = False) -> dict:
    app = web(request)
    user, held = app.work.held(token, task_id)
    workspace = app.workspace(user.name, held)
    if isinstance(workspace, VerifyWorkspace) and not verify_too:
        raise BadPromptError(f"task {task_id} is a verify task: it takes a verdict, not annotation")
    with workspace.lock.held():
        change = action(workspace)
        _record(app, token, task_id, workspace, change)
    frames = [workspace.frame_state(i) for i in change.frames] if isinstance(workspace, AnnotationWorkspace) else []
    return {"frames": frames, "event_id": change.event_id, "undo": _undo_depth(workspace)}


def _record(app: Any, token: str, task_id: int, workspace: Workspace, change: Change) -> None:
    """Record the change's event (authorised in that transaction); revert the change if refused."""
    try:
        (event_id,) = _guarded(app, task_id, lambda: app.work.record(token, task_id, [change.event]))
    except BaseException:
        workspace.revert(change)
        raise
    workspace.committed(change, event_id)


def _guarded(app: Any, task_id: int, call: Callable[[], Any]) -> Any:
    """``call()``; a lost lease also closes the task's workspace (its work can no longer be submitted)."""
    try:
        return call()
    except LeaseLostError:
        app.workspaces.drop(task_id)
        raise


def _annotation_workspace(request: Request, token: str, task_id: int) -> AnnotationWorkspace:
    app = web(request)
    user, held = app.work.held(token, task_id)
    workspace = app.workspace(user.name, held)
    if not isinstance(workspace, AnnotationWorkspace):
        raise BadPromptError(f"task {task_id} is a verify task: it takes a verdict, not annotation")
    return workspace


def _undo_depth(workspace: Workspace) -> int:
    return len(workspace.undo_stack) if isinstance(workspace, AnnotationWorkspace) else 0


def _summary(held: HeldTask) -> dict:
    task = held.task
    return {
        "id": task.id,
        "queue": task.queue.value,
        "video_id": task.video_id,
        "masklet_id": task.masklet_id,
        "lease_expires_at": held.expires_at.isoformat(),
    }


def _page(held: HeldTask) -> str:
    return f"/{'verify' if held.task.queue is Queue.VERIFY else 'annotate'}/{held.task.id}"


def view_json(view: TaskView, held: HeldTask, lease_s: float) -> dict:
    data = asdict(view)
    data["queue"] = view.queue.value
    data["tools"] = [t.value for t in view.tools]
    data["lease_expires_at"] = held.expires_at.isoformat()
    data["lease_s"] = lease_s  # the page heartbeats every third of it
    return data
