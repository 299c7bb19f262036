"""VideoSession: prompts, propagation, corrections kept as conditioning frames, objects, bad input.

sam2-compact with random weights: masks are meaningless, but every frame must come back with
every object, corrections must survive re-propagation, frames must load lazily, and refused
input must leave the session as it was.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.errors import BadMaskError, BadPromptError, IncompatibleModelError, PredictorStateError, UnknownObjectError
from engine.frame_source import ArrayFrames, StoredFrames
from engine.ingest import frame_key
from engine.masks import decode, encode, iou
from engine.model_loading import LoadedModel, build_model
from engine.segmenter_config import COMPACT
from engine.video_session import FrameResult, VideoSession
from storage.objects.local import LocalObjectStore
from tests.engine.sam_fixtures import CPU, PreviousLogitsSpy

FRAMES, HEIGHT, WIDTH = 8, 64, 96


class CountingFrames:
    """An in-memory frame source that records which frames the session loaded."""

    def __init__(self, frames: np.ndarray) -> None:
        self._inner = ArrayFrames(frames)
        self.loads: list[int] = []

    @property
    def frame_count(self) -> int:
        return self._inner.frame_count

    @property
    def size(self) -> tuple[int, int]:
        return self._inner.size

    def load(self, index: int) -> np.ndarray:
        self.loads.append(index)
        return self._inner.load(index)


def _synthetic_video() -> np.ndarray:
    """A yellow square moving right over a gradient, 8 frames of 64x96."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.stack([x * 2, y * 3, x + y], axis=-1).astype(np.uint8)
    frames = np.repeat(background[None], FRAMES, axis=0)
    for i in range(FRAMES):
        frames[i, 20:40, 10 + 7 * i : 30 + 7 * i] = (250, 240, 30)
    return frames


def _box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return build_model(COMPACT, device=CPU)


@pytest.fixture
def frames() -> CountingFrames:
    return CountingFrames(_synthetic_video())


@pytest.fixture
def session(model: LoadedModel, frames: CountingFrames) -> VideoSession:
    return VideoSession(model, frames)


def _check_frame(result: FrameResult, frame: int, objects: tuple[int, ...]) -> None:
    assert result.frame == frame
    assert result.object_ids == objects
    for obj in result.objects:
        assert obj.mask.shape == (HEIGHT, WIDTH) and obj.mask.dtype == np.bool_
        assert 0.0 <= obj.score <= 1.0
        assert obj.visible == (obj.score > 0.5)
        assert 0.0 <= obj.stability <= 1.0


def _masks(results: list[FrameResult], obj: int) -> dict[int, np.ndarray]:
    return {r.frame: r.object(obj).mask for r in results}


def test_a_click_returns_the_frame_and_propagation_covers_every_frame(session: VideoSession) -> None:
    _check_frame(session.add_points(0, 1, [[20, 30]], [1]), 0, (1,))
    results = list(session.propagate())
    assert [r.frame for r in results] == list(range(FRAMES))
    for r in results:
        _check_frame(r, r.frame, (1,))
    assert session.conditioning_frames(1) == (0,)


def test_propagation_starts_at_the_first_prompt_and_goes_either_way(session: VideoSession) -> None:
    session.add_points(3, 1, [[40, 30]], [1])
    assert [r.frame for r in session.propagate()] == list(range(3, FRAMES))
    assert [r.frame for r in session.propagate(direction="backward")] == [3, 2, 1, 0]
    assert [r.frame for r in session.propagate(from_frame=5, direction="both")] == [5, 6, 7, 4, 3, 2, 1, 0]
    assert [r.frame for r in session.propagate(from_frame=2, max_frames=2)] == [2, 3, 4]


def test_several_objects_from_clicks_and_masks_come_back_on_every_frame(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30], [5, 5]], [1, 0])
    mask = _box_mask(50, 5, 80, 25)
    added = session.add_mask(0, 2, mask)
    assert iou(encode(added.object(2).mask), encode(mask)) > 0.9, "a mask prompt is its own output"
    session.add_points(0, 7, [[70, 50]], [1], box=[60, 40, 90, 60])
    assert session.object_ids == (1, 2, 7)
    for r in session.propagate():
        _check_frame(r, r.frame, (1, 2, 7))


