"""Load a local LLaVA-family checkpoint folder and its processor; the architecture comes from the config."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from transformers import AutoProcessor, PretrainedConfig, PreTrainedModel, ProcessorMixin
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    MODEL_MAPPING_NAMES,
)

from headcast.arguments import DEVICE_MAPS
from headcast.errors import HeadcastError

# The LLaVA family: image-text-to-text classes whose image tokens are the vision tower's patch tokens,
# laid out either as one tile's grid or as AnyRes tiles packed by the model's own `pack_image_features`
# (`extract.inputs` maps a box onto them). The language model is not listed: any whose class routes
# attention through transformers' registry and runs as SDPA is recorded (see `check_supported`).
IMAGE_LAYOUTS: dict[str, str] = {
    "llava": "grid",
    "vipllava": "grid",
    "llava_next": "anyres",
    "llava_onevision": "anyres",
}
SUPPORTED = f"LLaVA-family models ({', '.join(IMAGE_LAYOUTS)}); see docs/models.md"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DeviceMap = str | dict[str, int | str]


@dataclasses.dataclass
class Checkpoint:
    """A loaded model with what extraction needs to know about it."""

    path: Path
    model: PreTrainedModel
    processor: ProcessorMixin
    arch: str
    text_model: str

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype


def text_model_class(model_type: str) -> type[PreTrainedModel] | None:
    """The class a LLaVA wrapper builds for a `text_config` of this type (via `AutoModel.from_config`)."""
    names = MODEL_MAPPING_NAMES.get(model_type)
    # a few types (funnel) list several classes, of which AutoModel.from_config builds the first
    class_name = names if isinstance(names, str) else names[0] if names else None
    return getattr(transformers, class_name) if class_name else None


def _check_arch(arch: object, where: str | Path) -> str:
    """`arch` (a config's `model_type`) once known to be a LLaVA-family vision-language model."""
    if not isinstance(arch, str) or arch not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise HeadcastError(
            f"{where} is a {arch!r} model, not a supported vision-language model "
            f"(transformers has no image-text-to-text class for it); supported: {SUPPORTED}"
        )
    if arch not in IMAGE_LAYOUTS:
        raise HeadcastError(
            f"{where}: {arch!r} is an image-text model outside the LLaVA family, whose image tokens "
            f"headcast cannot map onto the image; supported: {SUPPORTED}"
        )
    return arch


def check_supported(config: PretrainedConfig, where: str | Path) -> None:
    """Refuse, in one line, a model whose heads headcast cannot record, saying why; decided by capability.

    Recording needs the language model's attention to go through transformers' attention-function
    registry (`_supports_attention_backend`) as SDPA (`_supports_sdpa`: the recorded function is SDPA
    plus the rows), and image-token positions headcast can map onto the image (`IMAGE_LAYOUTS`).
    """
    _check_arch(config.model_type, where)
    text_type = config.text_config.model_type
    text_cls = text_model_class(text_type)
    examples = "e.g. llama, mistral, phi3, qwen2, gemma"
    if text_cls is None:
        raise HeadcastError(
            f"{where}: language model {text_type!r} has no transformers class; headcast records language "
            f"models built into transformers whose attention goes through its registry ({examples})"
        )
    if not getattr(text_cls, "_supports_attention_backend", False):
        raise HeadcastError(
            f"{where}: language model {text_type!r} ({text_cls.__name__}) does not route its attention "
            "through transformers' attention-function registry, so its heads cannot be recorded; "
            f"use a language model that does ({examples})"
        )
    if not getattr(text_cls, "_supports_sdpa", False):
        raise HeadcastError(
            f"{where}: language model {text_type!r} ({text_cls.__name__}) has attention that cannot run "
            "as SDPA (e.g. logit softcapping), as headcast's recording attention does; "
            f"use one that can ({examples})"
        )
    vision = config.vision_config
    grid = (getattr(vision, "image_size", None), getattr(vision, "patch_size", None))
    if not all(isinstance(n, int) for n in grid):
        raise HeadcastError(
            f"{where}: vision tower {vision.model_type!r} has no fixed image_size/patch_size grid to place "
            "the region on; use a ViT-style tower such as CLIP or SigLIP"
        )


def read_config(path: str | Path) -> dict:
    """The checkpoint's config.json, after checking that headcast supports its architecture."""
    path = Path(path)
    if not os.path.isdir(path):  # not Path.is_dir: Python 3.11's raises on a name too long to exist
        raise HeadcastError(
            f"checkpoint folder {path} does not exist; pass the folder a model was saved to (save_pretrained)"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise HeadcastError(f"{path} has no config.json; pass a Hugging Face checkpoint folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HeadcastError(
            f"{config_file} is not UTF-8 text, so not a config.json; re-save the checkpoint"
        ) from None
    except json.JSONDecodeError as err:
        raise HeadcastError(f"{config_file} is not valid JSON ({err.msg})") from None
    except RecursionError:
        raise HeadcastError(f"{config_file} is nested too deeply to be a config.json") from None
    if not isinstance(config, dict):
        raise HeadcastError(
            f"{config_file} holds a JSON {type(config).__name__}, not a config object; re-save the checkpoint"
        )
    arch = _check_arch(config.get("model_type"), path)
    if isinstance(config.get("text_config"), dict):  # zero heads would fail inside parsing, as a modulo
        _check_sizes(config["text_config"], path)
    try:  # the parsed config fills in the defaults (e.g. an absent text_config)
        parsed = CONFIG_MAPPING[arch].from_dict(config)
    except Exception as err:  # transformers' config classes raise whatever their fields hit
        # a field validation error's last line says what was wrong: "Field 'x' expected int, got str ..."
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = lines[-1].removeprefix("TypeError: ").removeprefix("ValueError: ")
        reason = reason.split(" in (<class")[0][:200]  # "doesn't match any type", not the list of them
        raise HeadcastError(
            f"{config_file} is not a valid {arch!r} config ({reason}); "
            "fix the field or re-save the checkpoint"
        ) from None
    check_shape(parsed, path)
    check_supported(parsed, path)
    return config


SIZE_FIELDS = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size")


def check_shape(config: PretrainedConfig, where: str | Path) -> None:
    """Refuse sizes no model can have (zero heads, a head count that does not divide the width)."""
    text = config.text_config
    _check_sizes({name: getattr(text, name, None) for name in SIZE_FIELDS}, where)


def _check_sizes(text_config: dict, where: str | Path) -> None:
    """The size fields of a text config (raw or parsed): absent, or positive integers that fit together."""
    sizes = {name: text_config.get(name) for name in SIZE_FIELDS}
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise HeadcastError(f"{where}: text_config.{name} is {value!r}; it must be a positive integer")
    heads, kv_heads = sizes["num_attention_heads"], sizes["num_key_value_heads"]
    if heads and kv_heads and heads % kv_heads:
        raise HeadcastError(
            f"{where}: {heads} attention heads cannot share {kv_heads} key-value heads; "
            "num_attention_heads must be a multiple of num_key_value_heads"
        )


def weight_files(path: Path) -> list[Path]:
    """The checkpoint's safetensors files, each checked to be readable (no pickle files, ever)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise HeadcastError(
            f"{path} has no .safetensors weights; headcast loads safetensors only "
            "(re-save the model with save_pretrained(safe_serialization=True))"
        )
    for file in files:
        try:
            with safe_open(file, framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            raise HeadcastError(
                f"{file} is not a readable safetensors file ({err}); re-save the checkpoint"
            ) from None
    return files


def resolve_device(device: str) -> torch.device:
    """The device `--device` names, if this machine has it (the name itself is checked while parsing)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choices = "use auto, cpu, cuda, cuda:N or mps"
    try:
        target = torch.device(device)
    except RuntimeError:
        raise HeadcastError(f"--device {device!r} is not a device; {choices}") from None
    if target.type not in ("cpu", "cuda", "mps"):
        raise HeadcastError(f"--device {device} is not supported; {choices}")
    if target.type == "cuda" and not torch.cuda.is_available():
        raise HeadcastError(
            f"--device {device} was asked for but no CUDA device is visible; use --device cpu"
        )
    if target.type == "cuda" and (target.index or 0) >= torch.cuda.device_count():
        raise HeadcastError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
        )
    if target.type == "mps" and not torch.backends.mps.is_available():
        raise HeadcastError("--device mps was asked for but Metal (MPS) is not available; use --device cpu")
    return target


def resolve_dtype(dtype: str, device: torch.device, config: dict) -> torch.dtype:
    """`auto`: float32 on CPU; on GPU the checkpoint's own half type (bfloat16 if it names none)."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise HeadcastError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if device.type == "cpu":
        return torch.float32
    saved = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return torch.float16 if saved == "float16" else torch.bfloat16


def load_checkpoint(
    path: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    device_map: DeviceMap | None = None,
    offload_folder: str | Path | None = None,
) -> Checkpoint:
    """Load model and processor from a local folder: safetensors only, no downloads, SDPA attention.

    `device_map` (one of `DEVICE_MAPS`, or accelerate's module -> device mapping, "disk" included with
    `offload_folder`) spreads a model too big for one device over the node's devices instead of `device`.
    """
    path = Path(path)
    config = read_config(path)
    weight_files(path)
    if isinstance(device_map, str) and device_map not in DEVICE_MAPS:
        raise HeadcastError(f"unknown device map {device_map!r}; use {', '.join(DEVICE_MAPS)}")
    target = resolve_device(device)
    placement: dict = {}
    if device_map is not None:
        placement = {"device_map": device_map, "offload_folder": offload_folder}
    cls = getattr(transformers, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[config["model_type"]])
    try:
        model, loading = cls.from_pretrained(
            path,
            **placement,
            dtype=resolve_dtype(dtype, target, config),
            attn_implementation="sdpa",
            use_safetensors=True,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=True,  # reported below by name, rather than as a bare RuntimeError
            output_loading_info=True,
        )
        processor = AutoProcessor.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
    except ImportError as err:  # e.g. LlavaOnevisionProcessor's video processor needs torchvision
        first_sentence = " ".join(str(err).split()).split(". ")[0] or type(err).__name__
        raise HeadcastError(
            f"{path}: could not load the checkpoint ({first_sentence}); install it where headcast runs"
        ) from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HeadcastError(f"{path}: could not load the checkpoint ({first_line})") from None
    check_weights_cover(path, model.config, loading)
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise HeadcastError(
            f"{path}: no image processor and tokenizer found; save the processor with the model"
        )
    processor.tokenizer.padding_side = "left"
    return Checkpoint(
        path=path,
        model=(model if device_map is not None else model.to(target)).eval(),
        processor=processor,
        arch=config["model_type"],
        text_model=model.config.text_config.model_type,
    )


def check_weights_cover(path: Path, config: PretrainedConfig, loading: dict) -> None:
    """Refuse weights that leave part of the architecture randomly initialised, naming a missing weight.

    transformers would fill such parameters with random values and carry on, so a checkpoint whose
    `model_type` names another architecture than its weights would yield features of noise. Tied
    weights (an `lm_head` shared with the embeddings) are not reported missing by transformers.
    Unused extra tensors are allowed; missing or wrongly shaped ones are not.
    """
    arch = f"{config.model_type!r} model with a {config.text_config.model_type!r} language model"
    missing = sorted(loading.get("missing_keys") or ())
    if missing:
        raise HeadcastError(
            f"{path}: the weights do not cover the {arch} that config.json describes: {len(missing)} "
            f"weight(s) missing, e.g. {missing[0]!r}; check that the model_type entries match the weights"
        )
    mismatched = sorted(loading.get("mismatched_keys") or ())
    if mismatched:
        name, saved, expected = mismatched[0]
        raise HeadcastError(
            f"{path}: weight {name!r} has shape {list(saved)} but the {arch} of config.json needs "
            f"{list(expected)} ({len(mismatched)} weight(s) of the wrong shape); check that config.json "
            "matches the weights"
        )
