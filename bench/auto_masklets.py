"""Auto-masklet speed: the grid stage and the propagation stage of engine/auto_masklets.py.

For a synthetic video (engine.synthetic.generate_video, 320x240, ``--frames`` sampled frames)
and, with ``--real NAME``, the first ``--real-frames`` sampled frames (6 FPS) of a real video
from ../shared/data/videos (or any path):

1. **Grid stage** (``first_frame_candidates``): point grids on frame 0, scoring, filtering,
   cleaning and de-duplication. Reported: seconds, candidate masks the model scored per
   second, and how many masks passed the thresholds and were kept.
2. **Propagation stage** (``propagate_candidates``): every kept mask tracked to the last
   frame. Reported: seconds, frames per second, and masklet-frames per second (frames times
   kept masklets per second: the speed per kept masklet).
3. **Baseline**, measured in the same run: the plain propagation of one object (one mask on
   frame 0 of a mask-only session) over the same frames. The ratio is masklet-frames per
   second over the baseline's frames per second: 1.0 when each auto masklet costs what one
   tracked object costs, above 1 when the masklets of a session share the image encoder.

Peak RSS is the process's high-water mark (``ru_maxrss``) after each video; the figure after
loading the model (torch, transformers and the weights) is printed first, for comparison.

Defaults fit a 2-core machine in under 3 minutes: a 16-point grid plus one layer of 2x2 crops
(8 points each), at most 6 masklets, 16 frames. A model with random weights (``sam2-compact`` until its
trained checkpoint ships) predicts an IoU of about 0.5 and a stability near 0 for every mask,
so the paper's thresholds (0.8, 0.95) would keep nothing: unless thresholds are given, they
are lowered to 0 for such a model, and the output says so.

    python bench/auto_masklets.py [--model sam2-compact] [--frames 16] [--points-per-side 16]
        [--crop-layers 1] [--max-candidates 6] [--min-predicted-iou X] [--min-stability X]
        [--real 01_dog.mp4] [--real-frames 12] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_VIDEOS  # noqa: E402
from engine.auto_mask_config import AutoMaskConfig  # noqa: E402
from engine.auto_masklets import MaskCandidate, first_frame_candidates, propagate_candidates  # noqa: E402
from engine.errors import BadVideoError  # noqa: E402
from engine.frame_source import ArrayFrames  # noqa: E402
from engine.masks import decode  # noqa: E402
from engine.model_loading import LoadedModel, build_model, choose_device, image_model_from  # noqa: E402
from engine.segmenter_config import COMPACT  # noqa: E402
from engine.synthetic import SyntheticSpec, generate_video  # noqa: E402
from engine.video import decode_sampled, probe, sample_indices  # noqa: E402
from engine.video_session import VideoSession  # noqa: E402

SAMPLE_FPS = 6.0  # SA-V's annotation rate, as ingestion samples
PAPER = AutoMaskConfig()


@dataclass(frozen=True)
class Figures:
    video: str
    size: tuple[int, int]
    frames: int
    points: int
    scored: int  # candidate masks the model returned on frame 0
    passed: int
    kept: int
    grid_s: float
    propagation_s: float
    baseline_s: float
    peak_rss_mb: float

    @property
    def masks_per_s(self) -> float:
        return self.scored / self.grid_s

    @property
    def fps(self) -> float:
        return self.frames / self.propagation_s if self.kept else 0.0

    @property
    def masklet_fps(self) -> float:
        return self.frames * self.kept / self.propagation_s if self.kept else 0.0

    @property
    def baseline_fps(self) -> float:
        return self.frames / self.baseline_s

    @property
    def ratio(self) -> float:
        return self.masklet_fps / self.baseline_fps


def synthetic_frames(frames: int) -> np.ndarray:
    """``frames`` sampled frames of a synthetic 320x240 video, RGB."""
    spec = SyntheticSpec(source_frames=int(np.ceil(frames * 24.0 / SAMPLE_FPS)), force_events=frames >= 8)
    video = generate_video("bench_auto", 0, spec)
    return np.ascontiguousarray(video.frames[video.sampled_frames][:frames][..., ::-1])


def real_frames(name: str, frames: int) -> np.ndarray:
    """The first ``frames`` frames sampled at 6 FPS from a shared video (by name) or any file, RGB."""
    path = Path(name) if Path(name).is_file() else SHARED_VIDEOS / name
    if not path.is_file():
        available = sorted(p.name for p in SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []
        raise BadVideoError(name, f"no such file here or in {SHARED_VIDEOS} (there: {', '.join(available) or 'none'})")
    info = probe(path, min_side=16, max_side=8192, max_frames=1_000_000)
    indices = sample_indices(info.frame_count, info.fps, SAMPLE_FPS)[:frames]
    decoded = [image[..., ::-1] for _, _, image in decode_sampled(path, indices)]
    if not decoded:
        raise BadVideoError(str(path), "no frame could be decoded")
    return np.ascontiguousarray(np.stack(decoded))


def baseline_mask(candidates: Sequence[MaskCandidate], size: tuple[int, int]) -> np.ndarray:
    """The best candidate's mask, or a centred box when nothing was kept (the cost is the same)."""
    if candidates:
        return decode(candidates[0].mask)
    height, width = size
    mask = np.zeros(size, dtype=bool)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return mask


