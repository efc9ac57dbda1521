"""Record per-head attention metrics at SDPA speed, through transformers' AttentionInterface.

The registered function `headcast` returns exactly what SDPA returns. While a `Recorder` is
active it also computes softmax(q·Kᵀ) for the few requested query rows and reduces them at
once to per-head scalars: no eager attention, no [B, H, T, T] tensor, no patched forwards.
Only the language model switches to it (the vision tower keeps its own implementation), and
only inside `record(...)`.

Hook points (TransformerLens style), both on the language model's attention only:
- rows: `record(model, recorder)`; `Recorder.metrics[layer]` is the reduced [B, H, M] tensor of
  each layer; with `keep_rows=True`, `Recorder.rows[layer]` holds the raw [B, H, Q, K] rows too
  (for tests and debugging; it costs memory).
- head output: `hook_head_outputs(model, hook)`; `hook(layer, output)` gets each layer's
  [B, T, H, D] attention output before the output projection and returns what replaces it
  (head ablation, head-output means).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from headcast.extract.metrics import reduce_rows

ATTENTION_NAME = "headcast"


@dataclasses.dataclass
class Recorder:
    """What to record (positions and key masks over the whole sequence) and what was recorded."""

    query_index: torch.Tensor  # [B, n] absolute positions of the recorded query rows
    query_weight: torch.Tensor  # [B, n] weights of those rows (0 for padding)
    visual: torch.Tensor  # [B, T] image-token keys
    region: torch.Tensor  # [B, T] image tokens of the marked region
    text: torch.Tensor  # [B, T] question tokens
    keep_rows: bool = False
    metrics: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    rows: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    next_token_logits: torch.Tensor | None = None  # [B, vocab] at the last prompt position, set by the runner

    def stacked(self) -> torch.Tensor:
        """[B, layers, heads, metrics], on the CPU (with a device map, layers sit on several devices)."""
        return torch.stack([self.metrics[layer].cpu() for layer in sorted(self.metrics)], dim=1)

    def _keys(self, mask: torch.Tensor, n_keys: int) -> torch.Tensor:
        """A [B, T] key mask cut or padded (with False: generated tokens) to the layer's key length."""
        if mask.shape[1] >= n_keys:
            return mask[:, :n_keys]
        return torch.nn.functional.pad(mask, (0, n_keys - mask.shape[1]), value=False)

    def observe(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float,
    ) -> None:
        batch, heads, n_queries, dim = query.shape
        kv_heads, n_keys = key.shape[1], key.shape[2]
        # the layer's own device: with a device map, not always the one the inputs (and masks) came on
        query_index, query_weight = self.query_index.to(query.device), self.query_weight.to(query.device)
        visual, region, text = (mask.to(query.device) for mask in (self.visual, self.region, self.text))
        local = query_index - (n_keys - n_queries)  # rows of this call's query block
        if bool((local < 0).any()) or bool((local >= n_queries).any()):
            return  # this forward (e.g. a prefill before the recorded decode step) holds none of our rows
        picked = query.gather(2, local[:, None, :, None].expand(-1, heads, -1, dim))
        # grouped-query attention without repeating keys: query heads of one KV head share a matmul
        grouped = picked.float().reshape(batch, kv_heads, (heads // kv_heads) * local.shape[1], dim)
        scores = (grouped @ key.float().transpose(-1, -2)).reshape(batch, heads, -1, n_keys) * scaling
        if attention_mask is None:  # SDPA skipped the mask: plain causal, no padding
            allowed = torch.arange(n_keys, device=key.device) <= query_index[..., None]
            allowed = allowed[:, None]
        else:
            mask_rows = attention_mask[:, :, :, :n_keys].expand(batch, -1, -1, -1)
            mask_rows = mask_rows.gather(
                2, local[:, None, :, None].expand(-1, mask_rows.shape[1], -1, n_keys)
            )
            allowed = (
                mask_rows if mask_rows.dtype == torch.bool else mask_rows > torch.finfo(mask_rows.dtype).min
            )
        rows = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        keys = (self._keys(mask, n_keys) for mask in (visual, region, text))
        reduced = reduce_rows(rows, *keys)
        weight = query_weight[:, None, :, None]
        self.metrics[layer] = (reduced * weight).sum(2) / weight.sum(2)
        if self.keep_rows:
            self.rows[layer] = rows.cpu()


HeadOutputHook = Callable[[int, torch.Tensor], torch.Tensor]

_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("headcast_recorder", default=None)
_head_output_hook: contextvars.ContextVar[HeadOutputHook | None] = contextvars.ContextVar(
    "headcast_head_output_hook", default=None
)


def recording_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """SDPA attention with two hook points: the rows (recorder) and the per-head output."""
    layer: int = module.layer_idx  # type: ignore[assignment]  # torch types attributes Tensor | Module
    recorder = _recorder.get()
    if recorder is not None:
        recorder.observe(
            layer,
            query,
            key,
            attention_mask,
            scaling if scaling is not None else query.shape[-1] ** -0.5,
        )
    output, weights = sdpa_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, **kwargs
    )
    hook = _head_output_hook.get()
    if hook is not None:  # [batch, tokens, heads, head_dim], before the output projection mixes heads
        output = hook(layer, output)
    return output, weights


def register() -> None:
    """Make `headcast` a valid attention implementation (SDPA's masks, our function); idempotent."""
    AttentionInterface.register(ATTENTION_NAME, recording_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


@contextlib.contextmanager
def _headcast_attention(model: PreTrainedModel, var: contextvars.ContextVar, value) -> Iterator[None]:
    """Switch the language model (only) to `headcast` attention with `var` bound; restore both after."""
    register()
    previous = model.config.text_config._attn_implementation
    model.set_attn_implementation({"text_config": ATTENTION_NAME})
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
        model.set_attn_implementation({"text_config": previous})


@contextlib.contextmanager
def record(model: PreTrainedModel, recorder: Recorder) -> Iterator[Recorder]:
    """Within the block, the language model's attention feeds `recorder`."""
    with _headcast_attention(model, _recorder, recorder):
        yield recorder


@contextlib.contextmanager
def hook_head_outputs(model: PreTrainedModel, hook: HeadOutputHook) -> Iterator[HeadOutputHook]:
    """Within the block, `hook(layer, output)` sees (and may replace) each layer's per-head output."""
    with _headcast_attention(model, _head_output_hook, hook):
        yield hook
