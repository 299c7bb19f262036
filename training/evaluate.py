"""Validation of a model version, by the SAM 2 paper's protocols and by the engine's own objective.

* **Semi-supervised J&F**: the ground-truth mask on the object's first visible frame, then
  propagation (the SA-V val/test protocol, first and last frames not scored).
* **1-click and 3-click J&F**: clicks on the first visible frame placed as the paper's
  simulated annotator places them (the centre of the largest error region, positive on a
  miss), then propagation.
* **Phase 3 seconds per frame**: a simulated annotator annotates each validation object with
  Phase 3 on this model, costed by the engine's time model. This is what retraining is for:
  a better model means fewer clicks and fewer corrected frames.

Everything runs through the same predictors the phases use (:class:`engine.video_session.
VideoSession`), so what is measured is what annotators get.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import ConfigError, EmptyValidationSetError
from engine.jf import ObjectScore, score_object, summarize
from engine.masks import area, decode
from engine.masklets import Masklet
from engine.model_loading import LoadedModel
from engine.simulated_annotator import corrective_click
from engine.video_session import VideoSession
from training.videos import TrainingVideo

PROTOCOLS = ("mask", "click1", "click3")
# Which way the click protocols are decoded, recorded with every evaluation so that scores taken
# under different decodings are never compared: 1 until 2026-12-05 (every click decoded from the
# clicks alone), 2 since (a click on a frame that has a mask is decoded with it, as SAM 2 does;
# engine.model_loading.PreviousMaskRefinement). The mask protocol is the same under both. 3
# since 2026-12-06: masks reach the frame's resolution fitted to its edges (engine.
# mask_upsampling), which changes every protocol's scores; the model's setting is recorded too.
EVALUATION_PROTOCOL = 3


# The metrics that hold one value per validation video (for pairing rounds, training.gain): the
# registry keeps them with a version; summaries that print the metrics leave them out.
PER_VIDEO_KEYS = ("val_jf_per_video", "val_objects_per_video")


@dataclass(frozen=True)
class ModelEvaluation:
    """Validation results of one model version; ``metrics`` is what the registry stores."""

    jf: dict[str, float]  # protocol -> J&F over all validation objects
    objects: int
    videos: int
    seconds: float
    phase3_seconds_per_frame: float | None = None
    per_video: dict[str, dict[str, float]] = field(default_factory=dict)
    objects_per_video: dict[str, int] = field(default_factory=dict)
    mask_upsampling: str | None = None  # the model's (engine.mask_upsampling): scores depend on it

    @property
    def val_jf(self) -> float:
        """The headline the promotion gate compares: semi-supervised J&F."""
        return self.jf.get("mask", math.nan)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"val_jf": self.val_jf, "val_objects": self.objects, "val_videos": self.videos}
        out.update({f"val_jf_{name}": value for name, value in self.jf.items()})
        if self.phase3_seconds_per_frame is not None:
            out["val_phase3_seconds_per_frame"] = self.phase3_seconds_per_frame
        out["eval_seconds"] = self.seconds
        out["eval_protocol"] = EVALUATION_PROTOCOL
        if self.mask_upsampling is not None:
            out["eval_mask_upsampling"] = self.mask_upsampling
        # Each video's mask J&F and objects, so that a later round scored on the same videos can
        # pair its scores with these and tell a gain from the draw of videos (training.gain).
        out["val_jf_per_video"] = {video: jf["mask"] for video, jf in self.per_video.items() if "mask" in jf}
        out["val_objects_per_video"] = {video: self.objects_per_video[video] for video in out["val_jf_per_video"]}
        return out


def evaluate_model(
    model: LoadedModel,
    videos: Sequence[TrainingVideo],
    *,
    protocols: Sequence[str] = PROTOCOLS,
    phase3: Callable[[LoadedModel, Sequence[TrainingVideo]], float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelEvaluation:
    """Score ``model`` on the validation ``videos`` under each protocol.

    ``phase3`` (see :func:`phase3_seconds_per_frame`) adds the simulated annotation cost; it is
    optional because it takes longer than the rest together.
    """
    if not videos:
        raise EmptyValidationSetError("no validation videos: a model cannot be judged on nothing")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    began = time.perf_counter()
    scores: dict[str, list[ObjectScore]] = {p: [] for p in protocols}
    per_video: dict[str, dict[str, float]] = {}
    objects_per_video: dict[str, int] = {}
    for done, video in enumerate(videos, start=1):
        session = VideoSession(model, video.frames)
        video_scores: dict[str, list[ObjectScore]] = {p: [] for p in protocols}
        for masklet in video.masklets:
            first = _first_visible(masklet)
            if first is None:
                continue
            truth = [decode(m).astype(bool) for m in masklet.masks]
            for protocol in protocols:
                session.reset()
                predicted = _track(session, masklet.object_id, first, truth, protocol)
                score = score_object(video.video_id, masklet.object_id, zip(predicted, truth[first:]))
                if score is not None:
                    video_scores[protocol].append(score)
        for protocol, rows in video_scores.items():
            scores[protocol].extend(rows)
        per_video[video.video_id] = {p: summarize(rows).jf for p, rows in video_scores.items() if rows}
        objects_per_video[video.video_id] = max((len(rows) for rows in video_scores.values()), default=0)
        if progress is not None:
            progress(done, len(videos))
    objects = len(scores[protocols[0]]) if protocols else 0
    phase3_spf = phase3(model, videos) if phase3 is not None else None
    return ModelEvaluation(
        jf={p: summarize(rows).jf for p, rows in scores.items()},
        objects=objects,
        videos=len(videos),
        seconds=time.perf_counter() - began,
        phase3_seconds_per_frame=phase3_spf,
        per_video=per_video,
        objects_per_video=objects_per_video,
        mask_upsampling=model.mask_upsampling.name,
    )


def _first_visible(masklet: Masklet) -> int | None:
    return next((i for i, m in enumerate(masklet.masks) if area(m) > 0), None)


def _track(session: VideoSession, object_id: int, first: int, truth: list[np.ndarray], protocol: str) -> list[np.ndarray]:
    """Prompt one object on its first visible frame by ``protocol``; its masks from there to the end."""
    if protocol == "mask":
        session.add_mask(first, object_id, truth[first])
    else:
        clicks = 1 if protocol == "click1" else 3
        mask = np.zeros_like(truth[first])
        points: list[tuple[float, float]] = []
        labels: list[int] = []
        for _ in range(clicks):
            click = corrective_click(first, mask, truth[first])
            if click is None:
                break
            points.append((click.x, click.y))
            labels.append(1 if click.positive else 0)
            mask = session.add_points(first, object_id, points, labels).object(object_id).mask
    masks = {result.frame: result.object(object_id).mask for result in session.propagate(first, "forward")}
    return [masks[f] for f in range(first, len(truth))]


def phase3_seconds_per_frame(model: LoadedModel, videos: Sequence[TrainingVideo], *, seed: int = 0) -> float:
    """Annotator seconds per frame of simulated Phase 3 on ``videos`` with ``model`` in the loop.

    Only the annotator's time counts (the model's own compute is left out with a clock that
    does not advance), so two models compare on what they save people, whatever the machine's
    load while they were measured.
    """
    from engine.model_loading import image_model_from
    from engine.model_segmenters import ModelSegmenters
    from engine.simulated_annotator import SimulatedAnnotator
    from engine.time_model import ManualClock
    from phases import phase3
    from phases.procedure import PhaseJob

    segmenters = ModelSegmenters(model, image_model_from(model), None, model.name)
    seconds = 0.0
    frames = 0
    for video in videos:
        for masklet in video.masklets:
            if _first_visible(masklet) is None:
                continue
            annotator = SimulatedAnnotator(masklet, name="validation-annotator", seed=seed)
            job = PhaseJob(video.video_id, masklet.object_id, video.frames, annotator, segmenters, clock=ManualClock())
            seconds += phase3.annotate(job).seconds
            frames += len(masklet.masks)
    return seconds / frames if frames else math.nan
