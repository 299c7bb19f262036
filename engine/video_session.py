"""Prompts on some frames of a video become masklets on all of them: SAM 2's video predictor.

A :class:`VideoSession` holds one video (read lazily through a :class:`FrameSource`) and the
memory of every object being tracked in it. Prompts (clicks or masks) on a frame make that
frame a *conditioning frame* of the object; :meth:`VideoSession.propagate` then tracks every
object through the video, attending to the conditioning frames and the most recent tracked
frames. A correction on a frame that was already tracked also becomes a conditioning frame, so
re-propagating keeps it (and every earlier correction) instead of overwriting it. Clicks on a
frame that already has a mask (tracked, or from earlier clicks) are decoded together with that
mask's logits, as SAM 2's own predictor does (:class:`engine.model_loading.PreviousMaskRefinement`),
so a click corrects the mask where it lands.

``mask_only`` sessions accept mask prompts only: Phase 2's "SAM 2 Mask", which propagates
the masks Phase 1 annotators drew.

Built on transformers' ``Sam2VideoModel`` and ``Sam2VideoInferenceSession``, or EdgeTAM's
``EdgeTamVideoModel`` and ``EdgeTamVideoInferenceSession`` (the same session, field for field,
and the same processor); the few places where this module reaches into the session's state
are marked and explained.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from transformers import EdgeTamVideoInferenceSession, Sam2VideoInferenceSession

from engine.errors import (
    BadPromptError,
    IncompatibleModelError,
    PredictorStateError,
    UnknownObjectError,
)
from engine.frame_source import FrameSource
from engine.masks import Rle, encode, validate_mask
from engine.mask_upsampling import masks_from_logits
from engine.model_loading import PREVIOUS_LOGITS_CLAMP, LoadedModel
from engine.prompts import check_box, check_frame_index, check_points
from engine.segmenter_config import ModelFamily

Direction = Literal["forward", "backward", "both"]
# transformers' two session classes: the same fields and methods, one per model family.
InferenceSession = Sam2VideoInferenceSession | EdgeTamVideoInferenceSession
STABILITY_OFFSET = 1.0  # logit margin of SAM's stability score (masks at -1 and +1 agree)


@dataclass(frozen=True)
class ObjectMask:
    """One object on one frame.

    ``score`` is the model's probability that the object is present; ``visible`` whether it
    judged the object present (SA-V marks invisible frames with an empty mask);
    ``stability`` the IoU of the mask thresholded at logits -1 and +1, on the model's
    low-resolution logits (SA-V's ``masklet_stability_score`` per frame; 1.0 for an empty mask).
    """

    object_id: int
    mask: np.ndarray  # (height, width) bool at the video's resolution
    score: float
    visible: bool
    stability: float

    def rle(self) -> Rle:
        return encode(self.mask)


@dataclass(frozen=True)
class FrameResult:
    """Every tracked object on one frame, in the order objects were added."""

    frame: int
    objects: tuple[ObjectMask, ...]

    def object(self, object_id: int) -> ObjectMask:
        for obj in self.objects:
            if obj.object_id == object_id:
                return obj
        raise UnknownObjectError(f"object {object_id} is not in the result for frame {self.frame}")

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(obj.object_id for obj in self.objects)


class _LazyFrames:
    """Makes a transformers inference session read frames from a FrameSource when needed.

    The stock session keeps every preprocessed frame in memory (12 MB a frame at 1024 px);
    here only the image encoder's cache (one frame) stays, and the model asks for pixels
    through ``get_frame`` exactly when that cache misses. Mixed into each family's session
    class below, whose constructor it calls.
    """

    def __init__(self, source: FrameSource, pixels: Any, **kwargs: Any) -> None:
        height, width = source.size
        super().__init__(video=None, video_height=height, video_width=width, **kwargs)
        self._source = source
        self._pixels = pixels
        # Set by VideoSession for the one prompt being decoded; read by PreviousMaskRefinement.
        self.refinement_logits: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def num_frames(self) -> int:
        return self._source.frame_count

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        return self._pixels(self._source.load(frame_idx)).to(self.inference_device, dtype=self.dtype)


class _LastFrame:
    """A FrameSource that keeps the frame it loaded last.

    The model reads a frame's pixels and, right after, mask upsampling reads the same frame as
    its guide; with this the source (an object store, a decoder) is asked once.
    """

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._last: tuple[int, np.ndarray] | None = None

    @property
    def frame_count(self) -> int:
        return self._source.frame_count

    @property
    def size(self) -> tuple[int, int]:
        return self._source.size

    def load(self, index: int) -> np.ndarray:
        if self._last is None or self._last[0] != index:
            self._last = (index, self._source.load(index))
        return self._last[1]


class _LazySam2Session(_LazyFrames, Sam2VideoInferenceSession):
    """SAM 2's inference session, reading frames lazily."""


class _LazyEdgeTamSession(_LazyFrames, EdgeTamVideoInferenceSession):
    """EdgeTAM's inference session (a copy of SAM 2's in transformers 5.24), reading frames lazily."""


_LAZY_SESSIONS: dict[ModelFamily, type[InferenceSession]] = {
    ModelFamily.SAM2: _LazySam2Session,
    ModelFamily.EDGETAM: _LazyEdgeTamSession,
}


class VideoSession:
    """Interactive multi-object tracking in one video with SAM 2 (or EdgeTAM) memory."""

    def __init__(self, model: LoadedModel, frames: FrameSource, *, mask_only: bool = False) -> None:
        if model.family not in _LAZY_SESSIONS or model.task != "video":
            raise IncompatibleModelError(
                f"{model.name} ({model.family}, {model.task}) cannot track video; "
                "build a SAM 2 or EdgeTAM model with task='video'"
            )
        self._model = model
        frames = _LastFrame(frames)
        self._frames = frames
        # mask_only: Phase 2 (SAM 2 Mask) must propagate annotators' masks, never clicks.
        self._mask_only = mask_only
        self._height, self._width = frames.size
        self._session = _LAZY_SESSIONS[model.family](
            frames,
            self._pixels,
            inference_device=model.device.device,
            inference_state_device=model.device.device,
            video_storage_device=model.device.device,
            dtype=torch.float32,  # a real dtype: the session's default is the string "float32"
        )
        self._shared_pos_enc: dict[tuple[Any, ...], torch.Tensor] = {}

    # --- what the session holds ------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        return self._frames.frame_count

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the video's frames and of every mask."""
        return self._height, self._width

    @property
    def mask_only(self) -> bool:
        return self._mask_only

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(self._session.obj_ids)

    def conditioning_frames(self, object_id: int) -> tuple[int, ...]:
        """Frames whose prompts the object's track is anchored to, in order."""
        obj_idx = self._obj_idx(object_id)
        return tuple(sorted(self._session.output_dict_per_obj[obj_idx]["cond_frame_outputs"]))

    # --- prompts -------------------------------------------------------------------------

    def add_points(
        self,
        frame: int,
        object_id: int,
        points: Sequence[Sequence[float]] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        box: Sequence[float] | None = None,
        replace: bool = True,
        refine: bool | np.ndarray = True,
    ) -> FrameResult:
        """Clicks ``(x, y)`` (labels 1 object / 0 not) for one object on one frame.

        Returns the masks of every object on that frame. ``replace=True`` (as the SAM 2 demo
        sends every click so far) replaces the object's earlier clicks on this frame;
        ``replace=False`` adds to them. New object ids start a new track.

        ``refine``: the mask the clicks correct, decoded with them as SAM 2 does. True: the
        object's latest mask on this frame, if it has one (tracked, or from earlier clicks);
        False: none, the clicks segment the frame anew; a ``(height, width)`` mask: that one,
        given to the decoder as a mask prompt's output would be (an annotator's brushed mask).
        """
        if self._mask_only:
            raise BadPromptError(
                "this session is mask-only (SAM 2 Mask, Phase 2): it propagates masks and refuses clicks; "
                "use add_mask, or open the session without mask_only for interactive tracking"
            )
        frame = check_frame_index(frame, self.frame_count)
        object_id = _check_object_id(object_id)
        coords, point_labels = check_points(points, labels, self.size)
        box_array = check_box(box, self.size) if box is not None else None
        if len(coords) == 0 and box_array is None:
            raise BadPromptError("no prompt: give at least one click or a box")
        if box_array is not None and not replace:
            raise BadPromptError("a box can only start a frame's prompt: pass replace=True with it")
        if isinstance(refine, (bool, np.bool_)):
            refines: bool | torch.Tensor = bool(refine)
        else:
            validate_mask(refine, self._height, self._width)
            refines = self._mask_logits(np.asarray(refine, dtype=bool))
        inputs: dict[str, Any] = {
            "input_points": [[coords.tolist()]] if len(coords) else None,
            "input_labels": [[point_labels.tolist()]] if len(coords) else None,
            "input_boxes": [[box_array.tolist()]] if box_array is not None else None,
            "clear_old_inputs": replace,
        }
        return self._prompt(frame, object_id, inputs, refine=refines)

    def add_mask(self, frame: int, object_id: int, mask: np.ndarray) -> FrameResult:
        """A whole mask for one object on one frame (``(height, width)``, bool or 0/1).

        An empty mask says the object is absent from the frame.
        """
        frame = check_frame_index(frame, self.frame_count)
        object_id = _check_object_id(object_id)
        validate_mask(mask, self._height, self._width)
        return self._prompt(frame, object_id, {"input_masks": np.asarray(mask, dtype=bool)})

    # --- tracking ------------------------------------------------------------------------

    def propagate(
        self,
        from_frame: int | None = None,
        direction: Direction = "forward",
        max_frames: int | None = None,
    ) -> Iterator[FrameResult]:
        """Track every object frame by frame, yielding each frame's masks as they come.

        ``from_frame`` defaults to the earliest conditioning frame of any object; ``both``
        goes forward first, then backward (the start frame is yielded once). ``max_frames``
        bounds how far each direction goes beyond the start frame. Arguments are checked
        here, before the first frame is asked for.
        """
        if direction not in ("forward", "backward", "both"):
            raise BadPromptError(f"direction must be 'forward', 'backward' or 'both', got {direction!r}")
        if not self._session.obj_ids:
            raise PredictorStateError("nothing to propagate: add clicks or a mask for an object first")
        start = self._start_frame() if from_frame is None else check_frame_index(from_frame, self.frame_count)
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 0):
            raise BadPromptError(f"max_frames must be a count >= 0, got {max_frames!r}")
        reach = self.frame_count if max_frames is None else int(max_frames)
        order: list[tuple[int, bool]] = []
        if direction in ("forward", "both"):
            order += [(f, False) for f in range(start, min(start + reach, self.frame_count - 1) + 1)]
        if direction in ("backward", "both"):
            first = start - 1 if direction == "both" else start
            order += [(f, True) for f in range(first, max(start - reach, 0) - 1, -1)]
        return (self._run_frame(frame, reverse) for frame, reverse in order)

    def remove_object(self, object_id: int) -> None:
        """Stop tracking ``object_id`` and forget its prompts and memory; others are untouched."""
        self._obj_idx(object_id)
        _drop_object(self._session, object_id)

    def reset(self) -> None:
        """Forget every object, prompt and memory; the video stays open."""
        self._session.reset_inference_session()

    # --- internals -------------------------------------------------------------------------

    def _prompt(
        self,
        frame: int,
        object_id: int,
        inputs: dict[str, Any],
        *,
        refine: bool | torch.Tensor = False,
    ) -> FrameResult:
        """Register a checked prompt and run the model on its frame, as SAM 2 does on a click.

        ``refine``: the mask the clicks are decoded with: the object's latest output on the
        frame (True), none (False), or these low-resolution logits.

        If the model step fails (a frame that cannot be loaded), the object's prompts and
        outputs on that frame are put back as they were, and a new object is dropped again.
        """
        session = self._session
        is_new = object_id not in session.obj_ids
        saved = None if is_new else _FrameState.save(session, session.obj_id_to_idx(object_id), frame)
        if isinstance(refine, torch.Tensor):
            previous = refine
        else:
            previous = saved.previous_logits() if refine and saved is not None else None
        if previous is not None:
            # A new object has no index until the processor adds it: the one it will get.
            obj_idx = saved.obj_idx if saved is not None else len(session.obj_ids)
            session.refinement_logits[(obj_idx, frame)] = previous
        try:
            self._model.processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=frame, obj_ids=object_id, **inputs
            )
            reverse = saved is not None and saved.correction_reverse
            result = self._run_frame(frame, reverse)
        except Exception:
            session.obj_with_new_inputs = []
            if saved is not None:
                saved.restore(session)
            elif object_id in session.obj_ids:
                _drop_object(session, object_id)  # leave no object without a conditioning frame
            raise
        finally:
            session.refinement_logits.clear()
        self._promote_to_conditioning(session.obj_id_to_idx(object_id), frame)
        return result

    def _promote_to_conditioning(self, obj_idx: int, frame: int) -> None:
        """Keep a correction on a tracked frame as a conditioning frame.

        transformers stores the output of a prompt on an already-tracked frame with the
        ordinary tracked frames, so the next propagation would recompute and lose it; SAM 2's
        ``add_all_frames_to_correct_as_cond`` behaviour moves it to the conditioning frames.
        """
        outputs = self._session.output_dict_per_obj[obj_idx]
        moved = outputs["non_cond_frame_outputs"].pop(frame, None)
        if moved is not None:
            outputs["cond_frame_outputs"][frame] = moved

    def _run_frame(self, frame: int, reverse: bool) -> FrameResult:
        with torch.inference_mode(), self._model.device.autocast():
            out = self._model.module(inference_session=self._session, frame_idx=frame, reverse=reverse)
        self._trim_state(frame)
        return self._frame_result(frame, out.object_ids, out.pred_masks, out.object_score_logits)

    def _frame_result(
        self, frame: int, object_ids: list[int], low_res: torch.Tensor, score_logits: torch.Tensor
    ) -> FrameResult:
        logits = self._model.processor.post_process_masks(
            [low_res.float()], original_sizes=[[self._height, self._width]], binarize=False
        )[0][:, 0]
        model = self._model
        masks = masks_from_logits(logits.cpu().numpy(), self._frames.load(frame), model.mask_grid, model.mask_upsampling)
        # On the model's own low-resolution logits: the same score for a fraction of the work.
        stability = _stability(low_res[:, 0].float()).cpu().numpy()
        scores = torch.sigmoid(score_logits.float().reshape(-1)).cpu().numpy()
        visible = (score_logits.reshape(-1) > 0).cpu().numpy()
        objects = tuple(
            ObjectMask(int(obj), masks[i], float(scores[i]), bool(visible[i]), float(stability[i]))
            for i, obj in enumerate(object_ids)
        )
        return FrameResult(frame, objects)

    def _trim_state(self, frame: int) -> None:
        """Drop what transformers keeps per frame but never reads again, so long videos fit.

        ``high_res_masks`` (one image-sized float map per object and frame, 4 MB at 1024 px)
        is only needed inside the step that made it; the memory position encoding depends on
        the feature shape only, so one tensor is shared instead of a copy per frame.
        """
        for outputs in self._session.output_dict_per_obj.values():
            for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
                out = outputs[kind].get(frame)
                if out is None:
                    continue
                out.pop("high_res_masks", None)
                pos = out.get("maskmem_pos_enc")
                if isinstance(pos, torch.Tensor):
                    key = (tuple(pos.shape), pos.dtype, pos.device)
                    out["maskmem_pos_enc"] = self._shared_pos_enc.setdefault(key, pos)

    def _start_frame(self) -> int:
        frames = [f for outputs in self._session.output_dict_per_obj.values() for f in outputs["cond_frame_outputs"]]
        return min(frames)

    def _obj_idx(self, object_id: int) -> int:
        if object_id not in self._session.obj_ids:
            raise UnknownObjectError(
                f"object {object_id} is not in this session (tracked: {list(self._session.obj_ids)}); "
                "add a prompt for it first"
            )
        return self._session.obj_id_to_idx(object_id)

    def _mask_logits(self, mask: np.ndarray) -> torch.Tensor:
        """A whole mask as low-resolution logits, ``(1, 1, h, w)``: +-10, as a mask prompt's output.

        transformers' ``_use_mask_as_output`` maps a mask at the model's input size to logits
        -10 / +10 and downsamples them to the mask decoder's input size; the same here, from
        the video's size.
        """
        module = self._model.module
        side = module.image_size
        tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
        resized = torch.nn.functional.interpolate(tensor, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        logits = torch.nn.functional.interpolate(
            resized * 20.0 - 10.0, size=module.prompt_encoder.mask_input_size, mode="bilinear", align_corners=False, antialias=True
        )
        return logits.to(self._model.device.device)

    def _pixels(self, frame: np.ndarray) -> torch.Tensor:
        """One RGB frame as the normalised ``(3, side, side)`` tensor the image encoder takes."""
        processed = self._model.processor.video_processor(videos=[frame[None]], return_tensors="pt")
        return processed["pixel_values_videos"][0, 0]


@dataclass
class _FrameState:
    """One object's prompts and outputs on one frame, saved before a prompt changes them."""

    obj_idx: int
    frame: int
    points: Any
    mask: Any
    cond_output: Any
    non_cond_output: Any
    tracked: Any

    @classmethod
    def save(cls, session: InferenceSession, obj_idx: int, frame: int) -> _FrameState:
        outputs = session.output_dict_per_obj[obj_idx]
        tracked = session.frames_tracked_per_obj[obj_idx].get(frame)
        state = cls(
            obj_idx,
            frame,
            session.point_inputs_per_obj[obj_idx].get(frame),
            session.mask_inputs_per_obj[obj_idx].get(frame),
            outputs["cond_frame_outputs"].get(frame),
            outputs["non_cond_frame_outputs"].get(frame),
            tracked,
        )
        if tracked is not None:
            # A correction on a tracked frame is decoded with memory and stored with the tracked
            # frames; an older conditioning output left on the frame would receive the new
            # memory features instead (transformers writes them to the conditioning output
            # first), so it is taken out until the correction replaces it.
            outputs["cond_frame_outputs"].pop(frame, None)
        return state

    def previous_logits(self) -> torch.Tensor | None:
        """The object's latest low-resolution logits on the frame, which new clicks refine.

        SAM 2's predictor looks for them as here: the frame's conditioning output (the clicks or
        mask given there before), else its tracked output; clamped as SAM 2 clamps them.
        """
        for output in (self.cond_output, self.non_cond_output):
            if output is not None and output.get("pred_masks") is not None:
                return output["pred_masks"].clamp(-PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)
        return None

    @property
    def correction_reverse(self) -> bool:
        """The direction the frame was tracked in: a correction is decoded the same way."""
        return bool(self.tracked is not None and self.tracked.get("reverse", False))

    def restore(self, session: InferenceSession) -> None:
        for per_frame, value in (
            (session.point_inputs_per_obj[self.obj_idx], self.points),
            (session.mask_inputs_per_obj[self.obj_idx], self.mask),
            (session.output_dict_per_obj[self.obj_idx]["cond_frame_outputs"], self.cond_output),
            (session.output_dict_per_obj[self.obj_idx]["non_cond_frame_outputs"], self.non_cond_output),
            (session.frames_tracked_per_obj[self.obj_idx], self.tracked),
        ):
            per_frame.pop(self.frame, None)
            if value is not None:
                per_frame[self.frame] = value


def _stability(logits: torch.Tensor) -> torch.Tensor:
    """SAM's stability score per object: IoU of the masks at logit +1 and -1."""
    inner = (logits > STABILITY_OFFSET).flatten(1).sum(1).float()
    outer = (logits > -STABILITY_OFFSET).flatten(1).sum(1).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


def _check_object_id(object_id: object) -> int:
    if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)):
        raise BadPromptError(f"an object id must be an integer, got {object_id!r}")
    return int(object_id)


def _drop_object(session: InferenceSession, object_id: int) -> None:
    """Remove one object from a transformers session and renumber the rest.

    transformers 5.24 has no object removal: objects are dense indices into per-object dicts,
    so the dicts are rebuilt without the object (what SAM 2's own ``remove_object`` does).
    """
    old_ids = list(session.obj_ids)
    kept = [obj for obj in old_ids if obj != object_id]
    old_idx = {obj: session.obj_id_to_idx(obj) for obj in old_ids}
    for name in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj"):
        per_obj = getattr(session, name)
        rebuilt = {new: per_obj[old_idx[obj]] for new, obj in enumerate(kept)}
        per_obj.clear()
        per_obj.update(rebuilt)
    # The id <-> index maps are private in transformers; there is no public way to edit them.
    session._obj_id_to_idx = OrderedDict((obj, i) for i, obj in enumerate(kept))
    session._obj_idx_to_id = OrderedDict((i, obj) for i, obj in enumerate(kept))
    session.obj_ids = kept
    session.obj_with_new_inputs = [obj for obj in session.obj_with_new_inputs if obj != object_id]
