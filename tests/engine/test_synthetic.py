"""Synthetic videos: reproducible, with exact ground truth and the tracking difficulties they promise."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from engine.errors import ConfigError
from engine.masklets import MaskletSource
from engine.masks import decode
from engine.sav import from_sav
from engine.synthetic import (
    SyntheticSpec,
    SyntheticVideo,
    generate_video,
    render_frame,
    render_sampled,
    synthesize,
    write_synthetic_video,
)
from engine.video import sample_indices
from flows.cli.synthesize_cmd import register

# pycocotools 2.0.x decodes through an ``__array__`` without numpy 2's ``copy`` argument.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SMALL = SyntheticSpec(width=128, height=96, source_frames=48, objects=3, parts=1)
SEEDS = range(6)


@pytest.fixture(scope="module")
def videos() -> list[SyntheticVideo]:
    return [generate_video(f"t{seed}", seed, SMALL) for seed in SEEDS]


def masks_of(video: SyntheticVideo, masklet_id: int) -> np.ndarray:
    masklet = next(m for m in video.masklets if m.object_id == masklet_id)
    return np.stack([decode(rle) for rle in masklet.masks])


def rendered_mask(
    video: SyntheticVideo, frame: int, object_id: int, hidden: frozenset[int] = frozenset()
) -> np.ndarray:
    """The object's pixels (its parts included) on any source frame, rendered afresh."""
    ids = [object_id, *(part for part, parent in video.parent_of.items() if parent == object_id)]
    return np.isin(render_frame(video.scene, frame, hidden).labels, ids)


def test_same_seed_same_video_and_other_seed_other_video() -> None:
    first, again, other = (generate_video("v", seed, SMALL) for seed in (5, 5, 6))
    assert np.array_equal(first.frames, again.frames)
    assert first.masklets == again.masklets
    assert not np.array_equal(first.frames, other.frames)
    assert first.masklets != other.masklets


def test_rendering_only_the_sampled_frames_gives_the_same_frames_and_masklets(videos: list[SyntheticVideo]) -> None:
    for video in videos[:3]:
        frames, masklets = render_sampled(video.video_id, video.seed, SMALL)
        assert masklets == video.masklets
        assert np.array_equal(np.stack(frames), video.frames[video.sampled_frames])


def test_ground_truth_is_given_on_exactly_the_sampled_frames() -> None:
    spec = SyntheticSpec(width=64, height=48, source_frames=50, source_fps=30.0, sample_fps=6.0, objects=2)
    video = generate_video("v", 1, spec)
    samples = sample_indices(50, 30.0, 6.0)
    assert video.frames.shape == (50, 48, 64, 3)
    assert [m.object_id for m in video.masklets] == list(range(spec.masklet_count))
    for masklet in video.masklets:
        assert masklet.source is MaskletSource.GROUND_TRUTH
        assert len(masklet.masks) == len(samples)
    # Mask k is the object as rendered on source frame samples[k].
    object_id = video.scene.objects[-1].object_id
    masks = masks_of(video, object_id)
    for k, frame in enumerate(samples):
        assert np.array_equal(masks[k], rendered_mask(video, frame, object_id))


def test_an_object_enters_late(videos: list[SyntheticVideo]) -> None:
    for video in videos:
        late = [m for m in video.masklets if m.first_appeared_frame not in (None, 0)]
        assert late, f"{video.video_id}: every object is visible on frame 0"


def test_an_object_leaves_and_comes_back(videos: list[SyntheticVideo]) -> None:
    for video in videos:
        assert any(m.visibility_changes >= 2 for m in video.masklets), video.video_id


def test_an_object_is_occluded_by_another(videos: list[SyntheticVideo]) -> None:
    """Its masklet loses exactly the pixels the occluder covers (partly or wholly)."""
    for video in videos:
        assert video.scene.occlusion is not None
        frame, occluder, occluded = video.scene.occlusion
        k = video.sampled_frames.index(frame)
        seen = masks_of(video, occluded)[k]
        alone = rendered_mask(video, frame, occluded, hidden=frozenset({occluder}))
        hidden = alone & ~seen
        assert hidden.any(), video.video_id
        assert not (seen & ~alone).any()
        assert (hidden <= masks_of(video, occluder)[k]).all()


