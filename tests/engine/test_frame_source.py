"""Frame sources: frames in memory (raw or PNG), and an ingested video's JPEGs read from the object store."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import BadVideoError, ObjectNotFoundError
from engine.frame_source import ArrayFrames, EncodedFrames, FrameSource, StoredFrames
from engine.ingest import frame_key
from storage.objects.local import LocalObjectStore

VIDEO = "syn_000042"


def _red_frames(count: int, height: int = 24, width: int = 40) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = 200  # red in RGB
    frames[:, :, :, 2] = np.arange(count, dtype=np.uint8)[:, None, None] * 20
    return frames


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    for i, rgb in enumerate(_red_frames(5)):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        store.put(frame_key(VIDEO, i), jpeg.tobytes())
    return store


def test_array_frames_serve_frames_by_index() -> None:
    frames = ArrayFrames(_red_frames(3))
    assert isinstance(frames, FrameSource)
    assert (frames.frame_count, frames.size) == (3, (24, 40))
    assert frames.load(2)[0, 0, 2] == 40


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 4, 4, 3), np.uint8), np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4, 3), np.float32)]
)
def test_array_frames_refuse_what_is_not_rgb_video(bad: np.ndarray) -> None:
    with pytest.raises(BadVideoError):
        ArrayFrames(bad)


def test_encoded_frames_give_back_every_pixel_in_less_memory() -> None:
    rng = np.random.default_rng(0)
    frames = _red_frames(4, height=48, width=64)
    frames[:, 10:30, 20:50] = rng.integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)  # texture, as synthetic frames have
    encoded = EncodedFrames(list(frames))
    assert isinstance(encoded, FrameSource)
    assert (encoded.frame_count, encoded.size) == (4, (48, 64))
    for index in range(4):
        loaded = encoded.load(index)
        assert loaded.dtype == np.uint8 and np.array_equal(loaded, frames[index])  # RGB stays RGB, lossless
    assert encoded.nbytes < frames.nbytes / 2


def test_encoded_frames_refuse_what_is_not_rgb_video() -> None:
    with pytest.raises(BadVideoError):
        EncodedFrames([np.zeros((4, 4), np.uint8)])
    with pytest.raises(BadVideoError):
        EncodedFrames([])


def test_frames_given_one_by_one_must_be_some_and_of_one_size() -> None:
    with pytest.raises(BadVideoError, match="none"):
        ArrayFrames([])
    with pytest.raises(BadVideoError, match="different shapes"):
        ArrayFrames([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)])


def test_stored_frames_count_size_and_decode_to_rgb(store: LocalObjectStore) -> None:
    frames = StoredFrames(store, VIDEO)
    assert isinstance(frames, FrameSource)
    assert (frames.frame_count, frames.size) == (5, (24, 40))
    frame = frames.load(3)
    assert frame.shape == (24, 40, 3) and frame.dtype == np.uint8
    assert abs(int(frame[5, 5, 0]) - 200) <= 3, "channel 0 is red: frames come back as RGB"
    assert abs(int(frame[5, 5, 2]) - 60) <= 3


def test_stored_frames_trust_the_catalogs_count_and_size(store: LocalObjectStore) -> None:
    frames = StoredFrames(store, VIDEO, frame_count=5, size=(24, 40))
    assert (frames.frame_count, frames.size) == (5, (24, 40))


def test_a_missing_or_broken_frame_is_a_clear_error(store: LocalObjectStore) -> None:
    frames = StoredFrames(store, VIDEO, frame_count=7)
    with pytest.raises(ObjectNotFoundError, match=f"frame 6 of video {VIDEO}"):
        frames.load(6)
    store.put(frame_key(VIDEO, 1), b"not a jpeg")
    with pytest.raises(BadVideoError, match="not a decodable JPEG"):
        frames.load(1)


def test_a_video_without_frames_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadVideoError, match="no sampled frames"):
        StoredFrames(LocalObjectStore(tmp_path / "empty"), VIDEO)
