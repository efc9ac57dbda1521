"""Train tiny LLaVA models on synthetic scenes, after LLaVA's recipe, on a CPU in seconds.

Four stages, each one plain AdamW loop (`fit`):
1. vision encoder: a CLIP vision tower learns to name colour, shape and box of every patch, at both
   the low-resolution view and the AnyRes tiles (once per zoo, shared by every run);
2. language model: text only, scene descriptions and questions -> answers (once per LM shape);
3. projector alignment: only the projector (and LlavaNext's newline vector) learns, image -> description;
4. instruction tuning: questions about images -> answers; the vision tower stays frozen or trains too.
Checkpoints along stage 4 are ordinary Hugging Face folders.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

from headcast.experiments.modeling import ModelSpec, build_model, build_processor, build_tokenizer
from headcast.experiments.scenes import COLOURS, DESCRIBE, SHAPES, Item, vocabulary
from headcast.extract import build_prompt

Batch = dict[str, torch.Tensor]
LM_PREFIXES = ("model.language_model.", "lm_head.")
VISION_PREFIX = "model.vision_tower."


def zoo_tokenizer() -> PreTrainedTokenizerFast:
    """The one tokenizer every zoo model shares: the scenes' words, the chat words, digits."""
    return build_tokenizer(vocabulary())


