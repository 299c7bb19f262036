"""The training model: the same computation as inference, gradients through memory, objects batched.

Sam2Trainer re-wires transformers' SAM 2 modules frame by frame so gradients can flow; if that
wiring drifted from ``Sam2VideoModel.forward`` (the inference path, through VideoSession), the
engine would train one model and run another. So in eval mode, on the same weights, it must
track exactly as a VideoSession does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from engine.masks import decode
from engine.mask_upsampling import BILINEAR
from engine.model_loading import LoadedModel, build_model
from engine.segmenter_config import COMPACT
from engine.video_session import VideoSession
from training.clips import make_clip
from training.losses import clip_loss
from training.model import FramePrediction, Sam2Trainer
from training.prompts import ClipPrompts, PromptKind, sample_clicks
from tests.training.tiny import CPU, small_model, tiny_video

SIDE = 256  # sam2-compact's input side: frames and masks of this size reach both paths unresized


@pytest.fixture(scope="module")
def compact() -> LoadedModel:
    """sam2-compact with weights that make tracking depend on the memory.

    Any weights do for comparing two paths that share them, so they are pinned here rather than
    taken from whatever checkpoint the repository ships. The random initialisation scores most
    objects absent (empty masks on both paths: equal, but proving nothing) and barely uses the
    memory (dropping every object pointer moves a logit by 1e-6). So the object-score head is
    biased towards "present" and the memory modules are redrawn at a larger scale: then
    dropping the pointers changes a third of the pixels, and subtler slips (the wrong clip
    length in the pointers' temporal encoding, a soft instead of a binarised prompted mask in
    memory) a few tenths of a percent or more, which the tolerances below catch.
    """
    # Bilinear: the trainer's masks are its logits' signs, and what is compared is the network;
    # a session fitting masks to the frame's edges (engine.mask_upsampling) would differ by design.
    loaded = build_model(COMPACT, task="video", device=CPU, random_weights=True, mask_upsampling=BILINEAR)
    model = loaded.module
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias += 2.0
        memory = (model.memory_attention, model.memory_encoder, model.object_pointer_proj, model.temporal_positional_encoding_projection_layer)
        for module in memory:
            for weight in (p for p in module.parameters() if p.dim() >= 2):
                weight.copy_(torch.randn(weight.shape, generator=generator) * 1.5 / weight.shape[1] ** 0.5)
    return loaded


def _first_mask(video) -> np.ndarray:
    return decode(video.masklets[0].masks[0]).astype(bool)


@dataclass
class Inferred:
    """What a VideoSession produced for the object on one frame."""

    mask: np.ndarray
    low_res_logits: torch.Tensor  # (h, w)
    score_logit: float


def _inference(loaded: LoadedModel, video, prompt) -> dict[int, Inferred]:
    """Frame -> the session's output, after ``prompt(session, object_id)`` on frame 0 and propagation.

    The low-resolution logits are read from the transformers inference session the VideoSession
    drives (its per-frame outputs): the public masks are thresholded, and comparing the logits
    themselves is what makes small drifts visible.
    """
    session = VideoSession(loaded, video.frames)
    object_id = video.masklets[0].object_id
    masks = {0: prompt(session, object_id).object(object_id).mask}
    masks.update({r.frame: r.object(object_id).mask for r in session.propagate(0, "forward")})
    outputs = session._session.output_dict_per_obj[0]
    inferred = {}
    for frame, mask in masks.items():
        out = outputs["cond_frame_outputs"].get(frame) or outputs["non_cond_frame_outputs"][frame]
        inferred[frame] = Inferred(mask, out["pred_masks"][0, 0], float(out["object_score_logits"].reshape(-1)[0]))
    return inferred


def _trainer_outputs(loaded: LoadedModel, video, prompts: ClipPrompts, seed: int) -> dict[int, FramePrediction]:
    clip = make_clip(video, list(range(video.frame_count)), [video.masklets[0].object_id], SIDE)
    trainer = Sam2Trainer(loaded.module).eval()
    with torch.no_grad():
        predictions = trainer(clip.pixels, clip.masks, prompts, torch.Generator().manual_seed(seed))
    return {p.clip_position: p for p in predictions}


def _assert_same_tracking(predictions: dict[int, FramePrediction], inferred: dict[int, Inferred], frames: range) -> None:
    for t in frames:
        step = predictions[t].steps[-1]
        trained_mask = (step.best_high_res[0, 0] > 0).numpy()
        assert 0.01 < trained_mask.mean() < 0.99, f"frame {t}: a trivial mask proves nothing"
        # Both paths make the same calls on the same pixels (frames of the model's own size, and
        # the video processor's own normalisation), so today they agree bit for bit. The slack is
        # for float summation order on other CPUs (the trainer encodes a clip's frames in one
        # batch, the session one at a time): a 1e-7 difference can flip a bfloat16 rounding in
        # the stored memory and move logits by ~1e-5, and a pixel whose logit is that close to
        # zero; never a fraction of a percent of them.
        differing = float((trained_mask != inferred[t].mask).mean())
        assert differing <= 2e-3, f"frame {t}: {differing:.2%} of pixels differ"
        torch.testing.assert_close(step.best_low_res[0, 0], inferred[t].low_res_logits, atol=1e-4, rtol=0)
        assert float(step.object_score_logits[0, 0]) == pytest.approx(inferred[t].score_logit, abs=1e-4)


def test_with_a_mask_on_frame_0_the_trainer_in_eval_mode_tracks_exactly_as_a_video_session(compact) -> None:
    video = tiny_video(4, side=SIDE, frames=8)  # the object leaves the frame at frame 6
    mask = _first_mask(video)

    predictions = _trainer_outputs(compact, video, ClipPrompts(PromptKind.MASK, (0,), (), 0), seed=0)
    inferred = _inference(compact, video, lambda s, obj: s.add_mask(0, obj, mask))

    assert predictions[0].from_mask_prompt and not predictions[0].steps
    # Frame 0's output is the prompt mask itself (through the 64x64 low-resolution logits at inference).
    assert (inferred[0].mask & mask).sum() / (inferred[0].mask | mask).sum() > 0.9
    _assert_same_tracking(predictions, inferred, range(1, video.frame_count))


def test_with_a_click_on_frame_0_the_trainer_in_eval_mode_tracks_exactly_as_a_video_session(compact) -> None:
    video = tiny_video(7, side=SIDE, frames=8)
    target = torch.from_numpy(_first_mask(video))[None]
    # The click the trainer will draw: the first draw of its generator, from the same seed.
    points, labels = sample_clicks(torch.zeros_like(target), target, torch.Generator().manual_seed(11))
    (x, y), label = points[0, 0].tolist(), int(labels[0, 0])
    assert label == 1 and target[0, int(y), int(x)]

    predictions = _trainer_outputs(compact, video, ClipPrompts(PromptKind.CLICK, (0,), (), 0), seed=11)
    inferred = _inference(compact, video, lambda s, obj: s.add_points(0, obj, [[x, y]], [label]))

    _assert_same_tracking(predictions, inferred, range(0, video.frame_count))


def test_corrective_clicks_in_the_trainer_are_what_a_video_session_does_with_all_the_clicks(compact) -> None:
    """Corrections are trained the way inference refines a frame: every click so far, with the mask before."""
    video = tiny_video(7, side=SIDE, frames=6)
    target = torch.from_numpy(_first_mask(video))[None]
    prompts = ClipPrompts(PromptKind.CLICK, (0,), (0,), 2)
    predictions = _trainer_outputs(compact, video, prompts, seed=11)
    steps = predictions[0].steps
    assert len(steps) == 3  # the click, then two corrections
    # Replay the trainer's draws: the first click, then a click from each step's error region.
    generator = torch.Generator().manual_seed(11)
    points, labels = sample_clicks(torch.zeros_like(target), target, generator)
    for step in steps[:-1]:
        click, label = sample_clicks((step.best_high_res[:, 0] > 0), target, generator)
        points, labels = torch.cat([points, click], dim=1), torch.cat([labels, label], dim=1)
    clicks = points[0].tolist()
    assert len(clicks) == 3

    def click_by_click(session: VideoSession, object_id: int):
        # As an annotator refines: each time every click so far, decoded with the frame's last mask.
        for k in range(1, len(clicks) + 1):
            result = session.add_points(0, object_id, clicks[:k], labels[0, :k].tolist())
        return result

    inferred = _inference(compact, video, click_by_click)

    _assert_same_tracking(predictions, inferred, range(0, video.frame_count))


def test_losses_on_tracked_frames_alone_train_the_memory_path_back_to_the_prompted_frame() -> None:
    video = tiny_video(8, frames=4)
    model = small_model()
    clip = make_clip(video, [0, 1, 2, 3], [video.masklets[0].object_id], model.image_size)
    trainer = Sam2Trainer(model).train()
    prompts = ClipPrompts(PromptKind.CLICK, (0,), (), 0)

    predictions = trainer(clip.pixels, clip.masks, prompts, torch.Generator().manual_seed(0))
    tracked = [p for p in predictions if p.clip_position not in prompts.cond_frames]
    loss, _ = clip_loss(tracked, clip.masks)
    loss.backward()

    def gradient(prefix: str) -> float:
        grads = [p.grad.abs().sum().item() for n, p in model.named_parameters() if n.startswith(prefix) and p.grad is not None]
        return sum(grads)

    assert len(tracked) == 3
    for module in ("memory_encoder", "memory_attention", "object_pointer_proj", "temporal_positional_encoding_projection_layer"):
        assert gradient(module) > 0, f"{module} got no gradient from the tracked frames' losses"
    # The positive click exists only on frame 0, which has no loss here: its embedding learns
    # only through frame 0's predicted mask (memory) and object pointer, read by later frames.
    assert model.prompt_encoder.point_embed.weight.grad[1].abs().sum() > 0


def test_a_mask_prompt_trains_the_memory_it_writes_through_the_object_pointer() -> None:
    video = tiny_video(11, frames=3)
    model = small_model()
    clip = make_clip(video, [0, 1, 2], [video.masklets[0].object_id], model.image_size)

    predictions = Sam2Trainer(model).train()(clip.pixels, clip.masks, ClipPrompts(PromptKind.MASK, (0,), (), 0), torch.Generator())
    loss, _ = clip_loss(predictions, clip.masks)  # frame 0 is the prompt itself: only frames 1 and 2 count
    loss.backward()

    assert [p.clip_position for p in predictions if p.steps] == [1, 2]
    # mask_downsample runs only where a prompt mask becomes frame 0's object pointer.
    assert model.mask_downsample.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.memory_encoder.parameters())


@pytest.fixture
def centred_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clicks at each object's first pixel instead of a random one, so objects prompted together
    or alone get the same clicks (a shared generator would hand them different draws)."""

    def first_pixel(predicted, target, generator):
        points = []
        for true in target:
            ys, xs = torch.nonzero(true, as_tuple=True)
            points.append([float(xs[0]), float(ys[0])])
        return torch.tensor(points).view(-1, 1, 2), torch.ones(len(points), 1, dtype=torch.int32)

    monkeypatch.setattr("training.model.sample_clicks", first_pixel)


