"""Score checkpoints on a benchmark suite: greedy decoding, exact match of the first word or number.

A suite is a folder of JSONL files (one benchmark each, items with answers). Checkpoints load through
`extract.load_checkpoint` and prompts through `extract.build_prompt`, so a zoo checkpoint and a real
LLaVA checkpoint take exactly the same path. The result is a long table
`checkpoint, benchmark, score, n` with scores in percent, and beside it the per-item ground truth
`checkpoint, benchmark, item, correct, answer, prob, confidence` that anchors and IRT learn from.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from headcast.errors import HeadcastError
from headcast.extract import Probe, build_prompt, read_probes
from headcast.extract.answers import first_token_answers, is_correct
from headcast.files import atomic_output
from headcast.scale import RayOptions, map_on_ray
from headcast.schema import ANSWER_TOKENS, ITEM_COLUMNS, SCORE_COLUMNS

if TYPE_CHECKING:  # transformers loads torch, which this module leaves to the functions that run models
    from transformers import BatchFeature


def encode_items(
    processor, probes: Sequence[Probe], batch_size: int = 64
) -> list[tuple[list[Probe], list[str], BatchFeature]]:
    """The processor's inputs for `probes`, batch by batch: `(probes, prompts, inputs)`.

    Checkpoints that share a processor (the checkpoints of one training run) can share these.
    """
    batches = []
    for start in range(0, len(probes), batch_size):
        block = list(probes[start : start + batch_size])
        prompts = [build_prompt(processor, p.question) for p in block]
        inputs = processor(
            images=[p.load_image() for p in block], text=prompts, padding=True, return_tensors="pt"
        )
        batches.append((block, prompts, inputs))
    return batches


def answer_items(
    checkpoint,
    probes: Sequence[Probe],
    batch_size: int = 64,
    max_new_tokens: int = ANSWER_TOKENS,
    encoded: list[tuple[list[Probe], list[str], BatchFeature]] | None = None,
) -> list[dict]:
    """Per item of `probes`: greedy answer, exact-match `correct`, gold `prob` and `confidence`.

    `correct` judges the whole generated answer (the ground truth); `prob` and `confidence` come from
    the first generated token's distribution, as in extraction (`extract.answers`). `encoded`: the
    probes already through this checkpoint's processor (`encode_items`).
    """
    # here, not at the top: loads torch only when this runs
    import torch

    model, tokenizer = checkpoint.model, checkpoint.processor.tokenizer
    rows: list[dict] = []
    for block, prompts, encoding in encoded or encode_items(checkpoint.processor, probes, batch_size):
        inputs = encoding.to(checkpoint.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(checkpoint.dtype)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                output_logits=True,
                return_dict_in_generate=True,
            )
        generated = tokenizer.batch_decode(
            out.sequences[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        first = first_token_answers(out.logits[0], tokenizer, prompts, [p.answer for p in block])
        for probe, text, stats in zip(block, generated, first, strict=True):
            rows.append(
                {
                    "item": probe.id,
                    "correct": is_correct(text, probe.answer or ""),
                    "answer": text.strip(),
                    "prob": stats.get("prob", float("nan")),
                    "confidence": stats["confidence"],
                }
            )
    return rows


def suite_files(benchmarks: str | Path) -> list[Path]:
    """The benchmark JSONL files of a suite folder (or a single JSONL file)."""
    path = Path(benchmarks)
    files = [path] if os.path.isfile(path) else sorted(path.glob("*.jsonl")) if os.path.isdir(path) else []
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


def evaluate_checkpoint(
    path: str | Path,
    suite: dict[str, list[Probe]],
    device: str = "auto",
    batch_size: int = 64,
    max_new_tokens: int = ANSWER_TOKENS,
    encoded: dict[str, Any] | None = None,
    device_map: str | None = None,
) -> list[dict]:
    """Per-item results (`benchmark, item, correct, answer, prob, confidence`) of the checkpoint at `path`.

    `encoded`: a dict kept across calls, in which checkpoints with the same processor (those of one
    run) share their encoded inputs; the images are then processed once per run, not per checkpoint.
    `device_map`: instead of `device`, spread the model over the devices there are (`load_checkpoint`).
    """
    from headcast.extract import load_checkpoint  # torch: only when a model is really loaded

    checkpoint = load_checkpoint(path, device=device, device_map=device_map)
    key = checkpoint.processor.to_json_string()
    if encoded is not None and encoded.get("processor") != key:
        encoded.clear()
        encoded.update(processor=key, batches={})
    batches = {} if encoded is None else encoded["batches"]
    rows = []
    for name, probes in suite.items():  # the same scoring as `suite_accuracy`, item by item
        if name not in batches:
            batches[name] = encode_items(checkpoint.processor, probes, batch_size)
        rows += [
            {"benchmark": name} | row
            for row in answer_items(checkpoint, probes, batch_size, max_new_tokens, batches[name])
        ]
    return rows


def suite_accuracy(
    checkpoint,
    suite: Mapping[str, Sequence[Probe]],
    batch_size: int = 64,
    max_new_tokens: int = ANSWER_TOKENS,
    encoded: dict[str, list] | None = None,
) -> dict[str, float]:
    """Benchmark name -> greedy exact-match accuracy (percent) of a loaded checkpoint.

    `encoded`: benchmark -> its items through this checkpoint's processor (`encode_items`), for callers
    that score one checkpoint many times (ablations).
    """
    scores = {}
    for name, probes in suite.items():
        batches = (encoded or {}).get(name)
        rows = answer_items(checkpoint, probes, batch_size, max_new_tokens, batches)
        scores[name] = 100.0 * sum(row["correct"] for row in rows) / len(probes)
    return scores


def scores_of(items: Iterable[dict]) -> list[dict]:
    """Long score rows (`checkpoint, benchmark, score, n`, score in percent) from per-item rows."""

    table = pd.DataFrame(list(items))
    grouped = table.groupby(["checkpoint", "benchmark"], sort=False)["correct"]
    scores = pd.DataFrame({"score": (grouped.mean() * 100).round(2), "n": grouped.size()}).reset_index()
    return scores.to_dict("records")


def write_scores(rows: Iterable[dict], out: str | Path) -> Path:
    """Write the long score table as CSV, atomically; read it back with `predictor.scores.read_scores`."""

    out = Path(out)
    with atomic_output(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS)
        writer.writeheader()
        writer.writerows({key: row[key] for key in SCORE_COLUMNS} for row in rows)
    return out


def write_items(rows: Iterable[dict], out: str | Path) -> Path:
    """Write the per-item table as Parquet, atomically; read it back with `predictor.scores.read_items`."""

    out = Path(out)
    table = pd.DataFrame(list(rows), columns=ITEM_COLUMNS)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    return out


def items_path(scores_csv: str | Path) -> Path:
    """Where the per-item table of a score table lives: beside it, `<stem>.items.parquet`."""
    scores_csv = Path(scores_csv)
    return scores_csv.with_name(f"{scores_csv.stem}.items.parquet")


def evaluate(
    checkpoints: Sequence[str | Path],
    benchmarks: str | Path,
    out: str | Path,
    device: str = "auto",
    batch_size: int = 64,
    max_new_tokens: int = ANSWER_TOKENS,
    name_of: Callable[[Path], str] = str,
    ray: RayOptions | None = None,
    device_map: str | None = None,
) -> list[dict]:
    """Score every checkpoint on the suite; write the long table to `out`, per-item results beside it.

    `ray`: one Ray task per checkpoint (at its resolved path) instead of this process.
    """
    suite = load_suite(benchmarks)
    paths = [Path(c) for c in checkpoints]
    score = partial(
        evaluate_checkpoint,
        suite=suite,
        device=device,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device_map=device_map,
    )
    if ray is None:
        with tqdm(paths, desc="evaluate", unit="checkpoint") as bar:  # closed before an error is shown
            per_checkpoint = [score(path) for path in bar]
    else:
        per_checkpoint = map_on_ray(score, [path.resolve() for path in paths], ray, desc="evaluate")
    items = [
        {"checkpoint": name_of(path)} | row
        for path, rows in zip(paths, per_checkpoint, strict=True)
        for row in rows
    ]
    scores = scores_of(items)
    write_items(items, items_path(out))
    write_scores(scores, out)
    return scores
