"""Phase 2, "SAM + SAM 2 Mask": Phase 1 on the first frame, then mask propagation.

As in the SAM 2 paper's second phase: the annotator segments the object where it first
appears as in Phase 1 (SAM clicks, brush, eraser), a mask-only SAM 2 propagates that mask
through the video, and the annotator examines the result. At the first frame that misses the
target they throw the propagated mask away, annotate the frame again from scratch as in
Phase 1, and propagate again from there with the new mask; and so on to the last frame, or
until the correction budget is spent.
"""

from __future__ import annotations

from engine.annotation import AnnotatedMasklet
from phases.procedure import PhaseJob, Workspace, annotate_from_scratch, find_object, propagate, review

PHASE = 2


def annotate(job: PhaseJob) -> AnnotatedMasklet:
    """Annotate ``job``'s object with SAM on the frames it must, SAM 2 Mask on the rest."""
    ws = Workspace(job, PHASE)
    image = job.segmenters.image(job.frames)
    tracker = job.segmenters.tracker(job.frames, job.object_id, mask_only=True)

    def reannotate(frame: int) -> None:
        ws.log.clear(frame)
        annotate_from_scratch(ws, frame, image)
        propagate(ws, tracker, frame, prompt=ws.masks[frame])

    first = find_object(ws)
    annotate_from_scratch(ws, first, image)
    propagate(ws, tracker, first, prompt=ws.masks[first])
    review(ws, first + 1, reannotate)
    return ws.finish()
