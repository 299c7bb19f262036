"""Phase 1, "SAM per frame": every sampled frame annotated from scratch, no propagation.

As in the SAM 2 paper's first phase: the annotator segments the object on each frame with
SAM's interactive clicks, then perfects the mask with the brush and eraser. Every frame is
edited (the paper's 100%); frames where the object is not visible are searched and left
empty. Slow, but its masks owe nothing to a video model, which is why the paper annotated its
validation set this way, and why the other phases' masks are compared with Phase 1's.
"""

from __future__ import annotations

from engine.annotation import AnnotatedMasklet
from phases.procedure import PhaseJob, Workspace, annotate_from_scratch, first_appearance

PHASE = 1


def annotate(job: PhaseJob) -> AnnotatedMasklet:
    """Annotate ``job``'s object on every frame with the image model and the brush."""
    ws = Workspace(job, PHASE)
    first_appearance(ws)  # an object never visible is not a task
    image = job.segmenters.image(job.frames)
    for frame in range(ws.frame_count):
        annotate_from_scratch(ws, frame, image)
    return ws.finish()