def text_prompt(processor: ProcessorMixin, text: str) -> str:
    """The chat prompt of a text-only user turn (the language model's pretraining input)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def encode(
    processor: ProcessorMixin,
    items: Sequence[Item],
    images: Sequence[Image.Image] | None,
    mode: str,
    chunk: int = 64,
) -> Batch:
    """Tokenise (prompt, target) pairs once; labels are -100 everywhere but the target and </s>.

    mode: `text` (description + question, no image), `caption` (image -> description), `qa`.
    Sequences are left-padded to a common length; `batch_of` trims each batch again.
    """
    tokenizer = processor.tokenizer
    parts: list[Batch] = []
    for start in range(0, len(items), chunk):
        block = items[start : start + chunk]
        if mode == "text":
            prompts = [text_prompt(processor, f"{it.scene.describe()} {it.question}") for it in block]
            targets = [it.answer for it in block]
        elif mode == "caption":
            prompts = [build_prompt(processor, DESCRIBE)] * len(block)
            targets = [it.scene.describe() for it in block]
        else:
            prompts = [build_prompt(processor, it.question) for it in block]
            targets = [it.answer for it in block]
        texts = [f"{p} {t} {tokenizer.eos_token}" for p, t in zip(prompts, targets, strict=True)]
        if mode == "text":
            enc = dict(tokenizer(texts, padding=True, return_tensors="pt"))
        elif images is None:
            raise ValueError(f"mode {mode!r} needs the items' images")
        else:
            enc = dict(
                processor(
                    images=list(images[start : start + chunk]), text=texts, padding=True, return_tensors="pt"
                )
            )
        labels = torch.full_like(enc["input_ids"], -100)
        for row, target in enumerate(targets):
            n = len(tokenizer(f"{target} {tokenizer.eos_token}", add_special_tokens=False).input_ids)
            labels[row, -n:] = enc["input_ids"][row, -n:]
        enc["labels"] = labels
        parts.append(enc)
    width = max(p["input_ids"].shape[1] for p in parts)
    pads = {"input_ids": tokenizer.pad_token_id, "attention_mask": 0, "labels": -100}
    out: Batch = {}
    for key in parts[0]:
        if key in pads:
            out[key] = torch.cat(
                [nn.functional.pad(p[key], (width - p[key].shape[1], 0), value=pads[key]) for p in parts]
            )
        else:
            out[key] = torch.cat([p[key] for p in parts])
    return out


def batch_of(data: Batch, index: torch.Tensor) -> Batch:
    """Rows `index` of an encoded set, with the all-padding columns on the left cut off."""
    batch = {key: value[index] for key, value in data.items()}
    width = int(batch["attention_mask"].sum(1).max())
    for key in ("input_ids", "attention_mask", "labels"):
        batch[key] = batch[key][:, -width:]
    return batch


def fit(
    params: Iterable[nn.Parameter],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int,
    on_step: Callable[[int], None] | None = None,
    desc: str = "train",
    schedule: tuple[int, int] | None = None,
    progress: bool = True,
) -> float:
    """AdamW with warmup and cosine decay over random batches; the batch order is fixed by `seed`.

    `loss_of(indices)` computes the loss of a batch of item indices; `on_step(step)` runs after each
    optimiser step (1-based), e.g. to save a checkpoint. `schedule=(start, total)` makes these steps
    the part from `start` of one learning-rate schedule over `total` steps, so consecutive phases
    share a single warmup and decay. Returns the mean loss of the last 10% of steps.
    """
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    start, total = schedule or (0, steps)
    warmup = max(1, total // 20)
    lr_at = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (start + s + 1) / warmup)
            * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (start + s) / max(1, total)))))
        ),
    )
    generator = torch.Generator().manual_seed(seed)
    tail: list[float] = []
    bar = tqdm(range(1, steps + 1), desc=desc, leave=False, mininterval=1.0, disable=not progress)
    for step in bar:
        index = torch.randint(n_items, (batch_size,), generator=generator)
        loss = loss_of(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        lr_at.step()
        if step > steps * 0.9:
            tail.append(loss.item())
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step)
    return sum(tail) / max(1, len(tail))


def model_loss(model: PreTrainedModel, data: Batch) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda index: model(**batch_of(data, index)).loss


def set_trainable(model: PreTrainedModel, prefixes: Sequence[str]) -> list[nn.Parameter]:
    """Train exactly the parameters whose names start with one of `prefixes`; returns them."""
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(any(name.startswith(p) for p in prefixes))
        if param.requires_grad:
            trainable.append(param)
    return trainable


def state_with_prefixes(model: PreTrainedModel, prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(tuple(prefixes))}


def patch_labels(items: Sequence[Item], crops: int, side: int, grid: int) -> torch.Tensor:
    """[N, crops, side*side, 5] targets (colour, shape, boxed, row, col) of each patch of each crop.

    Crop 0 is the whole image; crops 1.. are AnyRes tiles, g x g of them in reading order. A patch
    gets the label of the scene cell under its centre, and that cell's row and column: the tower must
    keep where a patch lies, or no model could learn the spatial questions.
    """
    tiles = round(math.sqrt(crops - 1)) if crops > 1 else 0
    out = torch.zeros(len(items), crops, side * side, 5, dtype=torch.long)
    for n, item in enumerate(items):
        cells = item.scene.cell_labels()
        for c in range(crops):
            # The crop's extent in units of the full image: [y0, y0 + span) x [x0, x0 + span).
            span = 1.0 if c == 0 else 1.0 / tiles
            y0, x0 = (0.0, 0.0) if c == 0 else (((c - 1) // tiles) * span, ((c - 1) % tiles) * span)
            for p in range(side * side):
                y = y0 + (p // side + 0.5) / side * span
                x = x0 + (p % side + 0.5) / side * span
                row, col = int(y * grid), int(x * grid)
                out[n, c, p] = torch.tensor((*cells[row * grid + col], row, col))
    return out


def pretrain_vision(
    spec: ModelSpec,
    items: Sequence[Item],
    images: Sequence[Image.Image],
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Teach a CLIP vision tower what sits in every patch, at low resolution and on AnyRes tiles.

    Linear probes on the last two layers (LLaVA reads the penultimate one) predict colour, shape, box,
    row and column of the scene cell under each patch. Returns the tower's weights under their LLaVA names.
    """
    tokenizer = zoo_tokenizer()
    anyres = dataclasses.replace(spec, arch="llava_next")
    model = build_model(anyres, tokenizer, seed)
    processor = build_processor(anyres, tokenizer)
    pixels = processor.image_processor(list(images), return_tensors="pt")[
        "pixel_values"
    ]  # [N, crops, 3, s, s]
    side = spec.image_size // spec.patch_size
    grid = items[0].scene.grid
    labels = patch_labels(items, pixels.shape[1], side, grid)
    tower = model.model.vision_tower.train()
    torch.manual_seed(seed)
    sizes = [len(COLOURS) + 1, len(SHAPES) + 1, 2, grid, grid]
    heads = nn.ModuleList(nn.Linear(spec.vision_hidden, sum(sizes)) for _ in range(2))

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        x = pixels[index].flatten(0, 1)
        y = labels[index].flatten(0, 1)  # [B*crops, patches, 5]
        hidden = tower(pixel_values=x, output_hidden_states=True).hidden_states
        loss = torch.zeros(())
        for head, h in zip(heads, hidden[-2:], strict=True):
            logits = head(h[:, 1:]).split(sizes, dim=-1)
            for k, lg in enumerate(logits):
                loss = loss + nn.functional.cross_entropy(lg.flatten(0, 1), y[..., k].flatten())
        return loss

    fit(
        [*tower.parameters(), *heads.parameters()],
        loss_of,
        len(items),
        steps,
        lr,
        seed,
        batch_size,
        desc="vision encoder",
        progress=progress,
    )
    centre_features(tower, pixels[: 4 * batch_size].flatten(0, 1))
    return state_with_prefixes(model, [VISION_PREFIX])


