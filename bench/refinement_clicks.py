"""Phase 3's refinement, model by model: how far clicks on a wrongly tracked frame mend it.

For every object of the bootstrap's synthetic validation videos: its ground-truth mask on the
frame where it first appears, propagation through a ``VideoSession``, then, on the first
later frame below IoU 0.9 (the simulated annotator's target), up to ``--clicks`` clicks where
the simulated annotator puts them (the centre of the largest error region), every click so far
sent to the session as Phase 3 sends them. Prints the mean IoU after each click and the share
of frames that reached 0.9: the figures behind Phase 3's clicks per clicked frame.

``--decoding``: how the session decodes the clicks: with the frame's previous mask, as SAM 2
and the engine do (``previous-mask``, the default), from the clicks alone, as transformers'
video model and the engine before 2026-12-05 did (``clicks-alone``: ``refine=False``), or
``both``, one row each.

    python bench/refinement_clicks.py MODEL_DIR [MODEL_DIR ...] [--videos 4] [--clicks 8] [--threads 2]
        [--decoding previous-mask|clicks-alone|both]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.masklets import Masklet  # noqa: E402
from engine.masks import decode  # noqa: E402
from engine.model_loading import build_model, choose_device  # noqa: E402
from engine.simulated_annotator import DEFAULT_IOU_TARGET, corrective_click, frame_iou  # noqa: E402
from engine.video_session import VideoSession  # noqa: E402
from training.bootstrap import BootstrapSpec, synthetic_videos  # noqa: E402


def refine_object(session: VideoSession, masklet: Masklet, clicks: int, *, refine: bool = True) -> list[float] | None:
    """IoU of the first failing tracked frame before and after each click; None if no frame fails."""
    first, object_id = masklet.first_appeared_frame, masklet.object_id
    if first is None:
        return None
    truth = [decode(rle).astype(bool) for rle in masklet.masks]
    session.add_mask(first, object_id, truth[first])
    tracked = {r.frame: r.object(object_id).mask for r in session.propagate(first, "forward")}
    failing = next((f for f in sorted(tracked) if f > first and frame_iou(tracked[f], truth[f]) < DEFAULT_IOU_TARGET), None)
    if failing is None:
        return None
    mask, points, labels = tracked[failing], [], []
    ious = [frame_iou(mask, truth[failing])]
    for _ in range(clicks):
        click = corrective_click(failing, mask, truth[failing])
        if click is None:
            break
        points.append([click.x, click.y])
        labels.append(1 if click.positive else 0)
        mask = session.add_points(failing, object_id, points, labels, refine=refine).object(object_id).mask
        ious.append(frame_iou(mask, truth[failing]))
    return ious + [ious[-1]] * (clicks + 1 - len(ious))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders (config.json + model.safetensors)")
    parser.add_argument("--videos", type=int, default=4, help="validation videos of the bootstrap's data (seed 0)")
    parser.add_argument("--clicks", type=int, default=8, help="the simulated annotator's click budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decoding", choices=("previous-mask", "clicks-alone", "both"), default="previous-mask")
    args = parser.parse_args()
    decodings = {"previous-mask": [True], "clicks-alone": [False], "both": [True, False]}[args.decoding]
    torch.set_num_threads(args.threads)
    device = choose_device("cpu", torch_threads=args.threads)
    _, videos = synthetic_videos(BootstrapSpec(train_videos=0, val_videos=args.videos))
    print(f"first failing tracked frame of each object, {args.videos} validation videos; IoU after k clicks")
    print(f"{'model':<40} {'frames':>6} " + " ".join(f"{k:>5}" for k in range(args.clicks + 1)) + "  reached 0.9")
    for model_dir, refine in [(m, r) for m in args.models for r in decodings]:
        loaded = build_model(model_dir, task="video", device=device)
        curves = []
        for video in videos:
            for masklet in video.masklets:
                curve = refine_object(VideoSession(loaded, video.frames), masklet, args.clicks, refine=refine)
                if curve is not None:
                    curves.append(curve)
        name = f"{model_dir}{'' if refine else ' (clicks alone)'}"
        if not curves:
            print(f"{name:<40} no tracked frame failed")
            continue
        mean = np.mean(curves, axis=0)
        reached = np.mean([c[-1] >= DEFAULT_IOU_TARGET for c in curves])
        print(f"{name:<40} {len(curves):>6} " + " ".join(f"{v:5.2f}" for v in mean) + f"  {reached:10.0%}", flush=True)


if __name__ == "__main__":
    main()