def one_object(video_model: LoadedModel, frames: np.ndarray, mask: np.ndarray) -> float:
    """Seconds to prompt one mask on frame 0 and propagate it to the last frame."""
    start = time.perf_counter()
    session = VideoSession(video_model, ArrayFrames(frames), mask_only=True)
    session.add_mask(0, 0, mask)
    for _ in session.propagate(0, "forward"):
        pass
    return time.perf_counter() - start


def measure(
    name: str, video_model: LoadedModel, image_model: LoadedModel, frames: np.ndarray, config: AutoMaskConfig
) -> Figures:
    source = ArrayFrames(frames)
    start = time.perf_counter()
    candidates, stats = first_frame_candidates(image_model, frames[0], config)
    grid_s = time.perf_counter() - start
    baseline_s = one_object(video_model, frames, baseline_mask(candidates, source.size))
    start = time.perf_counter()
    masklets = propagate_candidates(video_model, source, name, candidates, config.objects_per_session)
    propagation_s = time.perf_counter() - start
    assert len(masklets) == len(candidates) and all(m.frame_count == len(frames) for m in masklets)
    return Figures(
        name,
        source.size,
        len(frames),
        stats.points,
        stats.predicted,
        stats.passed_scores,
        stats.kept,
        grid_s,
        propagation_s,
        baseline_s,
        peak_rss_mb(),
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def choose_thresholds(
    model: LoadedModel, min_iou: float | None, min_stability: float | None
) -> tuple[float, float, str]:
    """The paper's thresholds for a trained model; 0 for random weights unless given."""
    if model.pretrained:
        note = f"{model.name}: trained weights ({model.origin})"
        return _or(min_iou, PAPER.min_predicted_iou), _or(min_stability, PAPER.min_stability), note
    iou, stability = _or(min_iou, 0.0), _or(min_stability, 0.0)
    note = (
        f"{model.name}: RANDOM INITIALISATION, masks are meaningless; thresholds lowered to predicted IoU > {iou} "
        f"and stability >= {stability} (paper: {PAPER.min_predicted_iou}, {PAPER.min_stability}) so that "
        "candidates are kept and the propagation stage has work"
    )
    return iou, stability, note


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=COMPACT, help="a model name, hub name or checkpoint folder")
    parser.add_argument("--frames", type=int, default=16, help="sampled frames of the synthetic video")
    parser.add_argument("--points-per-side", type=int, default=16, help="full-frame grid (paper: 32)")
    parser.add_argument("--crop-layers", type=int, default=1, help="crop layers (paper: 2)")
    parser.add_argument("--max-candidates", type=int, default=6, help="masklets kept at most (0: all)")
    parser.add_argument("--min-predicted-iou", type=float, default=None)
    parser.add_argument("--min-stability", type=float, default=None)
    parser.add_argument("--real", default=None, help="also a real video: a name in ../shared/data/videos or a path")
    parser.add_argument("--real-frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda runs bf16 autocast)")
    args = parser.parse_args()

    device = choose_device(args.device, torch_threads=args.threads)
    print(f"device {device.device}, {args.threads} threads, load average {os.getloadavg()[0]:.1f} at start")
    video_model = build_model(args.model, device=device)
    image_model = image_model_from(video_model)
    min_iou, min_stability, note = choose_thresholds(video_model, args.min_predicted_iou, args.min_stability)
    config = AutoMaskConfig.with_grid(
        args.points_per_side,
        args.crop_layers,
        min_predicted_iou=min_iou,
        min_stability=min_stability,
        max_candidates=args.max_candidates or None,
    )
    print(note)
    print(
        f"grids {config.grid_sides} points per side (full frame, then each crop layer), "
        f"at most {config.max_candidates or 'all'} masklets, {config.objects_per_session} objects per session"
    )

    videos = [("synthetic", synthetic_frames(args.frames))]
    if args.real:
        videos.append((Path(args.real).stem, real_frames(args.real, args.real_frames)))
    warm = videos[0][1][:2]
    one_object(video_model, warm, baseline_mask([], warm.shape[1:3]))  # first-call allocations, kernel choice
    print(f"peak RSS {peak_rss_mb():.0f} MB after loading the model and one warm-up propagation")
    results = [measure(name, video_model, image_model, frames, config) for name, frames in videos]

    print(
        f"\n{'video':12} {'size':>9} {'frames':>6} | {'points':>6} {'masks':>6} {'passed':>6} {'kept':>4} "
        f"{'grid s':>7} {'masks/s':>8} | {'prop s':>7} {'FPS':>6} {'masklet-FPS':>11} | "
        f"{'1-object FPS':>12} {'x 1-object':>10} | {'peak RSS MB':>11}"
    )
    for r in results:
        print(
            f"{r.video:12} {r.size[1]:>4}x{r.size[0]:<4} {r.frames:6d} | {r.points:6d} {r.scored:6d} {r.passed:6d} "
            f"{r.kept:4d} {r.grid_s:7.2f} {r.masks_per_s:8.0f} | {r.propagation_s:7.2f} {r.fps:6.2f} "
            f"{r.masklet_fps:11.1f} | {r.baseline_fps:12.1f} {r.ratio:10.2f} | {r.peak_rss_mb:11.0f}"
        )
    print(
        "\nmasklet-FPS: frames x kept masklets per second of the propagation stage; "
        "x 1-object: masklet-FPS over the FPS of one object propagated alone over the same frames"
    )
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} at end (this machine has {os.cpu_count()} cores)")
    if load > (os.cpu_count() or 1):
        print("WARNING: other processes competed for the cores; these figures understate the speed")


if __name__ == "__main__":
    main()