@torch.no_grad()
def centre_features(tower: nn.Module, pixels: torch.Tensor) -> None:
    """Shift the penultimate layer's output (what LLaVA's projector reads) to zero mean over `pixels`.

    Pretrained features carry a large constant part (norm ~16 against ~1.5 of variation between
    patches); LLaVA's projector has no normalisation, so a frozen tower's features would drown what
    tells patches apart. The shift goes into the bias of that layer's last linear map.
    """
    tower.eval()
    hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    # torch types submodule attributes as Tensor | Module
    layers = tower.vision_model.encoder.layers if hasattr(tower, "vision_model") else tower.encoder.layers  # type: ignore[union-attr]
    layers[-2].mlp.fc2.bias -= hidden.mean(dim=(0, 1))  # type: ignore[index, union-attr]


def pretrain_language(
    spec: ModelSpec,
    items: Sequence[Item],
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Pretrain the language model on text alone: a scene's description and a question -> the answer."""
    tokenizer = zoo_tokenizer()
    model = build_model(spec, tokenizer, seed).train()
    data = encode(build_processor(spec, tokenizer), items, None, "text")
    params = set_trainable(model, LM_PREFIXES)
    fit(
        params,
        model_loss(model, data),
        len(items),
        steps,
        lr,
        seed,
        batch_size,
        desc=f"language model {spec.family} {spec.layers}x{spec.heads}",
        progress=progress,
    )
    return state_with_prefixes(model, LM_PREFIXES)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One zoo run: a model shape plus how it is trained."""

    name: str
    spec: ModelSpec
    strategy: str = "frozen"  # frozen: vision tower fixed in instruction tuning; full: it trains too
    data: int = 4096  # distinct instruction-tuning items
    steps: int = 600  # instruction-tuning steps on the full mixture
    curriculum: int = 0  # instruction-tuning steps on the preset's curriculum tasks before the mixture
    align_steps: int = 100
    lr: float = 2e-3
    batch_size: int = 32
    checkpoints: tuple[int, ...] = ()


def train_run(
    run: RunConfig,
    vision_state: dict[str, torch.Tensor],
    lm_state: dict[str, torch.Tensor],
    caption_data: Batch,
    instruct_data: Batch,
    save: Callable[[PreTrainedModel, ProcessorMixin, int], None],
    seed: int,
    curriculum_data: Batch | None = None,
    progress: bool = True,
) -> None:
    """Align the projector, then instruction-tune, calling `save(model, processor, step)` at checkpoints.

    With `run.curriculum` steps, instruction tuning opens on `curriculum_data` (a few tasks) before the
    full mixture; steps count through both phases, so checkpoints can fall in either.
    """
    tokenizer = zoo_tokenizer()
    model = build_model(run.spec, tokenizer, seed).train()
    processor = build_processor(run.spec, tokenizer)
    missing = set(vision_state) | set(lm_state)
    model.load_state_dict({**vision_state, **lm_state}, strict=False)
    assert missing <= set(model.state_dict()), "pretrained weights do not fit the model"
    projector = ["model.multi_modal_projector.", "model.image_newline"]
    params = set_trainable(model, projector)
    n_caption = caption_data["input_ids"].shape[0]
    fit(
        params,
        model_loss(model, caption_data),
        n_caption,
        run.align_steps,
        run.lr,
        seed,
        run.batch_size,
        desc=f"{run.name} align",
        progress=progress,
    )
    prefixes = [*projector, *LM_PREFIXES] + ([VISION_PREFIX] if run.strategy == "full" else [])
    params = set_trainable(model, prefixes)
    wanted = set(run.checkpoints)
    phases = [(instruct_data, run.steps, "instruct", seed + 1)]
    if run.curriculum:
        if curriculum_data is None:
            raise ValueError(
                f"run {run.name!r} asks for {run.curriculum} curriculum steps but got no curriculum data"
            )
        phases.insert(0, (curriculum_data, run.curriculum, "curriculum", seed + 2))
    done = 0
    for pool, steps, name, phase_seed in phases:
        data = {k: v[: run.data] for k, v in pool.items()}

        def on_step(step: int, offset: int = done) -> None:
            if offset + step in wanted:
                model.eval()
                save(model, processor, offset + step)
                model.train()

        fit(
            params,
            model_loss(model, data),
            data["input_ids"].shape[0],
            steps,
            run.lr,
            phase_seed,
            run.batch_size,
            on_step=on_step,
            desc=f"{run.name} {name}",
            progress=progress,
            schedule=(done, run.curriculum + run.steps),
        )
        done += steps


def even_steps(last: int, n: int) -> tuple[int, ...]:
    """Up to `n` distinct steps evenly spaced to `last`, as a trainer saving every `last / n` steps does.

    Evenly spaced checkpoints sample the stretch where abilities emerge as densely as the rest;
    log-spaced ones spend most of a run's checkpoints before anything is learned.
    """
    return tuple(sorted({max(1, round(last * (i + 1) / n)) for i in range(n)}))
