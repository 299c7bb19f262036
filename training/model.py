"""The training model: transformers' SAM 2 modules wired frame by frame with gradients on.

transformers' video API (``Sam2VideoModel.forward``, ``propagate_in_video_iterator``) runs
under ``torch.inference_mode`` and keeps its state in an inference session, so it cannot be
trained through. SAM 2's own training model (``SAM2Train``) instead calls the components in
order for every frame of a clip: image encoder once for all frames; for each frame, memory
attention over the memory bank, prompt encoder and mask decoder (the "SAM heads"), then the
memory encoder on the prediction, whose output later frames attend to. This module does the
same with the very modules of a ``Sam2VideoModel`` (so the weights trained here are the ones
the predictors load), reusing its memory-bank helpers, which read nothing from a session but
its per-object outputs. Gradients flow from every frame's loss back through the memory
features and object pointers of the frames before it.

Two deliberate differences from inference, both as in SAM 2's training: memory is encoded
from the sigmoid of the predicted logits rather than a binarised mask (so it is
differentiable), and object pointers of all conditioning frames are visible to every frame.
One difference from SAM 2: mask losses are computed on the decoder's logits before the
"object absent" gate. The gate still decides what goes into memory; computing the loss before
it means a model that wrongly says "absent" is still told what the mask should have been,
which a model trained from scratch needs (its object-score head starts out random).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Sam2VideoModel

from engine.model_loading import PREVIOUS_LOGITS_CLAMP
from training.prompts import ClipPrompts, PromptKind, PromptSpec, noisy_boxes, sample_clicks

NO_OBJECT_SCORE = -1024.0  # transformers' NO_OBJ_SCORE: logits of a mask gated as "absent"


@dataclass
class HeadOutput:
    """One pass of the SAM heads over the objects of one frame."""

    multimask_logits: torch.Tensor  # (K, M, h, w) low-resolution logits, before the absent gate
    iou_scores: torch.Tensor  # (K, M) predicted IoU of each mask
    object_score_logits: torch.Tensor  # (K, 1) "the object is on this frame"
    best_low_res: torch.Tensor  # (K, 1, h, w) the chosen mask, gated, as the video model keeps it
    best_high_res: torch.Tensor  # (K, 1, S, S)
    object_pointer: torch.Tensor  # (K, C)


@dataclass
class FramePrediction:
    """Every step the model took on one frame: the first prediction, then one per correction."""

    clip_position: int
    steps: list[HeadOutput] = field(default_factory=list)
    from_mask_prompt: bool = False  # the frame's output is the prompt mask itself: nothing to learn


class ClipPredictions(list):
    """A clip's :class:`FramePrediction` list, plus the magnitudes the training loss may bound.

    ``feature_rms`` holds the root-mean-square of each image-encoder feature level (the raw FPN
    outputs) and of each frame's memory-encoder output, with gradients: trained from scratch,
    these grow until an object's mask is a vanishing share of its memory (docs/training.md), so
    the bootstrap's loss penalises them beyond a limit (:class:`training.losses.LossWeights`).
    """

    def __init__(self, predictions: list[FramePrediction] = (), feature_rms: list[torch.Tensor] = ()) -> None:
        super().__init__(predictions)
        self.feature_rms = list(feature_rms)


class _MemoryBank:
    """What ``Sam2VideoModel``'s memory helpers read from an inference session, and nothing else.

    All objects of a clip travel together as the batch dimension of one entry (memories
    ``(HW, K, C)``, pointers ``(K, C)``), so memory attention runs once per frame, not per object.
    """

    dtype = torch.float32

    def __init__(self) -> None:
        self.output_dict_per_obj: dict[int, dict[str, dict[int, dict[str, torch.Tensor]]]] = {
            0: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        }

    def store(self, position: int, conditioning: bool, output: dict[str, torch.Tensor]) -> None:
        key = "cond_frame_outputs" if conditioning else "non_cond_frame_outputs"
        self.output_dict_per_obj[0][key][position] = output


class Sam2Trainer(nn.Module):
    """Runs a clip through a ``Sam2VideoModel`` with prompts, returning every prediction."""

    def __init__(self, model: Sam2VideoModel, prompt_spec: PromptSpec = PromptSpec()) -> None:
        super().__init__()
        self.model = model
        self.prompt_spec = prompt_spec

    def forward(
        self,
        pixels: torch.Tensor,
        masks: torch.Tensor,
        prompts: ClipPrompts,
        generator: torch.Generator,
    ) -> ClipPredictions:
        """``pixels`` (T, 3, S, S) and target ``masks`` (T, K, S, S); predictions in processing order."""
        seen: list[torch.Tensor] = []
        hooks = [
            self.model.vision_encoder.register_forward_hook(lambda _m, _i, out: seen.extend(out.fpn_hidden_states)),
            self.model.memory_encoder.register_forward_hook(lambda _m, _i, out: seen.append(out[0])),
        ]
        try:
            predictions = self._clip(pixels, masks, prompts, generator)
        finally:
            for hook in hooks:
                hook.remove()
        # Measured once the clip is done: the video model adds its occlusion embedding to a
        # memory in place after the encoder returns it.
        return ClipPredictions(predictions, [_rms(tensor) for tensor in seen])

    def _clip(
        self, pixels: torch.Tensor, masks: torch.Tensor, prompts: ClipPrompts, generator: torch.Generator
    ) -> list[FramePrediction]:
        model = self.model
        frame_count, objects = masks.shape[0], masks.shape[1]
        vision = model.get_image_features(pixels, return_dict=True)
        features = vision.fpn_hidden_states  # per level: (HW, T, C)
        positions = vision.fpn_position_encoding
        bank = _MemoryBank()
        order = list(prompts.cond_frames) + [t for t in range(frame_count) if t not in prompts.cond_frames]
        predictions = []
        for t in order:
            frame_features = [level[:, t : t + 1].expand(-1, objects, -1) for level in features]
            frame_positions = [level[:, t : t + 1].expand(-1, objects, -1) for level in positions]
            prediction, memory_input = self._frame(bank, t, frame_count, frame_features, frame_positions, masks[t], prompts, generator)
            predictions.append(prediction)
            high_res, object_score_logits, from_points, pointer = memory_input
            maskmem_features, maskmem_pos_enc = model._encode_new_memory(
                current_vision_feats=frame_features[-1],
                pred_masks_high_res=high_res,
                object_score_logits=object_score_logits,
                is_mask_from_pts=from_points,
            )
            bank.store(
                t,
                t in prompts.cond_frames,
                {
                    "maskmem_features": maskmem_features,
                    "maskmem_pos_enc": maskmem_pos_enc,
                    "object_pointer": pointer,
                },
            )
        return predictions

    def _frame(self, bank, t, frame_count, features, positions, target, prompts, generator):
        model = self.model
        objects = target.shape[0]
        height, width = model.backbone_feature_sizes[-1]
        high_res_features = [
            x.permute(1, 2, 0).reshape(objects, -1, *s) for x, s in zip(features[:-1], model.backbone_feature_sizes[:-1])
        ]
        conditioning = t in prompts.cond_frames
        prediction = FramePrediction(clip_position=t)
        if conditioning and prompts.kind is PromptKind.MASK:
            pix_feat = features[-1].permute(1, 2, 0).reshape(objects, model.hidden_dim, height, width)
            # One object at a time: transformers picks the best mask with indexing that is only
            # right for a batch of one.
            outs = [
                model._use_mask_as_output(pix_feat[k : k + 1], [f[k : k + 1] for f in high_res_features], target[k : k + 1, None])
                for k in range(objects)
            ]
            prediction.from_mask_prompt = True
            return prediction, (
                torch.cat([o.high_res_masks for o in outs]),
                torch.cat([o.object_score_logits for o in outs]),
                # As Sam2VideoModel.forward marks a prompted frame (points or mask): in eval mode
                # its memory is encoded from the binarised mask, as at inference.
                True,
                torch.cat([o.object_pointer.reshape(1, -1) for o in outs]),
            )
        pix_feat = self._conditioned_features(bank, t, frame_count, conditioning, features[-1], positions[-1])
        points = labels = None
        if conditioning and prompts.kind is PromptKind.CLICK:
            points, labels = sample_clicks(torch.zeros_like(target, dtype=torch.bool), target > 0.5, generator)
        elif conditioning and prompts.kind is PromptKind.BOX:
            points, labels = noisy_boxes(target > 0.5, self.prompt_spec, generator)
        multimask = model._use_multimask(conditioning, None if points is None else {"point_labels": labels[:, None]})
        out = self.heads(pix_feat, high_res_features, points, labels, None, multimask)
        prediction.steps.append(out)
        if t in prompts.correction_frames:
            for _ in range(prompts.corrections_per_frame):
                wrong = (out.best_high_res[:, 0] > 0).detach()
                click, click_label = sample_clicks(wrong, target > 0.5, generator)
                points = click if points is None else torch.cat([points, click], dim=1)
                labels = click_label if labels is None else torch.cat([labels, click_label], dim=1)
                # All clicks so far with the previous prediction's logits as a mask prompt, as
                # SAM 2 trains (``iter_use_prev_mask_pred``) and as a VideoSession decodes a click
                # on a frame that has a mask (``PreviousMaskRefinement``), clamped as there. On a
                # tracked frame the first correction refines the tracked mask.
                # Multi-mask or not as inference decides it: on a tracked frame one click is
                # decoded multi-mask (``multimask_output_for_tracking``), as Phase 3's first
                # refinement click is; from two clicks on, one mask.
                previous = out.best_low_res.clamp(-PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)
                multimask = model._use_multimask(conditioning, {"point_labels": labels[:, None]})
                out = self.heads(pix_feat, high_res_features, points, labels, previous, multimask)
                prediction.steps.append(out)
        return prediction, (out.best_high_res, out.object_score_logits[:, :, None], points is not None, out.object_pointer)

    def _conditioned_features(
        self,
        bank: _MemoryBank,
        t: int,
        frame_count: int,
        conditioning: bool,
        features: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """The frame's top-level features attended to the memory bank, ``(K, C, h, w)``.

        ``Sam2VideoModel._prepare_memory_conditioned_features`` step by step, with its helpers,
        except for the last reshape, which there assumes a batch of one object.
        """
        model = self.model
        objects = features.shape[1]
        height, width = model.backbone_feature_sizes[-1]
        if conditioning:
            flat = features + model.no_memory_embedding
            return flat.permute(1, 2, 0).reshape(objects, model.hidden_dim, height, width)
        previous = model._gather_memory_frame_outputs(bank, 0, t)
        memories, memory_positions = model._build_memory_attention_inputs(previous, features.device)
        offsets, pointers, max_pointers = model._get_object_pointers(bank, 0, t, frame_count, features.device)
        pointer_tokens = 0
        if pointers:
            object_pointers, pointer_positions = model._process_object_pointers(
                offsets, pointers, max_pointers, objects, model.hidden_dim, features.device
            )
            memories.append(object_pointers)
            memory_positions.append(pointer_positions)
            pointer_tokens = object_pointers.shape[0]
        attended = model.memory_attention(
            current_vision_features=features,
            current_vision_position_embeddings=positions,
            memory=torch.cat(memories, dim=0).to(bank.dtype),
            memory_posision_embeddings=torch.cat(memory_positions, dim=0),
            num_object_pointer_tokens=pointer_tokens,
        )  # (1, K, HW, C)
        return attended[0].permute(0, 2, 1).reshape(objects, model.hidden_dim, height, width)

    def heads(
        self,
        pix_feat: torch.Tensor,
        high_res_features: list[torch.Tensor],
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> HeadOutput:
        """Prompt encoder and mask decoder on memory-conditioned features, as the video model runs them.

        Mirrors ``Sam2VideoModel._single_frame_forward`` but keeps every candidate mask, which
        the multi-mask loss needs (only the best one reaches memory).
        """
        model = self.model
        objects = pix_feat.shape[0]
        image_pe = model.get_image_wide_positional_embeddings().repeat(objects, 1, 1, 1)
        if points is None:
            points = torch.zeros(objects, 1, 2, device=pix_feat.device)
            labels = -torch.ones(objects, 1, dtype=torch.int32, device=pix_feat.device)
        sparse, dense = model.prompt_encoder(
            input_points=points[:, None].to(pix_feat.device, pix_feat.dtype),
            input_labels=labels[:, None].to(pix_feat.device),
            input_boxes=None,
            input_masks=mask_input,
        )
        multimask_logits, iou_scores, tokens, object_score_logits = model.mask_decoder(
            image_embeddings=pix_feat,
            image_positional_embeddings=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            high_resolution_features=high_res_features,
        )
        multimask_logits, iou_scores, tokens = multimask_logits[:, 0], iou_scores[:, 0], tokens[:, 0]
        object_score_logits = object_score_logits[:, 0]  # (K, 1)
        best = iou_scores.argmax(dim=-1) if multimask else torch.zeros(objects, dtype=torch.long, device=pix_feat.device)
        rows = torch.arange(objects, device=pix_feat.device)
        appearing = object_score_logits > 0  # (K, 1)
        gated = torch.where(appearing[:, :, None, None], multimask_logits, NO_OBJECT_SCORE)
        # Every candidate upsampled, then the best one picked, as _single_frame_forward does: the
        # same call on the same tensor shape gives the memory encoder the same bits as inference.
        high = F.interpolate(gated.float(), size=(model.image_size, model.image_size), mode="bilinear", align_corners=False)
        best_low, best_high = gated[rows, best][:, None], high[rows, best][:, None]
        pointer = model.object_pointer_proj(tokens[rows, best])
        weight = appearing.to(pointer.dtype)
        pointer = weight * pointer + (1 - weight) * model.no_object_pointer
        return HeadOutput(multimask_logits, iou_scores, object_score_logits, best_low, best_high, pointer)


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float().pow(2).mean().sqrt()
