"""Build LLaVA-family models from configs, with transformers' own classes, at any (small) size.

No weights are downloaded: models start random and tokenizers are word-level, built from a
vocabulary. `PAPER_SHAPES` mirrors the nine models of the paper (classes, attention types,
relative layer x head proportions) at a size a 2-core CPU handles in milliseconds;
`FAMILY_SHAPES` adds public LLaVA-family models of other classes, language models and vision
towers (`TINY_SHAPES` is both). Every model is saved with `save_pretrained`, so headcast loads
it like any real checkpoint folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    GemmaConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaProcessor,
    MistralConfig,
    Phi3Config,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2Config,
    SiglipImageProcessor,
    SiglipVisionConfig,
    VipLlavaConfig,
    VipLlavaForConditionalGeneration,
)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
SIGLIP_MEAN = SIGLIP_STD = [0.5, 0.5, 0.5]

# Vicuna-style single-turn template; the generation prompt ends with "ASSISTANT :".
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER : "
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image> {% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %} {% else %}ASSISTANT : "
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %} {{ eos_token }} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT :{% endif %}"
)
TEMPLATE_WORDS = ["USER", "ASSISTANT", ":"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that decides a model's shape; two equal specs build identically shaped models."""

    arch: str  # llava | llava_next | vipllava | llava_onevision
    family: str  # llama | mistral | phi3 | qwen2 | gemma
    layers: int
    heads: int
    kv_heads: int
    head_dim: int = 8
    vision_layers: int = 2
    vision_hidden: int = 32
    image_size: int = 28
    patch_size: int = 7
    anyres_grid: int = 2  # LlavaNext, LlavaOnevision: the largest tiling is grid x grid tiles
    vision: str = "clip"  # clip (a class token, which "default" feature selection drops) | siglip (none)
    tie_embeddings: bool = False  # lm_head shares the embedding matrix (saved once)

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim


