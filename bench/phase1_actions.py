"""Where Phase 1's annotation time goes, action by action, for one or more models side by side.

Phase 1 annotates every frame from scratch: clicks in the image model until the simulated
annotator's IoU target (or its click budget), then brush and eraser strokes up to the polish
target; a mask still mostly wrong after the clicks is cleared and painted anew. The time model
charges a stroke a fixed base plus its length, and an object drawn by hand on an empty mask
(an outline) COCO's 79.2 s per instance mask. So a model's Phase 1 cost is a matter of how many
separate error regions its masks leave and how many frames it fails outright: before outlines
were charged as such, an image model useless everywhere made Phase 1 the cheapest (its frames
cleared and painted in one stroke each, while a middling model's spill and miss took a stroke
each). This bench shows that split, on the demo's kind of videos, with the model's own compute
left out (a clock that does not advance).

    python bench/phase1_actions.py MODEL [MODEL ...] [--videos 4] [--frames 48] [--objects 2] [--seed 0]

MODEL is a weights folder (e.g. ``engine/weights/sam2-compact``), a registered or hub name, or
``random`` (the compact configuration with random weights). The first bootstrap model
(2026-12-04) is in the history: ``git show 325146a^:engine/weights/sam2-compact/FILE``, for
``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.annotation import Action  # noqa: E402
from engine.metrics import masklet_stats  # noqa: E402
from engine.model_loading import build_model, choose_device, image_model_from  # noqa: E402
from engine.model_segmenters import ModelSegmenters  # noqa: E402
from engine.segmenter_config import COMPACT  # noqa: E402
from engine.simulated_annotator import SimulatedAnnotator  # noqa: E402
from engine.synthetic import SyntheticSpec  # noqa: E402
from engine.synthetic.generate import generate_video  # noqa: E402
from engine.synthetic.video_sets import synthetic_video_id, video_seed  # noqa: E402
from engine.time_model import ManualClock  # noqa: E402
from phases import phase1  # noqa: E402
from phases.procedure import PhaseJob  # noqa: E402
from training.videos import synthetic_training_video  # noqa: E402

SHOWN = ("click", "clear", "outline", "brush", "eraser")  # outline: a brush stroke on an empty mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="weights folder, registered or hub name, or 'random'")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48, help="source frames per video (sampled at 6 of 24 FPS)")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = choose_device("cpu", args.threads)
    spec = SyntheticSpec(source_frames=args.frames, objects=args.objects, parts=0, force_events=args.frames >= 32)
    videos = [
        synthetic_training_video(generate_video(synthetic_video_id(args.seed, i), video_seed(args.seed, i), spec))
        for i in range(args.videos)
    ]
    header = f"{'model':40s} {'s/frame':>8s} " + " ".join(f"{a + '/f':>14s}" for a in SHOWN) + f" {'clicks/cf':>10s}"
    print(f"Phase 1 on {args.videos} synthetic videos ({args.objects} objects, {args.frames} source frames), seed {args.seed}")
    print("per frame: how many of each action, and (in brackets) the seconds they cost")
    print(header)
    for ref in args.models:
        if ref == "random":
            loaded = build_model(COMPACT, task="video", random_weights=True, device=device)
        else:
            loaded = build_model(ref, task="video", device=device)
        counts, seconds, frames, clicked = _phase1(loaded, videos, args.seed)
        cells = " ".join(f"{counts[a] / frames:6.2f} ({seconds[a] / frames:5.1f})" for a in SHOWN)
        total = sum(seconds.values()) / frames
        print(f"{ref[-40:]:40s} {total:8.1f} {cells} {counts['click'] / max(clicked, 1):10.2f}")


def _phase1(loaded, videos, seed: int) -> tuple[collections.Counter, collections.Counter, int, int]:
    segmenters = ModelSegmenters(loaded, image_model_from(loaded), None, loaded.name)
    counts: collections.Counter = collections.Counter()
    seconds: collections.Counter = collections.Counter()
    frames = clicked = 0
    for video in videos:
        for masklet in video.masklets:
            if masklet.first_appeared_frame is None:
                continue
            annotator = SimulatedAnnotator(masklet, name="bench-annotator", seed=seed)
            job = PhaseJob(video.video_id, masklet.object_id, video.frames, annotator, segmenters, clock=ManualClock())
            result = phase1.annotate(job)
            frames += masklet.frame_count
            clicked += masklet_stats(result.events).clicked_frames
            for event in result.events:
                kind = _kind(event)
                counts[kind] += 1
                seconds[kind] += event.duration_s
    return counts, seconds, frames, clicked


def _kind(event) -> str:
    if event.action is Action.BRUSH and event.payload.get("outline"):
        return "outline"
    return {Action.CLEAR_FRAME: "clear"}.get(event.action, event.action.value)


if __name__ == "__main__":
    main()
