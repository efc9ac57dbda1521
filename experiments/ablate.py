"""`headcast ablate`: a benchmark's accuracy with chosen attention heads removed, next to random heads.

Heads are removed at their output, before the output projection mixes them (`extract.ablation`),
through the same attention function as recording: zeroed, or replaced by their mean output over a
probe set. Scoring is the evaluator's own greedy exact match, so an unablated run reproduces
`headcast evaluate`. Random controls are head sets of the same size drawn from the same layers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from experiments.evaluate import load_suite, suite_accuracy
from extract.errors import HeadcastError
from extract.probes import Probe, read_probes
from headcast.arguments import positive_int

Head = tuple[int, int]


def ablated_accuracy(
    checkpoint,
    suite: dict[str, Sequence[Probe]],
    heads: Sequence[Head] = (),
    mode: str = "zero",
    means: dict | None = None,
    batch_size: int = 64,
    max_new_tokens: int = 4,
) -> dict[str, float]:
    """Benchmark -> accuracy (percent) with `heads` removed for all of generation (prefill and decoding).

    Scored exactly as `evaluate_checkpoint` scores, by the same function.
    """
    from extract.ablation import HeadAblation
    from extract.recording import hook_head_outputs

    removal = (
        hook_head_outputs(checkpoint.model, HeadAblation(list(heads), mode, means))
        if heads
        else nullcontext()
    )
    with removal:
        return suite_accuracy(checkpoint, suite, batch_size, max_new_tokens)


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
    suite: dict[str, Sequence[Probe]],
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
    from extract.ablation import random_heads

    _, n_heads = model_shape(checkpoint)
    controls = [random_heads(heads, n_heads, seed + i) for i in range(n_random)]
    baseline = ablated_accuracy(checkpoint, suite, (), mode, means, batch_size)
    ablated = ablated_accuracy(checkpoint, suite, heads, mode, means, batch_size)
    random = [ablated_accuracy(checkpoint, suite, c, mode, means, batch_size) for c in controls]
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


def run_ablate(args: argparse.Namespace) -> int:
    """The CLI: load once, parse heads against the model's shape, score each benchmark file."""
    from extract.ablation import head_output_means, parse_heads
    from extract.loading import load_checkpoint

    if args.mode == "mean" and args.probes is None:
        raise HeadcastError(
            "--mode mean needs the probe set to average head outputs over; pass --probes P.jsonl"
        )
    if args.random < 0:
        raise HeadcastError(f"--random must be 0 or more, got {args.random}")
    suite = load_suite(args.benchmark)
    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    heads = parse_heads(args.heads, *model_shape(checkpoint))
    if not heads:
        raise HeadcastError("--heads lists no head; pass e.g. --heads 0:1,2:3")
    means = (
        head_output_means(checkpoint, read_probes(args.probes), args.batch_size)
        if args.mode == "mean"
        else None
    )
    results = ablate_suite(
        checkpoint, suite, heads, args.mode, means, args.random, args.seed, args.batch_size
    )
    if args.json:
        out = [r.as_json() for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out))
        return 0
    for r in results:
        line = f"{r.benchmark} (n={r.n}, {r.mode} ablation of {len(r.heads)} head(s)): "
        line += f"accuracy {r.baseline:.1f}% -> {r.ablated:.1f}% ({r.ablated - r.baseline:+.1f})"
        if r.random:
            line += f"; {len(r.random)} random same-layer set(s): {r.random_mean:.1f} ± {r.random_std:.1f}%"
        print(line)
    return 0


def add_ablate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast ablate CKPT_DIR --benchmark B.jsonl --heads L:H,... [--mode] [--random N --seed S]`."""
    parser = subparsers.add_parser(
        "ablate",
        help="score a benchmark with attention heads removed (vs random heads of the same layers)",
        description="Remove attention heads at their output (before the output projection) and score a "
        "benchmark with greedy exact match, with and without them, and with random same-layer heads.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CKPT_DIR", help="checkpoint folder (Hugging Face)")
    parser.add_argument(
        "--benchmark", required=True, type=Path, help="benchmark JSONL with answers (or a folder of them)"
    )
    parser.add_argument("--heads", required=True, help="heads to remove, 0-based LAYER:HEAD, comma-separated")
    parser.add_argument(
        "--mode",
        choices=("zero", "mean"),
        default="zero",
        help="zero the head, or its mean output (needs --probes)",
    )
    parser.add_argument(
        "--probes", type=Path, help="probe set (JSONL) whose mean head outputs --mode mean uses"
    )
    parser.add_argument(
        "--random", type=int, default=0, metavar="N", help="N random same-layer head sets to compare"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first random set (then S+1, ...)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="items per forward pass")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object (a list for a folder)")
    parser.set_defaults(func=run_ablate)
    return parser
