"""`headcast ablate`: a benchmark's accuracy with chosen attention heads removed, next to random heads.

Heads are removed at their output, before the output projection mixes them (`extract.head_ablation`),
through the same attention function as recording: zeroed, or replaced by their mean output over a
probe set. Scoring is the evaluator's own greedy exact match, so an unablated run reproduces
`headcast evaluate`. Random controls are head sets of the same size drawn from the same layers.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

from headcast.extract.evaluate import encode_items, suite_accuracy
from headcast.extract.probes import Probe
from headcast.schema import ANSWER_TOKENS

Head = tuple[int, int]


def accuracy_without_heads(
    checkpoint,
    suite: Mapping[str, Sequence[Probe]],
    heads: Sequence[Head] = (),
    mode: str = "zero",
    means: dict | None = None,
    batch_size: int = 64,
    max_new_tokens: int = ANSWER_TOKENS,
    encoded: dict[str, list] | None = None,
) -> dict[str, float]:
    """Benchmark -> accuracy (percent) with `heads` removed for all of generation (prefill and decoding).

    Scored exactly as `evaluate_checkpoint` scores, by the same function. `encoded`: the suite already
    through the checkpoint's processor (`evaluate.encode_items` per benchmark), shared by many head sets.
    """
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract.head_ablation import HeadAblation
    from headcast.extract.recording import hook_head_outputs

    removal = (
        hook_head_outputs(checkpoint.model, HeadAblation(list(heads), mode, means))
        if heads
        else nullcontext()
    )
    with removal:
        return suite_accuracy(checkpoint, suite, batch_size, max_new_tokens, encoded)


def encoded_suite(checkpoint, suite: Mapping[str, Sequence[Probe]], batch_size: int = 64) -> dict[str, list]:
    """The suite through the checkpoint's processor once, for scoring it under many head sets."""
    return {name: encode_items(checkpoint.processor, probes, batch_size) for name, probes in suite.items()}


def model_shape(checkpoint) -> tuple[int, int]:
    """(layers, heads) of the checkpoint's language model."""
    text = checkpoint.model.config.text_config
    return text.num_hidden_layers, text.num_attention_heads


@dataclasses.dataclass
class AblationResult:
    """Accuracies (percent) without ablation, with `heads` ablated, and with each random head set."""

    benchmark: str
    n: int
    baseline: float
    ablated: float
    random: list[float]
    heads: list[Head]
    mode: str
    random_heads: list[list[Head]] = dataclasses.field(default_factory=list)

    @property
    def random_mean(self) -> float | None:
        return statistics.fmean(self.random) if self.random else None

    @property
    def random_std(self) -> float | None:
        return statistics.stdev(self.random) if len(self.random) > 1 else (0.0 if self.random else None)

    def as_json(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "n": self.n,
            "baseline": round(self.baseline, 2),
            "ablated": round(self.ablated, 2),
            "random": [round(r, 2) for r in self.random],
            "random_mean": None if self.random_mean is None else round(self.random_mean, 2),
            "random_std": None if self.random_std is None else round(self.random_std, 2),
            "heads": [f"{layer}:{head}" for layer, head in self.heads],
            "random_heads": [[f"{layer}:{head}" for layer, head in s] for s in self.random_heads],
            "mode": self.mode,
        }


def ablate_suite(
    checkpoint,
    suite: Mapping[str, Sequence[Probe]],
    heads: Sequence[Head],
    mode: str = "zero",
    means: dict | None = None,
    n_random: int = 0,
    seed: int = 0,
    batch_size: int = 64,
) -> list[AblationResult]:
    """Per benchmark: plain, with `heads` ablated, and with `n_random` random same-layer head sets.

    Random set i uses seed `seed + i`.
    """
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract.head_ablation import random_heads

    _, n_heads = model_shape(checkpoint)
    controls = [random_heads(heads, n_heads, seed + i) for i in range(n_random)]
    encoded = encoded_suite(checkpoint, suite, batch_size)

    def accuracy(head_set: Sequence[Head]) -> dict[str, float]:
        return accuracy_without_heads(checkpoint, suite, head_set, mode, means, batch_size, encoded=encoded)

    baseline, ablated = accuracy(()), accuracy(heads)
    random = [accuracy(c) for c in controls]
    return [
        AblationResult(
            benchmark=name,
            n=len(items),
            baseline=baseline[name],
            ablated=ablated[name],
            random=[r[name] for r in random],
            heads=list(heads),
            mode=mode,
            random_heads=controls,
        )
        for name, items in suite.items()
    ]
