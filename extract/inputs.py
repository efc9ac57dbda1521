"""Encode probes into model inputs plus the key masks and query positions the recorder needs.

Every position comes from the model's own input expansion: image tokens are where the
processor put `image_token_id`; the region tokens are found by sending a box mask through the
same image processor (and, for AnyRes, the model's own `pack_image_features`), so crops,
tiles, unpadding and newline tokens line up with the real image tokens by construction.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image, ImageDraw
from transformers import BatchFeature

from headcast.errors import HeadcastError
from headcast.extract.loading import IMAGE_LAYOUTS, Checkpoint, check_supported
from headcast.extract.probes import Probe
from headcast.extract.prompts import build_prompt
from headcast.schema import QueryPosition, query_position


@dataclasses.dataclass
class EncodedBatch:
    """Model inputs for a batch of probes and, over the same token positions, what to measure.

    `visual`, `region` and `text` are [batch, tokens] key masks; `query_index` [batch, n] holds
    the positions whose attention rows are recorded, averaged with `query_weight` [batch, n].
    """

    inputs: BatchFeature
    visual: torch.Tensor
    region: torch.Tensor
    text: torch.Tensor
    has_box: torch.Tensor
    query_index: torch.Tensor
    query_weight: torch.Tensor

    def to(self, device: torch.device) -> EncodedBatch:
        return dataclasses.replace(
            self,
            **{
                field.name: getattr(self, field.name).to(device)
                for field in dataclasses.fields(self)
                if field.name != "inputs"
            },
            inputs=self.inputs.to(device),
        )


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, so a probe's result does not depend on its batch."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _span_token_mask(
    checkpoint: Checkpoint, text: str, spans: list[tuple[int, int]], input_ids: torch.Tensor
) -> torch.Tensor:
    """Mark the tokens of `input_ids` (one expanded, unpadded prompt) whose characters lie in `spans`.

    The unexpanded prompt is tokenised with offsets; expanding the image token does not change
    the other tokens, which is checked rather than assumed.
    """
    tokenizer = checkpoint.processor.tokenizer
    image_id = checkpoint.model.config.image_token_id
    encoding = tokenizer(text, return_offsets_mapping=True)
    plain_ids = torch.tensor(encoding["input_ids"])
    in_span = torch.tensor(
        [
            any(lo <= start and end <= hi for lo, hi in spans) and end > start
            for start, end in encoding["offset_mapping"]
        ]
    )
    expanded_text_ids = input_ids[input_ids != image_id]
    if not torch.equal(plain_ids[plain_ids != image_id], expanded_text_ids):
        raise HeadcastError(
            f"{checkpoint.path}: the processor's tokens differ from its tokenizer's, "
            "so the question tokens cannot be located; save a matching processor with the model"
        )
    mask = torch.zeros(len(input_ids), dtype=torch.bool)
    mask[input_ids != image_id] = in_span[plain_ids != image_id]
    return mask


def _box_masks(probes: list[Probe], images: list[Image.Image]) -> list[Image.Image]:
    masks = []
    for probe, image in zip(probes, images, strict=True):
        mask = Image.new("RGB", image.size, (0, 0, 0))
        if probe.box is not None:
            x0, y0, x1, y1 = probe.box
            ImageDraw.Draw(mask).rectangle([x0, y0, x1 - 1, y1 - 1], fill=(255, 255, 255))
        masks.append(mask)
    return masks


def _vision_prefix_tokens(checkpoint: Checkpoint) -> int:
    """Tokens the vision tower puts before its patch tokens (CLIP: a class token; SigLIP: none).

    Read off the tower's own embeddings (`num_positions - num_patches`), not its name.
    """
    tower: torch.nn.Module = checkpoint.model.base_model.vision_tower
    for module in tower.modules():
        patches, positions = getattr(module, "num_patches", None), getattr(module, "num_positions", None)
        if isinstance(patches, int) and isinstance(positions, int):
            return positions - patches
    raise HeadcastError(
        f"{checkpoint.path}: the vision tower {type(tower).__name__} has no position table saying where its "
        "patch tokens start, so the region cannot be placed; use a CLIP- or SigLIP-style tower"
    )


def _pack_anyres(checkpoint: Checkpoint, tiles: torch.Tensor, sizes: torch.Tensor) -> list[torch.Tensor]:
    """Per image, the tiles' 0/1 token vectors packed by the model's own `pack_image_features`.

    The model's code does the tiling, unpadding, downsampling (LLaVA-OneVision) and newline tokens;
    the newline gets 0. Only the options the model's function takes are passed.
    """
    model, config = checkpoint.model.base_model, checkpoint.model.config
    own = sys.modules[type(model).__module__]  # the model's module: its own tile count
    counts = [
        own.image_size_to_num_patches(size, config.image_grid_pinpoints, config.vision_config.image_size)
        for size in sizes
    ]
    options = {
        "vision_feature_select_strategy": config.vision_feature_select_strategy,
        "vision_aspect_ratio": getattr(config, "vision_aspect_ratio", None),
    }
    pack: Callable[..., Any] = model.pack_image_features
    accepted = inspect.signature(pack).parameters
    packed, _ = pack(
        [tiles[i, :n, :, None] for i, n in enumerate(counts)],
        sizes,
        image_newline=torch.zeros(1),
        **{name: value for name, value in options.items() if name in accepted and value is not None},
    )
    return [p[:, 0] for p in packed]


def _region_tokens(
    checkpoint: Checkpoint, probes: list[Probe], images: list[Image.Image]
) -> list[torch.Tensor]:
    """Per probe, a vector over its image tokens: > 0 where the token's patch overlaps the box."""
    image_processor = checkpoint.processor.image_processor
    processed = image_processor(images=_box_masks(probes, images), return_tensors="pt")
    mean = torch.tensor(image_processor.image_mean[0])
    std = torch.tensor(image_processor.image_std[0])
    mask = processed["pixel_values"].float()[..., 0, :, :] * std + mean  # [..., S, S], 1 inside the box
    config = checkpoint.model.config
    vision = config.vision_config
    grid = vision.image_size // vision.patch_size
    patches = mask.unflatten(-2, (grid, vision.patch_size)).unflatten(-1, (grid, vision.patch_size))
    overlap = (patches.amax(dim=(-3, -1)) > 0.5).float().flatten(-2)  # [..., grid*grid]
    # the tower's tokens (any leading class token sees no region), then the model's feature selection:
    # "default" drops the first token (VipLlava, which names no strategy, always does)
    prefix = torch.zeros(*overlap.shape[:-1], _vision_prefix_tokens(checkpoint))
    tokens = torch.cat([prefix, overlap], dim=-1)
    if getattr(config, "vision_feature_select_strategy", "default") == "default":
        tokens = tokens[..., 1:]
    if IMAGE_LAYOUTS[checkpoint.arch] == "anyres":
        return _pack_anyres(checkpoint, tokens, processed["image_sizes"])
    return list(tokens)


