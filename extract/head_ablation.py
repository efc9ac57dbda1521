"""Remove attention heads properly: at their output, before the output projection mixes them.

The paper's code instead zeroed pre-softmax scores after the causal mask, which makes a head
attend uniformly to every position, future tokens included. Here a removed head contributes
nothing (`zero`) or its average output over a probe set (`mean`), through the same
`headcast` attention function as recording: no forward is rewritten.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence

import torch

from headcast.errors import HeadcastError
from headcast.extract.inputs import encode_batch
from headcast.extract.loading import Checkpoint
from headcast.extract.probes import Probe
from headcast.extract.recording import hook_head_outputs
from headcast.extract.runner import model_inputs

Head = tuple[int, int]  # (layer, head), 0-based


def parse_heads(text: str, n_layers: int, n_heads: int) -> list[Head]:
    """`"L:H,L:H"` -> [(L, H), ...], checked against the model's shape."""
    heads = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            layer, head = (int(v) for v in part.split(":"))
        except ValueError:
            raise HeadcastError(f"head {part!r} is not LAYER:HEAD (e.g. 3:7)") from None
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise HeadcastError(
                f"head {part} is outside the model's {n_layers} layers x {n_heads} heads (0-based)"
            )
        heads.append((layer, head))
    return heads


def random_heads(like: Sequence[Head], n_heads: int, seed: int, exclude: Iterable[Head] = ()) -> list[Head]:
    """As many random heads as `like`, from the same layers (same count per layer), avoiding `exclude`."""
    rng = random.Random(seed)
    taken = set(exclude) | set(like)
    chosen: list[Head] = []
    for layer in sorted({layer for layer, _ in like}):
        count = sum(1 for lay, _ in like if lay == layer)
        pool = [(layer, h) for h in range(n_heads) if (layer, h) not in taken]
        if len(pool) < count:
            pool = [(layer, h) for h in range(n_heads) if (layer, h) not in set(chosen)]
        chosen += rng.sample(pool, min(count, len(pool)))
    return chosen


@dataclasses.dataclass
class HeadAblation:
    """A head-output hook that removes `heads`: zeros, or their mean outputs (`means[layer]`: [H, D])."""

    heads: Sequence[Head]
    mode: str = "zero"  # or "mean"; checked here, as callers pass the user's word
    means: dict[int, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("zero", "mean"):
            raise HeadcastError(f"unknown ablation mode {self.mode!r}; use zero or mean")
        if self.mode == "mean" and self.means is None:
            raise HeadcastError("mean ablation needs head-output means (see head_output_means)")
        self.by_layer: dict[int, list[int]] = {}
        for layer, head in self.heads:
            self.by_layer.setdefault(layer, []).append(head)

    def __call__(self, layer: int, output: torch.Tensor) -> torch.Tensor:
        heads = self.by_layer.get(layer)
        if not heads:
            return output
        output = output.clone()
        if self.mode == "mean" and self.means is not None:  # __post_init__ saw that "mean" has means
            output[:, :, heads] = self.means[layer][heads].to(output)
        else:
            output[:, :, heads] = 0
        return output


@dataclasses.dataclass
class HeadOutputMeans:
    """A head-output hook that averages each head's output over the real (unpadded) tokens it sees."""

    token_mask: torch.Tensor | None = None  # [B, T] of the batch being run; set by the caller
    sums: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    counts: dict[int, float] = dataclasses.field(default_factory=dict)

    def __call__(self, layer: int, output: torch.Tensor) -> torch.Tensor:
        if self.token_mask is None:
            raise HeadcastError("HeadOutputMeans needs the batch's token_mask set before the model runs")
        mask = self.token_mask[:, -output.shape[1] :].to(output.dtype)  # [B, T]
        total = torch.einsum("bt,bthd->hd", mask, output.float())
        self.sums[layer] = self.sums.get(layer, 0) + total
        self.counts[layer] = self.counts.get(layer, 0) + float(mask.sum())
        return output

    def means(self) -> dict[int, torch.Tensor]:
        return {layer: total / self.counts[layer] for layer, total in self.sums.items()}


@torch.inference_mode()
def head_output_means(
    checkpoint: Checkpoint, probes: Sequence[Probe], batch_size: int = 8
) -> dict[int, torch.Tensor]:
    """Each layer's [H, D] mean head output over every token of the probe set (for `mean` ablation)."""
    collector = HeadOutputMeans()
    with hook_head_outputs(checkpoint.model, collector):
        for start in range(0, len(probes), batch_size):
            batch = encode_batch(checkpoint, list(probes[start : start + batch_size]), "last-prompt")
            inputs = model_inputs(checkpoint, batch)
            collector.token_mask = inputs["attention_mask"]
            checkpoint.model(**inputs, use_cache=False, logits_to_keep=1)
    return collector.means()
