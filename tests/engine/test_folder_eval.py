"""Folder evaluation: SA-V and DAVIS PNG layouts give the scores of their masks, and the CLI prints them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from engine.errors import BadFolderLayoutError, BadMaskError, NotFoundError
from engine.folder_eval import evaluate_folders
from engine.jf import score_frame
from flows.cli import evaluate_cmd

SHAPE = (24, 32)


def square(top: int, left: int, size: int = 6) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[top : top + size, left : left + size] = True
    return mask


def save_binary(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)


def save_palette(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.save(path)


def write_sav(root: Path, masks: dict[str, dict[int, list[np.ndarray]]]) -> None:
    """``masks[video][object]`` = one mask per frame, saved as {video}/{object:03d}/{frame:05d}.png."""
    for video, objects in masks.items():
        for object_id, frames in objects.items():
            for index, mask in enumerate(frames):
                save_binary(root / video / f"{object_id:03d}" / f"{index:05d}.png", mask)


@pytest.fixture
def sav(tmp_path: Path) -> tuple[Path, Path]:
    """Two videos. v1: object 0 predicted perfectly, object 1 shifted by one pixel except on
    the last frame, where it is missing. v2: one object predicted as empty in the middle frames."""
    truth = [square(4, 4), square(5, 5), square(6, 6), square(7, 7)]
    shifted = [square(4, 5), square(5, 6), square(6, 7), np.zeros(SHAPE, bool)]
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    write_sav(gt_root, {"v1": {0: truth, 1: truth}, "v2": {0: truth}})
    empty_middle = [truth[0], np.zeros(SHAPE, bool), np.zeros(SHAPE, bool), truth[3]]
    write_sav(pred_root, {"v1": {0: truth, 1: shifted}, "v2": {0: empty_middle}})
    return gt_root, pred_root


def test_sav_layout_scores_each_object(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    result = evaluate_folders(gt_root, pred_root)
    one_pixel = score_frame(square(5, 6), square(5, 5))
    rows = {(r.video_id, r.object_id): r for r in result.objects}
    assert set(rows) == {("v1", 0), ("v1", 1), ("v2", 0)}
    assert rows["v1", 0].jf == 1.0 and rows["v1", 0].n_frames == 2
    # Only the two middle frames count, both shifted by one pixel: F stays 1, J drops.
    assert rows["v1", 1].j == pytest.approx(one_pixel.j) and rows["v1", 1].f == 1.0
    assert rows["v2", 0].jf == 0.0
    assert result.j == pytest.approx((1 + one_pixel.j + 0) / 3)
    assert result.f == pytest.approx(2 / 3)
    assert [(v.video_id, v.n_objects) for v in result.videos] == [("v1", 2), ("v2", 1)]


def test_sav_layout_without_skipping_scores_every_frame(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    rows = {(r.video_id, r.object_id): r for r in evaluate_folders(gt_root, pred_root, skip_first_last=False).objects}
    assert rows["v1", 1].n_frames == 4
    assert rows["v1", 1].f == pytest.approx(3 / 4)  # the missing last frame scores 0
    assert rows["v2", 0].j == pytest.approx(1 / 2)


def test_parallel_workers_give_the_same_result(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    assert evaluate_folders(gt_root, pred_root, workers=2) == evaluate_folders(gt_root, pred_root)


def test_davis_layout_reads_object_ids_from_palette_pngs(tmp_path: Path) -> None:
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    for index in range(4):
        gt = np.zeros(SHAPE, np.uint8)
        gt[square(2, 2)] = 1
        gt[square(12, 20)] = 2
        pred = np.zeros(SHAPE, np.uint8)
        pred[square(2, 3)] = 1  # one pixel off: F = 1
        save_palette(gt_root / "cows" / f"{index:05d}.png", gt)
        save_palette(pred_root / "cows" / f"{index:05d}.png", pred)  # object 2 never found
    result = evaluate_folders(gt_root, pred_root)
    assert [(r.object_id, r.n_frames) for r in result.objects] == [(1, 2), (2, 2)]
    one = result.objects[0]
    assert one.f == 1.0 and one.j == pytest.approx(score_frame(square(2, 3), square(2, 2)).j)
    assert result.objects[1].jf == 0.0


def test_missing_prediction_frame_is_an_error(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    (pred_root / "v1" / "001" / "00002.png").unlink()
    with pytest.raises(NotFoundError, match="00002.png"):
        evaluate_folders(gt_root, pred_root)
    # The last frame is not scored when skipping, so it may be missing.
    (pred_root / "v1" / "001" / "00003.png").unlink()
    save_binary(pred_root / "v1" / "001" / "00002.png", square(6, 6))
    evaluate_folders(gt_root, pred_root)


def test_missing_prediction_video_is_an_error(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    for png in (pred_root / "v2" / "000").iterdir():
        png.unlink()
    (pred_root / "v2" / "000").rmdir()
    (pred_root / "v2").rmdir()
    with pytest.raises(NotFoundError, match="v2"):
        evaluate_folders(gt_root, pred_root)


def test_size_mismatch_is_an_error(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    save_binary(pred_root / "v1" / "000" / "00001.png", np.zeros((10, 10), bool))
    with pytest.raises(BadMaskError, match="differs from the ground truth"):
        evaluate_folders(gt_root, pred_root)


def test_two_objects_in_one_sav_png_is_an_error(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    two = square(2, 2).astype(np.uint8) + square(10, 10).astype(np.uint8) * 2
    Image.fromarray(two, mode="L").save(pred_root / "v1" / "000" / "00001.png")
    with pytest.raises(BadMaskError, match="more than one object"):
        evaluate_folders(gt_root, pred_root)


def test_unusable_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        evaluate_folders(tmp_path / "nowhere", tmp_path)
    (tmp_path / "gt" / "v1").mkdir(parents=True)
    with pytest.raises(BadFolderLayoutError, match="neither"):
        evaluate_folders(tmp_path / "gt", tmp_path)
    (tmp_path / "gt" / "v1" / "cat").mkdir()
    (tmp_path / "v1").mkdir()
    with pytest.raises(BadFolderLayoutError, match="object id"):
        evaluate_folders(tmp_path / "gt", tmp_path)


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Keeps ``evaluate`` a named subcommand, as in the real app."""

    evaluate_cmd.register(app)
    return app


def test_cli_prints_the_scores(sav: tuple[Path, Path]) -> None:
    gt_root, pred_root = sav
    result = evaluate_folders(gt_root, pred_root)
    args = ["evaluate", "--gt", str(gt_root), "--pred", str(pred_root), "--workers", "1", "--per-video"]
    outcome = CliRunner().invoke(cli_app(), args)
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.strip().splitlines()
    assert lines[-1] == f"J&F {result.jf:.4f}  J {result.j:.4f}  F {result.f:.4f}"
    assert any(line.startswith("v2 ") for line in lines)
    args = ["evaluate", "--gt", str(gt_root), "--pred", str(pred_root), "--no-skip-first-last"]
    plain = CliRunner().invoke(cli_app(), args)
    assert plain.exit_code == 0 and not any(line.startswith("v2 ") for line in plain.output.splitlines())


def test_cli_reports_errors_with_status_2(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(cli_app(), ["evaluate", "--gt", str(tmp_path / "missing"), "--pred", str(tmp_path)])
    assert outcome.exit_code == 2
    assert "error:" in outcome.output and "missing" in outcome.output
