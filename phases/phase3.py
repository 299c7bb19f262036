"""Phase 3, "SAM 2": the full video model in the loop, for annotation and for refinement.

As in the SAM 2 paper's third phase: the annotator clicks on the object where it first
appears, with SAM 2 itself (its memory, its clicks), propagates, and examines the result. On a
frame that misses the target they do not start again: refinement clicks correct SAM 2's mask
on that frame, the frame joins the model's memory, and propagating again carries the
correction forward; and so on to the last frame, or until the correction budget is spent.

:func:`refine` is the same work on a masklet that verification found unsatisfactory: the
masklet is loaded into the tool and the annotator corrects the frames that fail.
"""

from __future__ import annotations

from engine.annotation import AnnotatedMasklet
from engine.masklets import Masklet
from engine.masks import decode
from phases.procedure import PhaseJob, Workspace, annotate_from_scratch, find_object, propagate, refine_frame, review

PHASE = 3


def annotate(job: PhaseJob) -> AnnotatedMasklet:
    """Annotate ``job``'s object with SAM 2: clicks, propagation, refinement clicks."""
    ws = Workspace(job, PHASE)
    tracker = job.segmenters.tracker(job.frames, job.object_id, mask_only=False)

    def correct(frame: int) -> None:
        brushed = refine_frame(ws, frame, tracker)
        propagate(ws, tracker, frame, prompt=ws.masks[frame] if brushed else None)

    first = find_object(ws)
    brushed = annotate_from_scratch(ws, first, tracker)
    propagate(ws, tracker, first, prompt=ws.masks[first] if brushed else None)
    review(ws, first + 1, correct)
    return ws.finish()


def refine(job: PhaseJob, masklet: Masklet, *, refines: int | None = None, round_: int = 1) -> AnnotatedMasklet:
    """Refine an unsatisfactory ``masklet`` with the Phase 3 tools; a new masklet comes back.

    ``refines`` (the old masklet's catalog id) and ``round_`` (1 for a first refinement) are
    recorded with the submission, so verification knows how often an object came back.
    """
    ws = Workspace(job, PHASE)
    tracker = job.segmenters.tracker(job.frames, job.object_id, mask_only=False)
    ws.masks = [decode(rle).copy() for rle in masklet.masks]
    seed = masklet.first_appeared_frame
    if seed is not None:  # loading the masklet into the tool: the model learns it from its first frame
        with ws.model_call(seed) as stopwatch:
            tracker.add_mask(seed, ws.masks[seed])
        ws.log.model_time(stopwatch.seconds)

    def correct(frame: int) -> None:
        brushed = refine_frame(ws, frame, tracker)
        propagate(ws, tracker, frame, prompt=ws.masks[frame] if brushed else None)

    review(ws, 0, correct)
    return ws.finish(refines=refines, round=round_)
