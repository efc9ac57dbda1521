"""Load a local LLaVA-family checkpoint folder and its processor; the architecture comes from the config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoProcessor,
    LlavaForConditionalGeneration,
    LlavaNextForConditionalGeneration,
    PreTrainedModel,
    ProcessorMixin,
    VipLlavaForConditionalGeneration,
)

from extract.errors import HeadcastError

MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "llava": LlavaForConditionalGeneration,
    "llava_next": LlavaNextForConditionalGeneration,
    "vipllava": VipLlavaForConditionalGeneration,
}
TEXT_MODELS = ("llama", "mistral", "phi3")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def read_config(path: str | Path) -> dict:
    """The checkpoint's config.json, after checking that headcast supports its architecture."""
    path = Path(path)
    if not path.is_dir():
        raise HeadcastError(f"checkpoint folder {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise HeadcastError(f"{path} has no config.json; pass a Hugging Face checkpoint folder")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise HeadcastError(f"{config_file} is not valid JSON ({err.msg})") from None
    arch = config.get("model_type")
    if arch not in MODEL_CLASSES:
        raise HeadcastError(
            f"{path} is a {arch!r} model, not a supported vision-language model; "
            f"supported: {', '.join(MODEL_CLASSES)} (with {', '.join(TEXT_MODELS)} language models)"
        )
    text_model = (config.get("text_config") or {}).get("model_type", "llama")
    if text_model not in TEXT_MODELS:
        raise HeadcastError(
            f"{path}: language model {text_model!r} is not supported; supported: {', '.join(TEXT_MODELS)}"
        )
    return config


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
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HeadcastError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
    return torch.device(device)


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
    path: str | Path, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> Checkpoint:
    """Load model and processor from a local folder: safetensors only, no downloads, SDPA attention."""
    path = Path(path)
    config = read_config(path)
    weight_files(path)
    target = resolve_device(device)
    cls = MODEL_CLASSES[config["model_type"]]
    try:
        model = cls.from_pretrained(
            path,
            dtype=resolve_dtype(dtype, target, config),
            attn_implementation="sdpa",
            use_safetensors=True,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
        )
        processor = AutoProcessor.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HeadcastError(f"{path}: could not load the checkpoint ({first_line})") from None
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise HeadcastError(
            f"{path}: no image processor and tokenizer found; save the processor with the model"
        )
    processor.tokenizer.padding_side = "left"
    return Checkpoint(
        path=path,
        model=model.to(target).eval(),
        processor=processor,
        arch=config["model_type"],
        text_model=(config.get("text_config") or {}).get("model_type", "llama"),
    )
