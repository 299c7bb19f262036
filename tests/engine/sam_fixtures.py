"""Small model pieces shared by the segmenter tests (not a test module itself)."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from transformers import SamConfig

from engine.model_loading import DeviceChoice, LoadedModel, PreviousMaskRefinement

CPU = DeviceChoice(torch.device("cpu"), None)


def tiny_sam1_config() -> SamConfig:
    """A SAM 1 of 0.1 M parameters at 256 px: the ViT-B code path, fast enough for tests."""
    return SamConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 256,
            "global_attn_indexes": [1],
            "window_size": 4,
            "output_channels": 32,
            "mlp_dim": 64,
            "num_pos_feats": 16,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": 256, "image_embedding_size": 16},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )


class PreviousLogitsSpy:
    """Records the ``prev_sam_mask_logits`` transformers' single-frame step receives, per call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, model: LoadedModel) -> None:
        self.calls: list[tuple[int, bool, torch.Tensor | None]] = []
        mro = type(model.module).__mro__
        base = mro[mro.index(PreviousMaskRefinement) + 1]  # past the mixin: the transformers class
        original = base._run_single_frame_inference
        spy = self

        @functools.wraps(original)  # keeps the signature, which the mixin binds its arguments to
        def recording(module, *args, **kwargs):
            call = inspect.signature(original).bind(module, *args, **kwargs).arguments
            spy.calls.append((call["frame_idx"], call["point_inputs"] is not None, call.get("prev_sam_mask_logits")))
            return original(module, *args, **kwargs)

        monkeypatch.setattr(base, "_run_single_frame_inference", recording)

    def last(self) -> torch.Tensor | None:
        return self.calls[-1][2]
