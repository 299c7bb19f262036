"""Small model pieces shared by the segmenter tests (not a test module itself)."""

from __future__ import annotations

import torch
from transformers import SamConfig

from engine.model_loading import DeviceChoice

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
