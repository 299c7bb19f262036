"""One factory for every segmentation model the engine runs: :func:`build_model`.

A model is asked for by name or path and always loaded offline:

- ``sam2-compact``: the embedded default configuration (:mod:`engine.segmenter_config`),
  randomly initialised until the project's own training ships a checkpoint (which is then
  loaded by path, usually through the model registry);
- a local directory written by ``save_pretrained`` (ours or anybody's);
- a Hugging Face hub name (``facebook/sam2.1-hiera-tiny``, ``facebook/sam-vit-base``,
  ``yonigozlan/EdgeTAM-hf``, ...), read from the local Hugging Face cache with
  ``local_files_only=True``;
- a known hub name with ``random_weights=True``: the published configuration with random
  weights, for benchmarks on machines that cannot download checkpoints.

What comes back is a :class:`LoadedModel`: the transformers module in eval mode on the chosen
device, with the processor that matches it. Callers never assemble models by hand.

Three families (:class:`engine.segmenter_config.ModelFamily`): SAM 2 and EdgeTAM (same
interface, same processors; EdgeTAM's RepViT encoder comes from ``timm``) for images and video,
SAM 1 for images only.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from transformers import (
    AutoConfig,
    EdgeTamConfig,
    EdgeTamModel,
    EdgeTamVideoModel,
    PreTrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Sam2Config,
    Sam2ImageProcessor,
    Sam2Model,
    Sam2Processor,
    Sam2VideoModel,
    Sam2VideoProcessor,
    Sam2VideoVideoProcessor,
    SamImageProcessor,
    SamModel,
    SamProcessor,
)
from transformers.utils import logging as hf_logging

from engine.errors import (
    ConfigError,
    CorruptCheckpointError,
    IncompatibleModelError,
    ModelNotFoundError,
)
from engine.bundled import bundled_checkpoint
from engine.mask_upsampling import GUIDED, MaskUpsampling, upsampling_named
from engine.segmenter_config import COMPACT, EDGETAM, KNOWN_MODELS, ModelFamily, family_of, input_size
from engine.settings import Settings, load_settings

log = logging.getLogger(__name__)

Task = Literal["image", "video"]
# model_type of an image-only checkpoint -> (its class, the video class needed, that model_type)
IMAGE_ONLY_TYPES = {
    "sam2": ("Sam2Model", "Sam2VideoModel", "sam2_video"),
    "edgetam": ("EdgeTamModel", "EdgeTamVideoModel", "edgetam_video"),
}


PREVIOUS_LOGITS_CLAMP = 32.0  # SAM 2's predictor clamps the logits it feeds back "to avoid rare numerical issues"


class PreviousMaskRefinement:
    """Clicks on a frame that already has a mask are decoded with that mask, as SAM 2 decodes them.

    SAM 2's own predictor (``add_new_points_or_box``) feeds the frame's previous low-resolution
    logits (the tracked mask, or the mask of the clicks before) to the mask decoder together with
    the new clicks, so a click corrects the mask it lands on instead of re-segmenting the object
    from the clicks alone; SAM 2 is trained the same way (``iter_use_prev_mask_pred``).
    transformers' ``_run_single_frame_inference`` takes ``prev_sam_mask_logits`` but its
    ``forward`` never passes them. This mixin passes the logits a session has set aside for the
    object and frame being prompted (``refinement_logits``, keyed by ``(obj_idx, frame_idx)``;
    :class:`engine.video_session.VideoSession` sets them), and changes nothing else.
    """

    def _run_single_frame_inference(self, *args: Any, **kwargs: Any) -> Any:
        # Bound by name, however transformers passes them (its forward uses keywords today).
        call = inspect.signature(super()._run_single_frame_inference).bind(*args, **kwargs)
        given = call.arguments
        pending = getattr(given.get("inference_session"), "refinement_logits", None)
        if pending and given.get("point_inputs") is not None and given.get("prev_sam_mask_logits") is None:
            given["prev_sam_mask_logits"] = pending.get((given.get("obj_idx"), given.get("frame_idx")))
        return super()._run_single_frame_inference(*call.args, **call.kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        """Saved under the transformers class it extends, so the checkpoint names a class transformers has.

        transformers writes the saving object's own class into ``config.json``'s ``architectures``;
        without this a retrained version would name this engine-only class, which anybody's
        ``AutoModel`` and hub tooling do not know.
        """
        result = super().save_pretrained(save_directory, *args, **kwargs)
        self.config.architectures = [transformers_class(type(self)).__name__]
        self.config.save_pretrained(save_directory)
        return result


def transformers_class(cls: type) -> type:
    """The first class in ``cls``'s ancestry that transformers itself defines (``cls`` when it is one)."""
    return next(k for k in cls.__mro__ if k.__module__.split(".")[0] == "transformers")