def test_parts_lie_inside_their_objects(videos: list[SyntheticVideo]) -> None:
    for video in videos:
        assert video.parent_of, video.video_id
        for part, parent in video.parent_of.items():
            part_masks, parent_masks = masks_of(video, part), masks_of(video, parent)
            assert part_masks.any(), f"{video.video_id}: part {part} is never visible"
            assert not (part_masks & ~parent_masks).any()
            assert (parent_masks & ~part_masks).any()


def test_masks_are_exactly_the_pixels_each_object_painted(videos: list[SyntheticVideo]) -> None:
    """Removing an object changes the frame inside its mask and nowhere else."""
    video = videos[0]
    for k, frame in enumerate(video.sampled_frames[::3]):
        full = render_frame(video.scene, frame)
        assert np.array_equal(full.image, video.frames[frame])
        for obj in video.scene.objects:
            mask = masks_of(video, obj.object_id)[3 * k]
            without = render_frame(video.scene, frame, hidden=frozenset({obj.object_id})).image
            changed = (full.image != without).any(axis=2)
            assert not (changed & ~mask).any()
            if mask.sum() > 20:
                assert changed[mask].mean() > 0.9


def test_lighting_drifts_over_the_video() -> None:
    flat = generate_video("v", 3, SyntheticSpec(width=64, height=48, source_frames=32, lighting_drift=0.0))
    lit = generate_video("v", 3, SyntheticSpec(width=64, height=48, source_frames=32, lighting_drift=0.3))
    ratio = lit.frames.mean(axis=(1, 2, 3)) / flat.frames.mean(axis=(1, 2, 3))
    assert ratio.max() - ratio.min() > 0.05


def test_written_video_decodes_and_its_json_holds_the_same_masklets(tmp_path: Path) -> None:
    video = generate_video("syn_write", 2, SMALL)
    mp4, annotation = write_synthetic_video(tmp_path, video)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn_write.json", "syn_write.mp4"]

    capture = cv2.VideoCapture(str(mp4))
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    capture.release()
    assert len(decoded) == SMALL.source_frames
    assert decoded[0].shape == (SMALL.height, SMALL.width, 3)
    # Lossy, but the same picture (channels in the same order).
    assert np.abs(decoded[10].astype(int) - video.frames[10].astype(int)).mean() < 12

    parsed = from_sav(json.loads(annotation.read_text()), source=MaskletSource.GROUND_TRUTH)
    assert parsed.masklets == video.masklets
    assert parsed.video.frame_count == SMALL.source_frames
    assert (parsed.video.height, parsed.video.width) == (SMALL.height, SMALL.width)
    assert parsed.video.environment == "Synthetic"
    assert parsed.video.split == "train"


def test_synthesize_names_videos_by_seed_and_index_and_is_reproducible(tmp_path: Path) -> None:
    spec = SyntheticSpec(width=64, height=48, source_frames=32, objects=2)
    paths = synthesize(tmp_path / "a", 2, 7, spec)
    again = synthesize(tmp_path / "b", 2, 7, spec)
    assert [p.name for p in paths] == ["syn0007_0000.mp4", "syn0007_0001.mp4"]
    assert all(p.with_suffix(".json").exists() for p in paths)
    first, second = (json.loads(p.with_suffix(".json").read_text())["masklet"] for p in paths)
    assert first != second
    assert [json.loads(p.with_suffix(".json").read_text()) for p in again] == [
        json.loads(p.with_suffix(".json").read_text()) for p in paths
    ]


def test_spec_too_short_for_the_forced_events_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 29 frames"):
        SyntheticSpec(source_frames=16)
    assert len(SyntheticSpec(source_frames=16, force_events=False).sampled_frames) == 4
    with pytest.raises(ConfigError, match="parts"):
        SyntheticSpec(objects=1, parts=2)


def test_cli_writes_videos_and_reports_errors(tmp_path: Path) -> None:
    app = typer.Typer()
    app.callback()(_no_options)
    register(app)
    runner = CliRunner()
    args = ["synthesize", "--out", str(tmp_path), "--videos", "2", "--seed", "3", "--frames", "32"]
    result = runner.invoke(app, [*args, "--width", "64", "--height", "48", "--objects", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(str(tmp_path / "syn0003_0000.mp4"))
    assert lines[0].endswith("3 masklets")
    assert (tmp_path / "syn0003_0001.json").exists()

    bad = runner.invoke(app, ["synthesize", "--out", str(tmp_path), "--frames", "8"])
    assert bad.exit_code == 2
    assert "error: synthetic video spec" in bad.output


def _no_options() -> None:
    """A callback, so that typer keeps ``synthesize`` as a named subcommand."""
