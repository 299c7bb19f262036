"""The segmentation model configurations the engine knows by name, as transformers configs.

Every model the engine runs is Hugging Face transformers' SAM 2 (``Sam2VideoModel`` /
``Sam2Model``), EdgeTAM (``EdgeTamVideoModel`` / ``EdgeTamModel``: SAM 2's interface with a
RepViT image encoder and a spatial-perceiver memory) or SAM 1 (``SamModel``); this module only
says which *shape* of those models a name stands for. Weights come from elsewhere
(:mod:`engine.model_loading`).

``sam2-compact`` is the engine's own embedded default: a SAM 2 of about 2.9 M parameters at
256 px that propagates at interactive speed on two CPU cores. The published SAM 2.1 and SAM 1
and EdgeTAM shapes are here too, so that benchmarks can time them with random weights where the
real checkpoints cannot be downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from transformers import (
    EdgeTamVideoConfig,
    EdgeTamVisionConfig,
    PreTrainedConfig,
    Sam2HieraDetConfig,
    Sam2VideoConfig,
    Sam2VisionConfig,
    SamConfig,
)

from engine.errors import ConfigError

COMPACT = "sam2-compact"
# The transformers port of Meta's EdgeTAM (converted by transformers' convert_edgetam_video_to_hf.py).
EDGETAM = "yonigozlan/EdgeTAM-hf"


class ModelFamily(StrEnum):
    """Which transformers model class a configuration belongs to."""

    SAM2 = "sam2"  # Sam2VideoModel for video, Sam2Model for images (same weights)
    EDGETAM = "edgetam"  # EdgeTamVideoModel for video, EdgeTamModel for images (same weights)
    SAM = "sam"  # SamModel: SAM 1, images only

    @property
    def sam2_interface(self) -> bool:
        """True if the family's transformers classes take SAM 2's inputs and sessions.

        EdgeTAM's classes are SAM 2's with another image encoder and memory attention: the same
        forward arguments, three FPN feature levels, the same inference session and processors.
        So the image predictor and the video session drive both alike; SAM 1 differs (one
        feature map, longest-side resize with padding, no memory).
        """
        return self is not ModelFamily.SAM


@dataclass(frozen=True)
class KnownModel:
    """A model name the engine can build without being told its configuration."""

    name: str
    family: ModelFamily
    build_config: Callable[[], PreTrainedConfig]
    description: str
    embedded: bool = False  # True: no checkpoint exists yet, random initialisation is the model


def sam2_compact_config(image_size: int = 256) -> Sam2VideoConfig:
    """The ``sam2-compact`` shape: Hiera [32, 64, 128, 256] at 256 px, 2,884,194 parameters.

    Widths follow the measurements in ``shared/notes/sam2-compact.md``; two of them are not free
    choices in transformers 5.24: the memory encoder must emit 64 channels (memory
    cross-attention is built for 64-channel memories) and the FPN must not be 64 wide (object
    pointers would keep 4 dimensions and tracking fails in a ``torch.cat``).
    """
    stride_4, stride_8, stride_16 = image_size // 4, image_size // 8, image_size // 16
    backbone = Sam2HieraDetConfig(
        hidden_size=32,
        num_attention_heads=1,
        image_size=[image_size, image_size],
        blocks_per_stage=[1, 1, 3, 1],
        embed_dim_per_stage=[32, 64, 128, 256],
        num_attention_heads_per_stage=[1, 1, 2, 4],
        window_size_per_stage=[8, 4, 8, 8],
        # Block 4 is the last of stage 3; one global block is enough at a 16x16 token grid.
        global_attention_blocks=[4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[256, 128, 64, 32],
        backbone_feature_sizes=[[stride_4, stride_4], [stride_8, stride_8], [stride_16, stride_16]],
        fpn_hidden_size=128,
    )
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 128, "image_size": image_size, "patch_size": 16},
        mask_decoder_config={
            "hidden_size": 128,
            "mlp_dim": 256,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "iou_head_hidden_dim": 128,
        },
        image_size=image_size,
        num_maskmem=7,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=2,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[stride_16, stride_16],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=256,
    )


def _sam21_config(
    embed_dim: int,
    heads: int,
    blocks: list[int],
    global_blocks: list[int],
    windows: list[int],
    background: list[int],
) -> Sam2VideoConfig:
    """A published SAM 2.1 shape (1024 px, FPN 256); only the Hiera trunk differs between sizes.

    The figures are those of Meta's ``configs/sam2.1/sam2.1_hiera_*.yaml``.
    """
    dims = [embed_dim * 2**i for i in range(4)]
    backbone = Sam2HieraDetConfig(
        hidden_size=embed_dim,
        num_attention_heads=heads,
        blocks_per_stage=blocks,
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[heads * 2**i for i in range(4)],
        window_size_per_stage=windows,
        global_attention_blocks=global_blocks,
        window_positional_embedding_background_size=background,
    )
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=dims[::-1])
    return Sam2VideoConfig(vision_config=vision)


def sam21_tiny_config() -> Sam2VideoConfig:
    return _sam21_config(96, 1, [1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], [7, 7])


def sam21_small_config() -> Sam2VideoConfig:
    return _sam21_config(96, 1, [1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], [7, 7])


def sam21_base_plus_config() -> Sam2VideoConfig:
    return _sam21_config(112, 2, [2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], [14, 14])


def sam21_large_config() -> Sam2VideoConfig:
    return _sam21_config(144, 2, [2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], [7, 7])


def edgetam_config(
    image_size: int = 1024,
    repvit_widths: tuple[int, int, int, int] = (48, 96, 192, 384),
    repvit_depths: tuple[int, int, int, int] | None = None,
    latents_2d_side: int = 16,
    fpn_hidden_size: int = 256,
    **video_fields: object,
) -> EdgeTamVideoConfig:
    """An EdgeTAM shape; the defaults are the published one (RepViT-M1 at 1024 px, 13.9 M parameters).

    The figures are those of transformers' ``convert_edgetam_video_to_hf.py``: a timm
    ``repvit_m1`` trunk, SAM 2.1's prompt encoder and mask decoder, a 2D spatial perceiver of
    256 global and ``latents_2d_side``**2 windowed latents, and neither temporal encoding of
    object pointers nor the occlusion embedding. Built here rather than from transformers'
    defaults, which are not EdgeTAM in 5.24: ``EdgeTamVideoConfig()`` gets a Hiera encoder, and
    ``EdgeTamVisionConfig()`` a ResNet-50 (its default backbone misspells ``architecture``).

    Smaller shapes (tests) narrow the trunk (``repvit_widths``, ``repvit_depths``, passed to
    timm) and the FPN, shrink the input and override any ``EdgeTamVideoConfig`` field in
    ``video_fields``. ``latents_2d_side`` must divide ``image_size // 16``, the memory's grid.
    As in SAM 2, the mask decoder, memory attention and memory encoder work at the FPN's width,
    which must not be 64, the memory's (object pointers are then never split, and tracking
    fails in a ``torch.cat``).
    """
    # Imported here: the timm wrapper's config imports timm (and torchvision), 1.5 s that only
    # EdgeTAM needs.
    from transformers import TimmWrapperConfig

    grid = image_size // 16
    if image_size % 16 or grid % latents_2d_side:
        raise ConfigError(
            f"EdgeTAM at {image_size} px: latents_2d_side {latents_2d_side} must divide the memory grid "
            f"{grid} (image_size / 16, image_size a multiple of 16)"
        )
    model_args: dict[str, object] = {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]}
    if repvit_widths != (48, 96, 192, 384) or repvit_depths is not None:
        model_args["embed_dim"] = list(repvit_widths)
        if repvit_depths is not None:
            model_args["depth"] = list(repvit_depths)
    stride_4 = image_size // 4
    vision = EdgeTamVisionConfig(
        backbone_config=TimmWrapperConfig(architecture="repvit_m1", model_args=model_args),
        backbone_channel_list=list(repvit_widths)[::-1],
        backbone_feature_sizes=[[stride_4, stride_4], [stride_4 // 2, stride_4 // 2], [grid, grid]],
        fpn_hidden_size=fpn_hidden_size,
    )
    prompt_fields = video_fields.pop("prompt_encoder_config", None) or {}
    prompt = {"image_size": image_size, **prompt_fields}  # type: ignore[dict-item]
    fields: dict[str, object] = {
        "image_size": image_size,
        "prompt_encoder_config": prompt,
        "memory_attention_rope_feat_sizes": [grid, grid],
        "memory_attention_rope_k_sizes": [latents_2d_side, latents_2d_side],
        "perceiver_resampler_num_latents_2d": latents_2d_side**2,
        "enable_temporal_pos_encoding_for_object_pointers": False,
        "enable_occlusion_spatial_embedding": False,
    }
    fields.update(video_fields)
    return EdgeTamVideoConfig(vision_config=vision, **fields)  # type: ignore[arg-type]


def sam_vit_base_config() -> SamConfig:
    """SAM 1 ViT-B: transformers' ``SamConfig`` defaults are exactly that shape."""
    return SamConfig()


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            COMPACT,
            ModelFamily.SAM2,
            sam2_compact_config,
            "SAM 2, Hiera 32-256, 256 px, 2.9 M parameters; the engine's embedded default",
            embedded=True,
        ),
        KnownModel("facebook/sam2.1-hiera-tiny", ModelFamily.SAM2, sam21_tiny_config, "SAM 2.1 Hiera-T, 39 M"),
        KnownModel("facebook/sam2.1-hiera-small", ModelFamily.SAM2, sam21_small_config, "SAM 2.1 Hiera-S, 46 M"),
        KnownModel("facebook/sam2.1-hiera-base-plus", ModelFamily.SAM2, sam21_base_plus_config, "SAM 2.1 Hiera-B+, 81 M"),
        KnownModel("facebook/sam2.1-hiera-large", ModelFamily.SAM2, sam21_large_config, "SAM 2.1 Hiera-L, 224 M"),
        KnownModel(EDGETAM, ModelFamily.EDGETAM, edgetam_config, "EdgeTAM, RepViT-M1 + 2D spatial perceiver, 14 M"),
        KnownModel("facebook/sam-vit-base", ModelFamily.SAM, sam_vit_base_config, "SAM 1 ViT-B, 94 M, images only"),
    )
}


def family_of(config: PreTrainedConfig) -> ModelFamily | None:
    """The family a loaded ``config.json`` belongs to, or None if the engine cannot run it."""
    model_type = getattr(config, "model_type", "")
    if model_type in ("sam2", "sam2_video"):
        return ModelFamily.SAM2
    if model_type in ("edgetam", "edgetam_video"):
        return ModelFamily.EDGETAM
    if model_type == "sam":
        return ModelFamily.SAM
    return None


def input_size(config: PreTrainedConfig) -> int:
    """The square side, in pixels, that frames are resized to before the image encoder."""
    if isinstance(config, SamConfig):
        return int(config.vision_config.image_size)
    prompt = config.prompt_encoder_config
    return int(prompt.image_size if not isinstance(prompt, dict) else prompt["image_size"])