@pytest.mark.parametrize("kind", [PromptKind.MASK, PromptKind.CLICK])
def test_objects_batched_together_get_what_each_gets_alone(kind: PromptKind, centred_clicks) -> None:
    video = tiny_video(9, objects=2, frames=3)
    model = small_model().eval()
    ids = [m.object_id for m in video.masklets]
    prompts = ClipPrompts(kind, (0,), (), 0)
    both = make_clip(video, [0, 1, 2], ids, model.image_size)
    assert both.masks[0].flatten(1).sum(1).min() > 0, "both objects must be on frame 0"

    with torch.no_grad():
        together = Sam2Trainer(model)(both.pixels, both.masks, prompts, torch.Generator())
        loss_together, _ = clip_loss(together, both.masks)
        alone, losses_alone = [], []
        for k, object_id in enumerate(ids):
            single = make_clip(video, [0, 1, 2], [object_id], model.image_size)
            assert torch.equal(single.masks[:, 0], both.masks[:, k])
            predictions = Sam2Trainer(model)(single.pixels, single.masks, prompts, torch.Generator())
            alone.append(predictions)
            losses_alone.append(clip_loss(predictions, single.masks)[0])

    for position, joint in enumerate(together):
        for k in range(len(ids)):
            own = alone[k][position]
            assert own.clip_position == joint.clip_position and len(own.steps) == len(joint.steps)
            for a, b in zip(joint.steps, own.steps, strict=True):
                torch.testing.assert_close(a.multimask_logits[k], b.multimask_logits[0], atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(a.iou_scores[k], b.iou_scores[0], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(a.object_score_logits[k], b.object_score_logits[0], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(a.object_pointer[k], b.object_pointer[0], atol=1e-5, rtol=1e-4)
    # The clip's loss is the mean over its objects (SAM 2 divides by the number of objects).
    torch.testing.assert_close(loss_together, torch.stack(losses_alone).mean(), atol=1e-4, rtol=1e-5)



def test_the_trainer_reports_feature_and_memory_magnitudes_with_their_gradients() -> None:
    video = tiny_video(8, frames=3)
    model = small_model()
    clip = make_clip(video, [0, 1, 2], [video.masklets[0].object_id], model.image_size)
    predictions = Sam2Trainer(model).train()(clip.pixels, clip.masks, ClipPrompts(PromptKind.MASK, (0,), (), 0), torch.Generator())
    levels = len(model.backbone_feature_sizes)
    assert len(predictions.feature_rms) == levels + 3  # every feature level, then one memory per frame
    assert all(float(rms.detach()) > 0 for rms in predictions.feature_rms)
    sum(predictions.feature_rms).backward()
    for module in ("vision_encoder", "memory_encoder"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.startswith(module))


@pytest.mark.parametrize("corrections", [1, 3])
def test_corrective_clicks_on_a_tracked_frame_are_what_a_video_session_does_with_them(compact, corrections) -> None:
    """Phase 3's refinement: a mask on frame 0, tracked to frame 1, then clicks on frame 1.

    One click on a tracked frame is decoded multi-mask at inference (the best of three
    candidates), more clicks as one mask. The decoder's stability fallback, which can turn a
    single-mask output into the best of the three as well, is off here, so that a trainer
    decoding the wrong way cannot agree by chance.
    """
    decoder = compact.module.mask_decoder
    decoder.dynamic_multimask_via_stability = False
    try:
        video = tiny_video(4, side=SIDE, frames=3)
        mask = _first_mask(video)
        target = torch.from_numpy(decode(video.masklets[0].masks[1]).astype(bool))[None]
        predictions = _trainer_outputs(compact, video, ClipPrompts(PromptKind.MASK, (0,), (1,), corrections), seed=5)
        steps = predictions[1].steps
        assert len(steps) == corrections + 1  # the tracked prediction, then one per click
        generator = torch.Generator().manual_seed(5)
        points = labels = None
        for step in steps[:-1]:
            click, label = sample_clicks((step.best_high_res[:, 0] > 0), target, generator)
            points = click if points is None else torch.cat([points, click], dim=1)
            labels = label if labels is None else torch.cat([labels, label], dim=1)

        session = VideoSession(compact, video.frames)
        object_id = video.masklets[0].object_id
        session.add_mask(0, object_id, mask)
        tracked = {r.frame: r.object(object_id).mask for r in session.propagate(0, "forward")}
        assert float((tracked[1] != (steps[0].best_high_res[0, 0] > 0).numpy()).mean()) <= 2e-3
        for k in range(1, corrections + 1):  # click by click, as Phase 3's annotator refines
            result = session.add_points(1, object_id, points[0, :k].tolist(), labels[0, :k].tolist())
        refined = result.object(object_id).mask
        out = session._session.output_dict_per_obj[0]["cond_frame_outputs"][1]  # promoted to conditioning
    finally:
        decoder.dynamic_multimask_via_stability = True
    trained = steps[-1]
    trained_mask = (trained.best_high_res[0, 0] > 0).numpy()
    assert 0.01 < trained_mask.mean() < 0.99
    assert float((refined != tracked[1]).mean()) > 0.01, "the clicks changed nothing: comparing proves little"
    assert float((trained_mask != refined).mean()) <= 2e-3
    torch.testing.assert_close(trained.best_low_res[0, 0], out["pred_masks"][0, 0], atol=1e-4, rtol=0)
    assert float(trained.object_score_logits[0, 0]) == pytest.approx(float(out["object_score_logits"].reshape(-1)[0]), abs=1e-4)