def test_corrections_on_tracked_frames_survive_re_propagation(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    first = _masks(list(session.propagate()), 1)
    correction = _box_mask(30, 20, 60, 44)
    assert iou(encode(first[3]), encode(correction)) < 0.9, "the test needs a correction that changes frame 3"

    at_3 = session.add_mask(3, 1, correction).object(1).mask
    assert iou(encode(at_3), encode(correction)) > 0.9
    assert session.conditioning_frames(1) == (0, 3)
    at_6 = session.add_points(6, 1, [[55, 30], [20, 30]], [1, 0]).object(1).mask
    assert session.conditioning_frames(1) == (0, 3, 6)

    again = _masks(list(session.propagate()), 1)
    assert np.array_equal(again[3], at_3), "the mask correction on frame 3 was lost"
    assert np.array_equal(again[6], at_6), "the click correction on frame 6 was lost"
    backward = _masks(list(session.propagate(from_frame=FRAMES - 1, direction="backward")), 1)
    assert np.array_equal(backward[3], at_3) and np.array_equal(backward[6], at_6)


def test_a_tracked_frame_can_be_corrected_again_and_again(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    list(session.propagate())
    session.add_points(4, 1, [[45, 30]], [1])
    session.add_points(4, 1, [[60, 30]], [0], replace=False)
    latest = session.add_mask(4, 1, _box_mask(40, 20, 70, 40)).object(1).mask
    assert session.conditioning_frames(1) == (0, 4)
    again = _masks(list(session.propagate()), 1)
    assert np.array_equal(again[4], latest)


def test_objects_added_after_tracking_are_tracked_on_every_frame(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    list(session.propagate())
    session.add_mask(4, 2, _box_mask(40, 20, 60, 40))
    assert session.conditioning_frames(2) == (4,)
    results = list(session.propagate())
    assert [r.frame for r in results] == list(range(FRAMES))
    for r in results:
        _check_frame(r, r.frame, (1, 2))


def test_removing_an_object_keeps_the_others(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    session.add_points(0, 2, [[70, 50]], [1])
    session.add_mask(3, 3, _box_mask(40, 20, 60, 40))
    before = _masks(list(session.propagate()), 3)
    session.remove_object(2)
    assert session.object_ids == (1, 3)
    assert session.conditioning_frames(3) == (3,)
    after = list(session.propagate())
    for r in after:
        _check_frame(r, r.frame, (1, 3))
    assert np.array_equal(_masks(after, 3)[3], before[3])
    with pytest.raises(UnknownObjectError):
        session.remove_object(2)


def test_reset_forgets_every_object(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    session.reset()
    assert session.object_ids == ()
    with pytest.raises(PredictorStateError, match="nothing to propagate"):
        session.propagate()
    session.add_points(2, 5, [[20, 30]], [1])
    assert [r.object_ids for r in session.propagate()] == [(5,)] * (FRAMES - 2)


def test_a_mask_only_session_refuses_clicks(model: LoadedModel, frames: CountingFrames) -> None:
    session = VideoSession(model, frames, mask_only=True)
    assert session.mask_only
    with pytest.raises(BadPromptError, match="mask-only"):
        session.add_points(0, 1, [[20, 30]], [1])
    assert session.object_ids == ()
    session.add_mask(0, 1, _box_mask(10, 20, 30, 40))
    assert len(list(session.propagate())) == FRAMES


def test_frames_are_loaded_lazily_once_per_pass(session: VideoSession, frames: CountingFrames) -> None:
    assert frames.loads == []
    session.add_points(0, 1, [[20, 30]], [1])
    session.add_points(0, 2, [[70, 50]], [1])
    assert frames.loads == [0], "the second object on the same frame reuses its embedding"
    list(session.propagate())
    assert frames.loads == list(range(FRAMES))


def test_per_frame_state_that_is_never_read_again_is_dropped(session: VideoSession) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    list(session.propagate())
    outputs = session._session.output_dict_per_obj[0]  # noqa: SLF001 - inspecting the memory kept
    stored = [*outputs["cond_frame_outputs"].values(), *outputs["non_cond_frame_outputs"].values()]
    assert len(stored) == FRAMES
    assert all("high_res_masks" not in out for out in stored)
    assert len({id(out["maskmem_pos_enc"]) for out in stored}) == 1


def test_masks_come_back_as_rle_on_request(session: VideoSession) -> None:
    result = session.add_mask(0, 1, _box_mask(10, 20, 30, 40)).object(1)
    rle = result.rle()
    assert (rle.height, rle.width) == (HEIGHT, WIDTH)
    assert np.array_equal(decode(rle), result.mask)


def test_bad_input_is_refused_and_leaves_the_session_as_it_was(session: VideoSession, frames: CountingFrames) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    refused = [
        (BadPromptError, "out of range", lambda: session.add_points(FRAMES, 1, [[20, 30]], [1])),
        (BadPromptError, "out of range", lambda: session.add_mask(-1, 1, _box_mask(0, 0, 5, 5))),
        (BadPromptError, "integer", lambda: session.add_points("3", 1, [[20, 30]], [1])),  # type: ignore[arg-type]
        (BadPromptError, "outside", lambda: session.add_points(1, 1, [[WIDTH + 1, 30]], [1])),
        (BadPromptError, "outside", lambda: session.add_points(1, 2, [[20, -3]], [1])),
        (BadPromptError, "1 points but 2 labels", lambda: session.add_points(1, 2, [[20, 30]], [1, 0])),
        (BadPromptError, "at least one click", lambda: session.add_points(1, 2, [], [])),
        (BadPromptError, "object id", lambda: session.add_points(1, "cat", [[20, 30]], [1])),  # type: ignore[arg-type]
        (BadMaskError, "does not match the frame", lambda: session.add_mask(1, 2, np.zeros((HEIGHT, WIDTH + 1), bool))),
        (BadMaskError, "2-D", lambda: session.add_mask(1, 2, np.zeros((1, HEIGHT, WIDTH), bool))),
        (UnknownObjectError, "not in this session", lambda: session.remove_object(9)),
        (UnknownObjectError, "not in this session", lambda: session.conditioning_frames(9)),
        (BadPromptError, "out of range", lambda: session.propagate(from_frame=99)),
        (BadPromptError, "direction", lambda: session.propagate(direction="sideways")),  # type: ignore[arg-type]
        (BadPromptError, "max_frames", lambda: session.propagate(max_frames=-2)),
    ]
    for error, match, call in refused:
        with pytest.raises(error, match=match):
            call()
    assert session.object_ids == (1,)
    assert session.conditioning_frames(1) == (0,)
    assert [r.object_ids for r in session.propagate()] == [(1,)] * FRAMES


def test_a_frame_that_fails_to_load_leaves_no_half_added_object(session: VideoSession, frames: CountingFrames) -> None:
    session.add_points(0, 1, [[20, 30]], [1])

    def broken(index: int) -> np.ndarray:
        raise OSError(f"frame {index} unreadable")

    frames.load = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="unreadable"):
        session.add_points(4, 2, [[20, 30]], [1])
    assert session.object_ids == (1,)
    del frames.load  # back to the class's loader
    assert [r.object_ids for r in session.propagate()] == [(1,)] * FRAMES


def test_a_failed_correction_leaves_the_objects_track_as_it_was(session: VideoSession, frames: CountingFrames) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    before = _masks(list(session.propagate()), 1)

    def broken(index: int) -> np.ndarray:
        raise OSError(f"frame {index} unreadable")

    frames.load = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="unreadable"):
        session.add_mask(3, 1, _box_mask(40, 20, 60, 40))
    assert session.conditioning_frames(1) == (0,)
    del frames.load
    after = _masks(list(session.propagate()), 1)
    assert all(np.array_equal(before[f], after[f]) for f in range(FRAMES))


def test_an_image_model_cannot_open_a_session(frames: CountingFrames) -> None:
    with pytest.raises(IncompatibleModelError, match="task='video'"):
        VideoSession(build_model(COMPACT, task="image", device=CPU), frames)


def test_a_session_reads_an_ingested_videos_frames_from_the_object_store(model: LoadedModel, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    for i, rgb in enumerate(_synthetic_video()[:4]):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        store.put(frame_key("syn_000001", i), jpeg.tobytes())
    session = VideoSession(model, StoredFrames(store, "syn_000001"))
    assert (session.frame_count, session.size) == (4, (HEIGHT, WIDTH))
    session.add_points(1, 1, [[20, 30]], [1])
    assert [r.frame for r in session.propagate(direction="both")] == [1, 2, 3, 0]


def test_results_do_not_keep_torch_state_alive(session: VideoSession) -> None:
    result = session.add_points(0, 1, [[20, 30]], [1]).object(1)
    assert isinstance(result.mask, np.ndarray) and not isinstance(result.mask, torch.Tensor)


# --- which previous mask a click refines (engine.model_loading.PreviousMaskRefinement) -----------


def _stored_logits(session: VideoSession, frame: int) -> torch.Tensor:
    outputs = session._session.output_dict_per_obj[0]
    out = outputs["cond_frame_outputs"].get(frame) or outputs["non_cond_frame_outputs"][frame]
    return out["pred_masks"].clone()


def test_a_click_on_a_tracked_frame_refines_the_tracked_mask(session: VideoSession, model: LoadedModel, monkeypatch) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    list(session.propagate())
    tracked = _stored_logits(session, 3).clamp(-32, 32)
    spy = PreviousLogitsSpy(monkeypatch, model)

    session.add_points(3, 1, [[40, 30]], [1])
    torch.testing.assert_close(spy.last(), tracked, atol=0, rtol=0)
    clicked = _stored_logits(session, 3).clamp(-32, 32)
    session.add_points(3, 1, [[40, 30], [60, 10]], [1, 0])  # the next click refines the one before
    torch.testing.assert_close(spy.last(), clicked, atol=0, rtol=0)
    assert session._session.refinement_logits == {}  # nothing left over for the next call
    list(session.propagate(from_frame=3))
    assert all(prev is None for _, _, prev in spy.calls[2:])  # tracking is never given one


def test_what_a_click_refines_can_be_none_or_a_given_mask(session: VideoSession, model: LoadedModel, monkeypatch) -> None:
    spy = PreviousLogitsSpy(monkeypatch, model)
    session.add_points(0, 1, [[20, 30]], [1])
    assert spy.last() is None  # a new object: nothing to refine
    list(session.propagate())
    session.add_points(2, 1, [[30, 30]], [1], refine=False)
    assert spy.last() is None  # a frame annotated anew
    brushed = _box_mask(20, 20, 45, 40)
    result = session.add_points(4, 1, [[40, 30]], [1], refine=brushed)
    given = spy.last()
    assert given is not None and given.shape == _stored_logits(session, 4).shape
    assert float(given.max()) == pytest.approx(10.0, abs=1e-3) and float(given.min()) == pytest.approx(-10.0, abs=1e-3)
    # Positive where the brushed mask is, negative elsewhere (at the decoder's input resolution).
    side = given.shape[-1]
    inside = cv2.resize(brushed.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert ((given[0, 0] > 0).numpy() == inside).mean() > 0.95
    assert result.object(1).mask.shape == (HEIGHT, WIDTH)
    with pytest.raises(BadMaskError):
        session.add_points(4, 1, [[40, 30]], [1], refine=np.ones((HEIGHT, WIDTH + 1), dtype=bool))


def test_a_click_on_a_mask_prompted_frame_refines_that_mask_and_a_mask_prompt_takes_none(
    session: VideoSession, model: LoadedModel, monkeypatch
) -> None:
    spy = PreviousLogitsSpy(monkeypatch, model)
    session.add_mask(0, 1, _box_mask(10, 20, 30, 40))
    assert spy.last() is None
    prompted = _stored_logits(session, 0).clamp(-32, 32)
    session.add_points(0, 1, [[25, 30]], [0])
    torch.testing.assert_close(spy.last(), prompted, atol=0, rtol=0)
    session.add_points(0, 1, [[25, 30]], [1], box=[5, 15, 35, 45])  # a box prompt refines as well, as in SAM 2
    assert spy.last() is not None


def test_a_failed_refinement_leaves_nothing_behind(session: VideoSession, frames: CountingFrames) -> None:
    session.add_points(0, 1, [[20, 30]], [1])
    before = _masks(list(session.propagate()), 1)
    seen: list[dict] = []
    remember = session._session.refinement_logits

    def broken(index: int) -> np.ndarray:
        seen.append(dict(remember))  # what the session had set aside when the frame was asked for
        raise OSError(f"frame {index} unreadable")

    frames.load = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="unreadable"):
        session.add_points(3, 1, [[40, 30]], [1])
    assert seen and list(seen[0]) == [(0, 3)]  # the failure came after the tracked logits were set aside
    assert session._session.refinement_logits == {}
    del frames.load
    assert session.conditioning_frames(1) == (0,)
    after = _masks(list(session.propagate()), 1)
    assert all(np.array_equal(before[f], after[f]) for f in range(FRAMES))