class RefiningSam2VideoModel(PreviousMaskRefinement, Sam2VideoModel):
    """transformers' ``Sam2VideoModel``, decoding refinement clicks as SAM 2 does; same weights and config."""


class MaskPromptFixedEdgeTamVideoModel(PreviousMaskRefinement, EdgeTamVideoModel):
    """transformers' ``EdgeTamVideoModel`` with mask prompts' object scores shaped as SAM 2's.

    In transformers 5.24, EdgeTAM's ``_use_mask_as_output`` (a mask prompt taken as the
    frame's output) returns object score logits of shape ``(objects, 1)`` where every other
    path, and SAM 2's copy of the method, gives ``(objects, 1, 1)``; ``forward`` then fails in
    ``torch.cat`` on any frame where a mask-prompted object meets a click-prompted or tracked
    one. Same weights and config: checkpoints load into it unchanged. Refinement clicks are
    decoded with the frame's previous mask (:class:`PreviousMaskRefinement`).
    """

    def _use_mask_as_output(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._use_mask_as_output(*args, **kwargs)
        if out.object_score_logits is not None and out.object_score_logits.dim() == 2:
            out.object_score_logits = out.object_score_logits.unsqueeze(-1)
        return out


# The transformers classes of each family with memory: the video model, and the image model and
# config that hold a strict subset of its weights.
VIDEO_CLASSES: dict[ModelFamily, type[PreTrainedModel]] = {
    ModelFamily.SAM2: RefiningSam2VideoModel,
    ModelFamily.EDGETAM: MaskPromptFixedEdgeTamVideoModel,
}
IMAGE_CLASSES: dict[ModelFamily, tuple[type[PreTrainedConfig], type[PreTrainedModel]]] = {
    ModelFamily.SAM2: (Sam2Config, Sam2Model),
    ModelFamily.EDGETAM: (EdgeTamConfig, EdgeTamModel),
}

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
RANDOM_INIT_WARNING = "{name}: random initialisation — masks are meaningless until trained"


@dataclass(frozen=True)
class DeviceChoice:
    """Where inference runs, and in which reduced precision (None: full fp32)."""

    device: torch.device
    autocast_dtype: torch.dtype | None

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The context every model call runs under: bf16 autocast on CUDA, nothing on CPU."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def choose_device(prefer: str | None = None, torch_threads: int | None = None) -> DeviceChoice:
    """CUDA with bf16 autocast where a GPU is present, else CPU in fp32.

    ``torch_threads`` (``settings.torch_threads``) caps torch's CPU threads; it is process-wide,
    which is what a worker running one model wants.
    """
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    wanted = prefer or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU on this machine")
        return DeviceChoice(device, torch.bfloat16)
    return DeviceChoice(device, None)


@dataclass(frozen=True)
class LoadedModel:
    """A transformers SAM model ready for inference, and what it is."""

    name: str  # as asked for: a model name, hub name or path
    family: ModelFamily
    task: Task
    # Sam2VideoModel / EdgeTamVideoModel (video), Sam2Model / EdgeTamModel / SamModel (image); eval mode
    module: PreTrainedModel
    processor: ProcessorMixin
    image_size: int  # side of the square the image encoder sees
    device: DeviceChoice
    origin: str  # where the weights came from, for logs and `dataengine models list`
    pretrained: bool  # False: random weights, masks mean nothing
    # How logits become masks at the frame's resolution (engine.mask_upsampling): what every
    # predictor returns, so what annotators get and what validation scores.
    mask_upsampling: MaskUpsampling = GUIDED

    @property
    def mask_grid(self) -> int:
        """Side of the model's low-resolution mask grid (a quarter of its input's side)."""
        return self.image_size // 4


def build_model(
    name_or_path: str | Path,
    *,
    task: Task = "video",
    random_weights: bool = False,
    device: DeviceChoice | None = None,
    cache_dir: str | Path | None = None,
    settings: Settings | None = None,
    seed: int = 0,
    mask_upsampling: MaskUpsampling | None = None,
) -> LoadedModel:
    """Build the model ``name_or_path`` names for ``task``, offline.

    ``random_weights`` builds a known configuration without any checkpoint (timing only);
    ``seed`` makes random initialisation repeatable, so the image and video forms of
    ``sam2-compact`` share their weights. ``cache_dir`` overrides the Hugging Face hub cache
    (default: ``$HF_HUB_CACHE``, usually ``~/.cache/huggingface/hub``).

    Raises ModelNotFoundError (nothing by that name here), CorruptCheckpointError (files present
    but unreadable or incomplete) and IncompatibleModelError (e.g. SAM 1 asked to track video).
    """
    if task not in ("image", "video"):
        raise IncompatibleModelError(f"task must be 'image' or 'video', got {task!r}")
    if device is None or mask_upsampling is None:
        settings = settings or load_settings()
    if device is None:
        device = choose_device(torch_threads=settings.torch_threads)
    if mask_upsampling is None:
        mask_upsampling = upsampling_named(settings.mask_upsampling)
    name = str(name_or_path)
    with _quiet_transformers():
        bundled = bundled_checkpoint(COMPACT) if name == COMPACT and not random_weights else None
        if bundled is not None:
            # The shipped bootstrap model (engine/weights): the embedded default, trained.
            module, family = _load_checkpoint(bundled, task)
            origin, pretrained = f"bundled bootstrap checkpoint ({bundled})", True
        elif name == COMPACT or random_weights:
            module, family, origin = _random_model(name, task, seed)
            pretrained = False
            log.warning(RANDOM_INIT_WARNING.format(name=name))
        else:
            directory, origin = _resolve_checkpoint(name, cache_dir)
            module, family = _load_checkpoint(directory, task)
            pretrained = True
    module = module.to(device.device).eval()
    size = input_size(module.config)
    return LoadedModel(
        name=name,
        family=family,
        task=task,
        module=module,
        processor=_processor_for(family, task, size),
        image_size=size,
        device=device,
        origin=origin,
        pretrained=pretrained,
        mask_upsampling=mask_upsampling,
    )


def image_model_from(video: LoadedModel) -> LoadedModel:
    """The image model (``Sam2Model``, ``EdgeTamModel``) carrying a loaded video model's weights.

    For phases that click on one frame and then track: both then use one model version.
    """
    if not video.family.sam2_interface or video.task != "video":
        raise IncompatibleModelError(f"{video.name}: image_model_from needs a SAM 2 or EdgeTAM video model")
    with _quiet_transformers():
        image = _image_from_video(video.module, video.family)
    image = image.to(video.device.device).eval()
    return LoadedModel(
        name=video.name,
        family=video.family,
        task="image",
        module=image,
        processor=_processor_for(video.family, "image", video.image_size),
        image_size=video.image_size,
        device=video.device,
        origin=video.origin,
        pretrained=video.pretrained,
        mask_upsampling=video.mask_upsampling,
    )


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache that hub names are looked up in."""
    return Path(cache_dir) if cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)


# --- random initialisation -------------------------------------------------------------


def _random_model(name: str, task: Task, seed: int) -> tuple[PreTrainedModel, ModelFamily, str]:
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise ModelNotFoundError(
            f"no built-in configuration named {name!r}, so it cannot be built with random weights; "
            f"known: {', '.join(sorted(KNOWN_MODELS))}"
        )
    _check_task(name, known.family, task)
    # A private RNG stream: the same seed gives the same weights, and the caller's RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if known.family is ModelFamily.SAM:
            module: PreTrainedModel = SamModel(known.build_config())
        else:
            module = _construct(known.name, VIDEO_CLASSES[known.family], known.build_config())
            if task == "image":
                module = _image_from_video(module, known.family)
    return module, known.family, "random initialisation"


def _construct(name: str, model_class: type[PreTrainedModel], config: PreTrainedConfig) -> PreTrainedModel:
    """``model_class(config)``, saying what to install when EdgeTAM's image encoder needs timm."""
    try:
        return model_class(config)
    except ImportError as exc:  # transformers' requires_backends: timm (RepViT) is not installed
        raise IncompatibleModelError(
            f"{name}: {model_class.__name__} cannot be built here ({exc}); EdgeTAM's RepViT image "
            "encoder comes from the timm package: `pip install timm` (a dependency of dataengine)"
        ) from exc


def _image_from_video(video: PreTrainedModel, family: ModelFamily) -> PreTrainedModel:
    """The family's image model with the image-path weights of its video model (a strict subset)."""
    config_class, model_class = IMAGE_CLASSES[family]
    vc = video.config
    config = config_class(
        vision_config=vc.vision_config.to_dict(),
        prompt_encoder_config=_without_model_type(vc.prompt_encoder_config.to_dict()),
        mask_decoder_config=_without_model_type(vc.mask_decoder_config.to_dict()),
        initializer_range=vc.initializer_range,
    )
    image = model_class(config)
    missing, _ = image.load_state_dict(video.state_dict(), strict=False)
    if missing:
        raise IncompatibleModelError(f"video model lacks image weights {missing[:5]}")
    return image


def _without_model_type(values: dict[str, object]) -> dict[str, object]:
    # The video sub-configs carry their own model_type; the image config classes reject it.
    return {k: v for k, v in values.items() if k != "model_type"}


# --- checkpoints on disk -----------------------------------------------------------------


def _resolve_checkpoint(name: str, cache_dir: str | Path | None) -> tuple[Path, str]:
    """The directory holding ``name``'s files, and a description of where it was found."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path, str(path.resolve())
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"model directory {name!r} does not exist; pass a directory written by save_pretrained "
            "(config.json and model.safetensors), a hub name such as facebook/sam2.1-hiera-tiny, "
            f"or {COMPACT!r}"
        )
    if not is_hub_name(name):
        raise ModelNotFoundError(
            f"{name!r} is neither {COMPACT!r}, a hub name (owner/model, e.g. facebook/sam2.1-hiera-tiny) "
            "nor an existing directory"
        )
    cache = hub_cache_dir(cache_dir)
    try:
        snapshot = snapshot_download(name, cache_dir=str(cache), local_files_only=True)
    except HFValidationError as exc:
        raise ModelNotFoundError(f"{name!r} is not a valid hub name or an existing directory ({exc})") from exc
    except LocalEntryNotFoundError as exc:
        raise ModelNotFoundError(_missing_hub_model_message(name, cache)) from exc
    return Path(snapshot), f"Hugging Face cache {snapshot}"


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or ":" in name


def is_hub_name(name: str) -> bool:
    """``owner/model`` as the Hugging Face hub names models (``facebook/sam2.1-hiera-tiny``).

    Not a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, ``C:/x``), not a folder that exists here
    (``models/ckpt``), no version (``NAME@3`` is a registry reference), no spaces.
    """
    return (
        name.count("/") == 1
        and all(name.split("/"))
        and "@" not in name
        and not any(ch.isspace() for ch in name)
        and not _looks_like_path(name)
        and not Path(name).expanduser().exists()
    )


def _missing_hub_model_message(name: str, cache: Path) -> str:
    folder = "models--" + name.replace("/", "--")
    return (
        f"model {name!r} is not in the local Hugging Face cache ({cache / folder} is missing) and the "
        "engine never downloads. To provide it: on a machine with internet, run "
        f"`hf download {name}` (older clients: `huggingface-cli download {name}`) and copy "
        f"~/.cache/huggingface/hub/{folder} into {cache} (or set HF_HOME / HF_HUB_CACHE to a cache that "
        f"has it); or run `hf download {name} --local-dir DIR`, copy DIR here and pass its path instead "
        "of the name."
    )


def _load_checkpoint(directory: Path, task: Task) -> tuple[PreTrainedModel, ModelFamily]:
    config = _read_config(directory)
    family = family_of(config)
    if family is None:
        raise IncompatibleModelError(
            f"{directory}: model_type {getattr(config, 'model_type', None)!r} is not a SAM, SAM 2 "
            "or EdgeTAM model"
        )
    _check_task(str(directory), family, task)
    if task == "video" and config.model_type in IMAGE_ONLY_TYPES:
        image_class, video_class, video_type = IMAGE_ONLY_TYPES[config.model_type]
        raise IncompatibleModelError(
            f"{directory}: an image-only checkpoint ({image_class}, no memory weights); "
            f"video tracking needs a {video_class} checkpoint (model_type {video_type})"
        )
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise CorruptCheckpointError(
            f"{directory}: no weights file (expected one of {', '.join(WEIGHT_FILES)}); "
            "the download or copy is incomplete"
        )
    if family is ModelFamily.SAM:
        model_class: type[PreTrainedModel] = SamModel
    else:
        model_class = VIDEO_CLASSES[family] if task == "video" else IMAGE_CLASSES[family][1]
    try:
        module, info = model_class.from_pretrained(directory, local_files_only=True, output_loading_info=True)
    except ImportError as exc:  # a backend the model's config needs (timm for EdgeTAM) is missing
        raise IncompatibleModelError(
            f"{directory}: {model_class.__name__} cannot be built here ({exc}); "
            "EdgeTAM's RepViT image encoder comes from the timm package: `pip install timm`"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and json each raise their own types
        raise CorruptCheckpointError(
            f"{directory}: the weights cannot be read ({type(exc).__name__}: {exc}); "
            "the file is damaged or truncated: copy or download it again"
        ) from exc
    _check_loading_info(directory, info)
    return module, family


def _read_config(directory: Path) -> PreTrainedConfig:
    if not (directory / "config.json").is_file():
        raise CorruptCheckpointError(f"{directory}: no config.json; not a save_pretrained checkpoint directory")
    try:
        return AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - json, strict-dataclass and value errors alike
        raise CorruptCheckpointError(
            f"{directory}/config.json cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def _check_loading_info(directory: Path, info: dict[str, object]) -> None:
    """Refuse checkpoints that transformers would silently complete with random weights."""
    missing = sorted(info.get("missing_keys") or ())  # type: ignore[call-overload]
    mismatched = list(info.get("mismatched_keys") or ())  # type: ignore[call-overload]
    if mismatched:
        raise CorruptCheckpointError(f"{directory}: weights of the wrong shape for its config.json: {mismatched[:3]}")
    if missing:
        raise CorruptCheckpointError(f"{directory}: {len(missing)} weights missing from the checkpoint, e.g. {missing[:3]}")


def _check_task(name: str, family: ModelFamily, task: Task) -> None:
    if family is ModelFamily.SAM and task == "video":
        raise IncompatibleModelError(
            f"{name} is a SAM 1 image model; video sessions need a SAM 2 or EdgeTAM model "
            f"(e.g. {COMPACT}, facebook/sam2.1-hiera-tiny or {EDGETAM})"
        )


# --- processors ----------------------------------------------------------------------------


def _processor_for(family: ModelFamily, task: Task, size: int) -> ProcessorMixin:
    """The transformers processor for the model, built from its input size.

    Built rather than loaded so a checkpoint needs only config.json and weights (our own
    checkpoints carry no processor files); the normalisation is SAM's ImageNet mean and std,
    as in every published checkpoint; EdgeTAM's too (its published ``processor_config.json``
    names ``Sam2VideoProcessor``). For compact models every size must be set to the input
    size: the processors default to 1024.
    """
    if family is ModelFamily.SAM:
        return SamProcessor(SamImageProcessor(size={"longest_edge": size}, pad_size={"height": size, "width": size}))
    image_processor = Sam2ImageProcessor(
        size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
    )
    if task == "image":
        return Sam2Processor(image_processor, target_size=size)
    return Sam2VideoProcessor(
        image_processor, Sam2VideoVideoProcessor(size={"height": size, "width": size}), target_size=size
    )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and its "sam2_video into sam2" notice while loading.

    Loading a video checkpoint into the image model is expected here (it holds a superset of
    the weights); the notice would only alarm users.
    """
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