PAPER_SHAPES: dict[str, ModelSpec] = {
    "llava-1.5-7b": ModelSpec("llava", "llama", layers=4, heads=4, kv_heads=4),
    "llava-1.5-13b": ModelSpec("llava", "llama", layers=5, heads=5, kv_heads=5),
    "llava-1.6-vicuna-7b": ModelSpec("llava_next", "llama", layers=4, heads=4, kv_heads=4),
    "llava-1.6-vicuna-13b": ModelSpec("llava_next", "llama", layers=5, heads=5, kv_heads=5),
    "llava-1.6-mistral-7b": ModelSpec("llava_next", "mistral", layers=4, heads=4, kv_heads=2),
    "vip-llava-7b": ModelSpec("vipllava", "llama", layers=4, heads=4, kv_heads=4),
    "vip-llava-13b": ModelSpec("vipllava", "llama", layers=5, heads=5, kv_heads=5),
    "llava-1.5-llama3-8b": ModelSpec("llava", "llama", layers=4, heads=4, kv_heads=2),
    "llava-1.5-phi3-mini": ModelSpec("llava", "phi3", layers=4, heads=4, kv_heads=4),
}
FAMILY_SHAPES: dict[str, ModelSpec] = {
    "llava-onevision-qwen2-0.5b": ModelSpec(
        "llava_onevision", "qwen2", layers=4, heads=4, kv_heads=2, vision="siglip", tie_embeddings=True
    ),
    "llava-interleave-qwen-0.5b": ModelSpec(
        "llava", "qwen2", layers=3, heads=4, kv_heads=1, vision="siglip", tie_embeddings=True
    ),
    "llava-gemma-2b": ModelSpec("llava", "gemma", layers=3, heads=4, kv_heads=1, tie_embeddings=True),
}
TINY_SHAPES: dict[str, ModelSpec] = PAPER_SHAPES | FAMILY_SHAPES


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words` (plus the chat template's words and digits)."""
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *TEMPLATE_WORDS, *"0123456789?.,", *words]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(True)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tokenizer


def _text_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, max_positions: int):
    common = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=spec.tie_embeddings,
    )
    if spec.family == "llama":
        return LlamaConfig(head_dim=spec.head_dim, **common)
    if spec.family == "mistral":
        return MistralConfig(head_dim=spec.head_dim, sliding_window=None, **common)
    if spec.family == "phi3":
        return Phi3Config(**common)
    if spec.family == "qwen2":
        return Qwen2Config(**common)
    if spec.family == "gemma":
        return GemmaConfig(head_dim=spec.head_dim, **common)
    raise ValueError(
        f"unknown language-model family {spec.family!r}; use llama, mistral, phi3, qwen2 or gemma"
    )


def _vision_config(spec: ModelSpec) -> CLIPVisionConfig | SiglipVisionConfig:
    common: dict[str, Any] = dict(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 2,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=max(1, spec.vision_hidden // 16),
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )
    if spec.vision == "clip":
        return CLIPVisionConfig(projection_dim=spec.vision_hidden, **common)
    if spec.vision == "siglip":
        return SiglipVisionConfig(vision_use_head=False, **common)  # LLaVA uses patch tokens, no pooling
    raise ValueError(f"unknown vision tower {spec.vision!r}; use clip or siglip")


def _feature_select(spec: ModelSpec) -> Literal["default", "full"]:
    """What the real checkpoints use: drop CLIP's class token ("default"); keep all SigLIP tokens ("full")."""
    return "default" if spec.vision == "clip" else "full"


def anyres_pinpoints(spec: ModelSpec) -> list[list[int]]:
    """AnyRes resolutions: every h x w tiling up to anyres_grid tiles a side."""
    s, g = spec.image_size, spec.anyres_grid
    return [[s * h, s * w] for h in range(1, g + 1) for w in range(1, g + 1) if h * w > 1]


def build_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised model of `spec`, in eval mode, SDPA attention."""
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    max_positions = 4 * (spec.image_size // spec.patch_size) ** 2 * (spec.anyres_grid**2 + 2) + 512
    text = _text_config(spec, tokenizer, max_positions)
    vision = _vision_config(spec)
    select = _feature_select(spec)
    config: PreTrainedConfig
    cls: type[PreTrainedModel]
    if spec.arch == "llava":
        config = LlavaConfig(vision_config=vision, text_config=text, vision_feature_select_strategy=select)
        cls = LlavaForConditionalGeneration
    elif spec.arch == "llava_next":
        config = LlavaNextConfig(
            vision_config=vision,
            text_config=text,
            image_grid_pinpoints=anyres_pinpoints(spec),
            vision_feature_select_strategy=select,
        )
        cls = LlavaNextForConditionalGeneration
    elif spec.arch == "llava_onevision":
        config = LlavaOnevisionConfig(
            vision_config=vision,
            text_config=text,
            image_grid_pinpoints=anyres_pinpoints(spec),
            vision_feature_select_strategy=select,
        )
        cls = LlavaOnevisionForConditionalGeneration
    elif spec.arch == "vipllava":
        layers = [-2, -1] if spec.vision_layers >= 2 else [-1]
        config, cls = (
            VipLlavaConfig(vision_config=vision, text_config=text, vision_feature_layer=layers),
            (VipLlavaForConditionalGeneration),
        )
    else:
        raise ValueError(
            f"unknown architecture {spec.arch!r}; use llava, llava_next, vipllava or llava_onevision"
        )
    config.image_token_id = image_token_id
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = cls._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def build_processor(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> ProcessorMixin:
    """The processor real checkpoints of `spec.arch` ship (LlavaOnevision: see below), sized for `spec`."""
    size = spec.image_size
    select, extra_tokens = _feature_select(spec), int(spec.vision == "clip")  # CLIP's class token
    image_kwargs: dict[str, Any]
    if spec.vision == "siglip":  # SigLIP resizes to a square, no crop
        image_kwargs = dict(
            size={"height": size, "width": size}, image_mean=SIGLIP_MEAN, image_std=SIGLIP_STD
        )
    else:
        image_kwargs = dict(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=CLIP_MEAN,
            image_std=CLIP_STD,
        )
    if spec.arch in ("llava_next", "llava_onevision"):
        # LlavaOnevisionProcessor needs a video processor, hence torchvision. Below the 9 tiles' worth of
        # tokens past which OneVision downsamples ("anyres_max_9"; 2x2 tiles at most here), the LlavaNext
        # processor expands images identically.
        cls = LlavaOnevisionImageProcessor if spec.arch == "llava_onevision" else LlavaNextImageProcessor
        return LlavaNextProcessor(
            image_processor=cls(image_grid_pinpoints=anyres_pinpoints(spec), **image_kwargs),
            tokenizer=tokenizer,
            patch_size=spec.patch_size,
            vision_feature_select_strategy=select,
            chat_template=CHAT_TEMPLATE,
            num_additional_image_tokens=extra_tokens,
        )
    image_processor = SiglipImageProcessor(**image_kwargs) if spec.vision == "siglip" else None
    return LlavaProcessor(
        image_processor=image_processor or CLIPImageProcessor(**image_kwargs),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy=select,
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=extra_tokens,
    )


def save_checkpoint(model: PreTrainedModel, processor: ProcessorMixin, out_dir: str | Path) -> Path:
    """Write an ordinary Hugging Face checkpoint folder (config, safetensors, processor, tokenizer)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def save_tiny_checkpoint(
    name: str, out_dir: str | Path, words: Iterable[str] = (), seed: int = 0, **overrides
) -> Path:
    """Save a random tiny model of one of `TINY_SHAPES` (the paper's, then other families) to `out_dir`."""
    spec = dataclasses.replace(TINY_SHAPES[name], **overrides)
    tokenizer = build_tokenizer(words)
    return save_checkpoint(build_model(spec, tokenizer, seed), build_processor(spec, tokenizer), out_dir)
