"""One click tracked both ways, written as SA-V folders that `dataengine evaluate` reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import BadPromptError
from engine.folder_eval import evaluate_folders
from engine.frame_source import ArrayFrames
from engine.masklets import MaskletSource
from engine.masks import decode
from engine.model_loading import LoadedModel, build_model
from engine.segmenter_config import COMPACT
from engine.tracking import check_click, track_click
from storage.mask_folders import write_sav_folders
from tests.engine.sam_fixtures import CPU
from tests.engine.segment_fixtures import one_torch_thread, sampled_rgb, tiny_video


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def video_model() -> LoadedModel:
    return build_model(COMPACT, device=CPU)


def test_one_click_becomes_a_masklet_on_every_frame_and_an_sav_folder_tree(
    video_model: LoadedModel, tmp_path: Path
) -> None:
    video = tiny_video()
    frames = ArrayFrames(sampled_rgb(video))
    masklet = track_click(video_model, frames, "syn_tiny", frame=3, point=(40.0, 30.0), object_id=2)
    assert (masklet.video_id, masklet.object_id, masklet.source) == ("syn_tiny", 2, MaskletSource.MANUAL)
    assert masklet.frame_count == 8 and (masklet.height, masklet.width) == (64, 96)
    assert masklet.stability_scores is not None and len(masklet.stability_scores) == 8

    (folder,) = write_sav_folders(tmp_path / "pred", [masklet])
    assert folder == tmp_path / "pred" / "syn_tiny" / "002"
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.png" for i in range(8)]
    for index in range(8):
        pixels = np.asarray(Image.open(folder / f"{index:05d}.png"))
        assert pixels.shape == (64, 96) and set(np.unique(pixels)) <= {0, 255}
        assert np.array_equal(pixels > 0, decode(masklet.masks[index]))

    # Ground truth in the same layout: the prediction scores as object 2 against it.
    write_sav_folders(tmp_path / "gt", [m for m in video.masklets if m.object_id == 2])
    result = evaluate_folders(tmp_path / "gt", tmp_path / "pred")
    assert len(result.objects) == 1 and 0.0 <= result.jf <= 1.0


def test_tracking_again_replaces_the_object_s_folder(video_model: LoadedModel, tmp_path: Path) -> None:
    frames = ArrayFrames(sampled_rgb(tiny_video())[:3])
    stale = tmp_path / "syn_tiny" / "000"
    stale.mkdir(parents=True)
    (stale / "00099.png").write_bytes(b"old")
    masklet = track_click(video_model, frames, "syn_tiny", frame=2, point=(10.0, 10.0))
    write_sav_folders(tmp_path, [masklet])
    assert sorted(p.name for p in stale.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert [p.name for p in (tmp_path / "syn_tiny").iterdir()] == ["000"], "no temporary folder left"


@pytest.mark.parametrize(
    ("frame", "point", "message"),
    [
        (8, (10.0, 10.0), "frame 8 is out of range: the video has frames 0..7"),
        (-1, (10.0, 10.0), "out of range"),
        (0, (97.0, 10.0), "outside the 96x64 frame"),
        (0, (10.0, -0.5), "outside the 96x64 frame"),
        (0, (float("nan"), 1.0), "finite"),
    ],
)
def test_a_bad_click_is_refused_before_the_model_runs(frame: int, point: tuple[float, float], message: str) -> None:
    frames = ArrayFrames(sampled_rgb(tiny_video()))
    with pytest.raises(BadPromptError, match=message):
        check_click(frames, frame, point)
    with pytest.raises(BadPromptError, match=message):
        track_click(None, frames, "syn_tiny", frame, point)  # type: ignore[arg-type]