def encode_batch(checkpoint: Checkpoint, probes: list[Probe], query: QueryPosition) -> EncodedBatch:
    """Inputs and measurement masks for `probes`; `answer-mean` appends each probe's answer."""
    query_position(query)
    if query == "answer-mean" and any(p.answer is None for p in probes):
        missing = next(p.id for p in probes if p.answer is None)
        raise HeadcastError(f"--query answer-mean needs an answer on every probe; {missing!r} has none")
    check_supported(checkpoint.model.config, checkpoint.path)  # a live model has not been through the loader
    processor = checkpoint.processor
    images = [p.load_image() for p in probes]
    texts, question_spans, answer_spans = [], [], []
    for probe in probes:
        prompt = build_prompt(processor, probe.question)
        start = prompt.rfind(probe.question)
        question_spans.append([(start, start + len(probe.question))])
        if query == "answer-mean" and probe.answer is not None:  # every probe has one, checked above
            answer_spans.append([(len(prompt) + 1, len(prompt) + 1 + len(probe.answer))])
            prompt = f"{prompt} {probe.answer}"
        texts.append(prompt)
    inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
    input_ids, attention = inputs["input_ids"], inputs["attention_mask"].bool()
    visual = input_ids == checkpoint.model.config.image_token_id
    region = torch.zeros_like(visual)
    text = torch.zeros_like(visual)
    answer = torch.zeros_like(visual)
    for i, tokens in enumerate(_region_tokens(checkpoint, probes, images)):
        if int(visual[i].sum()) != len(tokens):
            raise HeadcastError(
                f"{checkpoint.path}: {int(visual[i].sum())} image tokens in the prompt but the vision layout "
                f"gives {len(tokens)}; the processor does not match the model config"
            )
        region[i, visual[i]] = tokens.bool()
        text[i, attention[i]] = _span_token_mask(
            checkpoint, texts[i], question_spans[i], input_ids[i, attention[i]]
        )
        if query == "answer-mean":
            answer[i, attention[i]] = _span_token_mask(
                checkpoint, texts[i], answer_spans[i], input_ids[i, attention[i]]
            )
    if query == "answer-mean":
        if not answer.any(1).all():  # no token to average over: the mean would be NaN, not a number
            probe = probes[int((~answer.any(1)).nonzero()[0, 0])]
            raise HeadcastError(
                f"--query answer-mean: the answer {probe.answer!r} of probe {probe.id!r} covers no token "
                "of the prompt; give it a non-empty answer, or use another --query"
            )
        # the rows that predict the answer: the last prompt token up to the answer's second-to-last token
        predicting = answer.roll(-1, dims=1)
        predicting[:, -1] = False
        width = int(predicting.sum(1).max())
        query_index = torch.zeros(len(probes), width, dtype=torch.long)
        query_weight = torch.zeros(len(probes), width)
        for i in range(len(probes)):
            positions = predicting[i].nonzero()[:, 0]
            query_index[i, : len(positions)] = positions
            query_weight[i, : len(positions)] = 1.0
    else:
        # left padding: the last prompt token is the last position; a generated token comes right after it
        last = input_ids.shape[1] - 1 + (query == "first-generated")
        query_index = torch.full((len(probes), 1), last, dtype=torch.long)
        query_weight = torch.ones(len(probes), 1)
    return EncodedBatch(
        inputs=inputs,
        visual=visual,
        region=region,
        text=text,
        has_box=torch.tensor([p.box is not None for p in probes]),
        query_index=query_index,
        query_weight=query_weight,
    )
