"""Score checkpoints on a benchmark suite: greedy decoding, exact match of the first word or number.

A suite is a folder of JSONL files (one benchmark each, items with answers). Checkpoints load through
`extract.load_checkpoint` and prompts through `extract.build_prompt`, so a zoo checkpoint and a real
LLaVA checkpoint take exactly the same path. The result is a long table
`checkpoint, benchmark, score, n` with scores in percent.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from extract import HeadcastError, Probe, build_prompt, read_probes

SCORE_COLUMNS = ("checkpoint", "benchmark", "score", "n")
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
}


def first_word(text: str) -> str:
    """The first word of `text`, lower-cased, without punctuation ('Yes.' -> 'yes')."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return words[0] if words else ""


def first_number(text: str) -> str:
    """The first number in `text`, written in digits ('There are two.' -> '2'); '' if none."""
    for word in re.findall(r"[a-z]+|\d+", text.lower()):
        if word.isdigit():
            return str(int(word))
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    return ""


def is_correct(generated: str, answer: str) -> bool:
    """Exact match: numbers against the first number generated, anything else against the first word."""
    gold = answer.strip().lower()
    if gold.isdigit():
        return first_number(generated) == str(int(gold))
    return first_word(generated) == first_word(gold)


def generate_answers(
    checkpoint, probes: Sequence[Probe], batch_size: int = 64, max_new_tokens: int = 4
) -> list[str]:
    """Greedy answers of a loaded checkpoint (`extract.Checkpoint`) to `probes`, decoded to text."""
    import torch

    model, processor = checkpoint.model, checkpoint.processor
    answers: list[str] = []
    for start in range(0, len(probes), batch_size):
        block = probes[start : start + batch_size]
        inputs = processor(
            images=[p.load_image() for p in block],
            text=[build_prompt(processor, p.question) for p in block],
            padding=True,
            return_tensors="pt",
        ).to(checkpoint.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(checkpoint.dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        new = out[:, inputs["input_ids"].shape[1] :]
        answers += processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return answers


def suite_files(benchmarks: str | Path) -> list[Path]:
    """The benchmark JSONL files of a suite folder (or a single JSONL file)."""
    path = Path(benchmarks)
    files = [path] if path.is_file() else sorted(path.glob("*.jsonl"))
    if not files:
        raise HeadcastError(f"no benchmark JSONL files in {path}; pass a folder of <benchmark>.jsonl files")
    return files


def load_suite(benchmarks: str | Path) -> dict[str, list[Probe]]:
    """Benchmark name (file stem) -> its items; every item must carry an answer."""
    suite = {}
    for file in suite_files(benchmarks):
        probes = read_probes(file)
        unlabeled = [p.id for p in probes if p.answer is None]
        if unlabeled:
            raise HeadcastError(
                f"{file}: item {unlabeled[0]!r} has no answer; benchmark items need an 'answer'"
            )
        suite[file.stem] = probes
    return suite


def suite_accuracy(
    checkpoint, suite: dict[str, Sequence[Probe]], batch_size: int = 64, max_new_tokens: int = 4
) -> dict[str, float]:
    """Benchmark name -> greedy exact-match accuracy (percent) of a loaded checkpoint."""
    scores = {}
    for name, probes in suite.items():
        generated = generate_answers(checkpoint, probes, batch_size, max_new_tokens)
        right = sum(is_correct(g, p.answer or "") for g, p in zip(generated, probes, strict=True))
        scores[name] = 100.0 * right / len(probes)
    return scores


def evaluate_checkpoint(
    path: str | Path,
    suite: dict[str, list[Probe]],
    device: str = "auto",
    batch_size: int = 64,
    max_new_tokens: int = 4,
) -> dict[str, tuple[float, int]]:
    """Benchmark name -> (score in percent, number of items) for the checkpoint folder `path`."""
    from extract import load_checkpoint  # torch: only when a model is really loaded

    checkpoint = load_checkpoint(path, device=device)
    accuracy = suite_accuracy(checkpoint, suite, batch_size, max_new_tokens)
    return {name: (round(accuracy[name], 2), len(probes)) for name, probes in suite.items()}


def write_scores(rows: Iterable[dict], out: str | Path) -> Path:
    """Write the long score table as CSV, atomically; read it back with `predictor.scores.read_scores`."""
    from extract.storage import atomic_output

    out = Path(out)
    with atomic_output(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS)
        writer.writeheader()
        writer.writerows({key: row[key] for key in SCORE_COLUMNS} for row in rows)
    return out


def evaluate(
    checkpoints: Sequence[str | Path],
    benchmarks: str | Path,
    out: str | Path,
    device: str = "auto",
    batch_size: int = 64,
    max_new_tokens: int = 4,
    name_of: Callable[[Path], str] = str,
) -> list[dict]:
    """Score every checkpoint on every benchmark of the suite and write the long table to `out`."""
    suite = load_suite(benchmarks)
    rows = []
    for path in tqdm([Path(c) for c in checkpoints], desc="evaluate", unit="checkpoint"):
        for name, (score, n) in evaluate_checkpoint(path, suite, device, batch_size, max_new_tokens).items():
            rows.append({"checkpoint": name_of(path), "benchmark": name, "score": score, "n": n})
    write_scores(rows, out)
    return rows


def _run_evaluate(args: argparse.Namespace) -> None:
    evaluate(args.checkpoints, args.benchmarks, args.out, args.device, args.batch_size, args.max_new_tokens)
    print(f"wrote {args.out}")


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast evaluate CKPT... --benchmarks DIR --out scores.csv`."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score checkpoints on a benchmark suite (greedy decoding, exact match)",
        description="Score checkpoint folders on a folder of benchmark JSONL files; "
        "writes checkpoint,benchmark,score,n.",
    )
    parser.add_argument("checkpoints", nargs="+", help="checkpoint folders (Hugging Face format)")
    parser.add_argument("--benchmarks", required=True, help="folder of <benchmark>.jsonl files (or one file)")
    parser.add_argument("--out", default="scores.csv", help="CSV to write (default: scores.csv)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-new-tokens", type=int, default=4, help="tokens generated per answer (default: 4)"
    )
    parser.set_defaults(func=_run_evaluate)
    return parser
