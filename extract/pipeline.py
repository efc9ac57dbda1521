"""The extraction stage end to end: checkpoints + probe set -> head metrics and answers -> feature rows."""

from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from headcast.contract import ExtractionContract, ExtractionSettings
from headcast.errors import HeadcastError
from headcast.extract.answers import AnswerStats, first_token_answers
from headcast.extract.features import feature_row, per_head_table
from headcast.extract.inputs import encode_batch
from headcast.extract.loading import (
    Checkpoint,
    load_checkpoint,
    read_config,
    resolve_device,
    resolve_dtype,
    weight_files,
)
from headcast.extract.probes import Probe, probe_set_hash
from headcast.extract.prompts import build_prompt
from headcast.extract.runner import record_batch
from headcast.extract.storage import MetricsCache, cache_key, checkpoint_fingerprint
from headcast.scale import RayOptions, map_on_ray
from headcast.schema import (
    ANSWER_COLUMNS,
    CONTRACT_COLUMN,
    FEATURE_SCHEMA_VERSION,
    METRICS,
    METRICS_VERSION,
    QueryPosition,
    VisualHeadThresholds,
)


@dataclasses.dataclass
class HeadMetrics:
    """One checkpoint on one probe set: per-sample head metrics and per-probe first-token answers.

    `samples` is [samples, layers, heads, METRICS]; `answers` has one row per probe, columns
    `ANSWER_COLUMNS` (`correct` is 0/1, NaN with `prob` where the probe has no gold answer).
    """

    checkpoint: str
    samples: np.ndarray
    settings: dict
    answers: pd.DataFrame

    def per_head(self, thresholds: VisualHeadThresholds) -> pd.DataFrame:
        return per_head_table(self.checkpoint, self.samples, thresholds)

    def feature_row(self, thresholds: VisualHeadThresholds) -> dict[str, float]:
        return feature_row(self.samples, thresholds, self.answers)


def library_versions() -> dict[str, str]:
    names = ("torch", "transformers", "headcast")
    versions = {name: importlib.metadata.version(name) for name in names}
    return versions | {"python": platform.python_version()}


def probe_answers(
    checkpoint: Checkpoint, probes: Sequence[Probe], logits: torch.Tensor | None
) -> list[dict[str, object]]:
    """Per probe, the `ANSWER_COLUMNS` from its next-token `logits`; no answer (NaN) where logits is None.

    The gold tokens are found after the very prompt string `encode_batch` gave the model.
    """
    if logits is None:
        stats: list[AnswerStats] = [{} for _ in probes]
    else:
        prompts = [build_prompt(checkpoint.processor, p.question) for p in probes]
        answers = [p.answer for p in probes]
        stats = first_token_answers(logits, checkpoint.processor.tokenizer, prompts, answers)
    nan = float("nan")
    return [
        {
            "item": probe.id,
            "task": probe.task,
            "answer": got.get("answer", ""),
            "correct": float(got.get("correct", nan)),
            "prob": got.get("prob", nan),
            "confidence": got.get("confidence", nan),
        }
        for probe, got in zip(probes, stats, strict=True)
    ]


def measure_heads(
    checkpoint: Checkpoint,
    probes: Sequence[Probe],
    query: QueryPosition = "last-prompt",
    batch_size: int = 8,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Run the probes through a loaded (or live, training) model: head metrics and answers, one prefill.

    Returns [samples, layers, heads, METRICS] and the per-probe answers (`ANSWER_COLUMNS`; all NaN
    for `answer-mean`, whose input holds the answer). Region mass is NaN for probes without a box.
    Non-finite attention is an error, not a number. `on_batch(done, total)` reports progress to
    callers without a terminal (the service).
    """
    chunks, answers = [], []
    starts = range(0, len(probes), batch_size)
    for start in tqdm(starts, desc=checkpoint.path.name, unit="batch", leave=False, disable=not progress):
        batch = list(probes[start : start + batch_size])
        recorder = record_batch(checkpoint, encode_batch(checkpoint, batch, query), query)
        recorded = recorder.stacked()
        if not torch.isfinite(recorded).all():
            layer = int(torch.nonzero(~torch.isfinite(recorded))[0, 1])
            raise HeadcastError(
                f"{checkpoint.path}: attention is NaN/Inf in layer {layer} at dtype {checkpoint.dtype} "
                "(e.g. float16 overflow); rerun with --dtype float32 or bfloat16"
            )
        no_box = torch.tensor([p.box is None for p in batch])
        recorded[no_box, :, :, METRICS.index("region_mass")] = float("nan")
        chunks.append(recorded.float().numpy())
        answers += probe_answers(checkpoint, batch, recorder.next_token_logits)
        if on_batch is not None:
            on_batch(start + len(batch), len(probes))
    return np.concatenate(chunks), pd.DataFrame(answers, columns=list(ANSWER_COLUMNS))


def metrics_record(
    path: Path, probes: Sequence[Probe], settings: ExtractionSettings, device: torch.device
) -> dict[str, Any]:
    """What decides a checkpoint's head metrics on `device`; the cache key is made of it."""
    dtype = resolve_dtype(settings.dtype, device, read_config(path))
    return {
        "query": settings.query,
        "dtype": str(dtype).removeprefix("torch."),
        "probe_set_hash": probe_set_hash(list(probes)),
        "n_probes": len(probes),
        "checkpoint_fingerprint": checkpoint_fingerprint(path),
        "metrics_version": METRICS_VERSION,
    }


RECORD_FIELDS = ("query", "dtype", "probe_set_hash", "n_probes", "checkpoint_fingerprint", "metrics_version")


def record_key(record: dict[str, Any]) -> str:
    """The cache key of a `metrics_record` (or of a cached entry's settings, which hold one)."""
    return cache_key(**{field: str(record[field]) for field in RECORD_FIELDS})


def extract_head_metrics(
    path: str | Path,
    probes: Sequence[Probe],
    settings: ExtractionSettings = ExtractionSettings(),
    name: str | None = None,
    cache: MetricsCache | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> HeadMetrics:
    """Head metrics and answers of the checkpoint at `path`, from the cache when its content was seen."""
    path = Path(path)
    settings_record = metrics_record(path, probes, settings, resolve_device(settings.device))
    key = record_key(settings_record)
    cache = cache or MetricsCache()
    if (hit := cache.get(key)) is not None:
        samples, answers, meta = hit
        return HeadMetrics(name or str(path), samples, meta, answers)
    checkpoint = load_checkpoint(
        path, settings.device, settings_record["dtype"], device_map=settings.device_map
    )
    samples, answers = measure_heads(
        checkpoint, probes, settings.query, settings.batch_size, progress, on_batch
    )
    text = checkpoint.model.config.text_config
    meta = settings_record | {
        "arch": checkpoint.arch,
        "text_model": checkpoint.text_model,
        "n_layers": samples.shape[1],
        "n_heads": samples.shape[2],
        "n_kv_heads": text.num_key_value_heads,
        "versions": library_versions(),
    }
    del checkpoint
    gc.collect()
    cache.put(key, samples, answers, meta)
    return HeadMetrics(name or str(path), samples, meta, answers)


def features_table(metrics: Sequence[HeadMetrics], thresholds: VisualHeadThresholds) -> pd.DataFrame:
    """One row per checkpoint: `checkpoint`, `schema_version`, `contract` (how the row was made, as JSON),
    the head features, the confidence features."""
    rows = [
        {
            "checkpoint": m.checkpoint,
            "schema_version": FEATURE_SCHEMA_VERSION,
            CONTRACT_COLUMN: ExtractionContract.from_settings(m.settings, thresholds).to_json(),
        }
        | m.feature_row(thresholds)
        for m in metrics
    ]
    return pd.DataFrame(rows)


def per_head_tables(metrics: Sequence[HeadMetrics], thresholds: VisualHeadThresholds) -> pd.DataFrame:
    return pd.concat([m.per_head(thresholds) for m in metrics], ignore_index=True)


def answers_table(metrics: Sequence[HeadMetrics]) -> pd.DataFrame:
    """One row per (checkpoint, probe): `checkpoint` then `ANSWER_COLUMNS`."""
    tables = [m.answers.assign(checkpoint=m.checkpoint) for m in metrics]
    return pd.concat(tables, ignore_index=True)[["checkpoint", *ANSWER_COLUMNS]]


def extract_features(
    paths: Sequence[str | Path],
    probes: Sequence[Probe],
    settings: ExtractionSettings = ExtractionSettings(),
    names: Sequence[str] | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    ray: RayOptions | None = None,
    probes_per_task: int | None = None,
) -> tuple[pd.DataFrame, list[HeadMetrics]]:
    """The public entry point: feature rows (and the head metrics behind them) for checkpoints.

    `on_batch(done, total)` counts probes across all checkpoints, for callers without a terminal.
    `ray`: one Ray task per checkpoint (per `probes_per_task` probes of it) instead of this process.
    """
    names = list(names) if names is not None else [str(p) for p in paths]
    if len(set(names)) != len(names):
        raise HeadcastError("two checkpoints have the same name; pass each folder once")
    for path in paths:  # fail before any work, not after hours of it
        read_config(path)
        weight_files(Path(path))
    cache = MetricsCache()
    if ray is not None:
        metrics = extract_on_ray(paths, probes, settings, names, ray, probes_per_task, cache, progress)
        return features_table(metrics, settings.thresholds), metrics
    metrics = []
    # one bar for the stage, counting probes: fine-grained for one large model, calm for many small ones
    with tqdm(total=len(paths) * len(probes), desc="extract", unit="probe", disable=not progress) as bar:
        for i, (path, name) in enumerate(zip(paths, names, strict=True)):
            bar.set_postfix_str(name, refresh=False)

            def advance(done: int, _total: int, start: int = i * len(probes)) -> None:
                bar.update(start + done - bar.n)
                if on_batch is not None:
                    on_batch(start + done, bar.total)

            metrics.append(extract_head_metrics(path, probes, settings, name, cache, False, advance))
            advance(len(probes), len(probes))  # a cached checkpoint counts at once
    return features_table(metrics, settings.thresholds), metrics


def measure_shard(task: tuple[str, list[Probe]], settings: ExtractionSettings) -> HeadMetrics:
    """One Ray task: a checkpoint on one shard of the probe set, through the worker's own cache."""
    path, probes = task
    return extract_head_metrics(path, probes, settings, progress=False)


def extract_on_ray(
    paths: Sequence[str | Path],
    probes: Sequence[Probe],
    settings: ExtractionSettings,
    names: Sequence[str],
    options: RayOptions,
    probes_per_task: int | None,
    cache: MetricsCache,
    progress: bool,
) -> list[HeadMetrics]:
    """`extract_head_metrics` of every checkpoint as Ray tasks, one per (checkpoint, shard of probes).

    Only what the driver's cache lacks is sent out; each finished shard and each assembled checkpoint is
    cached on the driver, so a run cut short resumes where it stopped. Paths travel resolved: workers
    read checkpoints and images at the same paths (a filesystem every node shares).
    """
    size = probes_per_task or len(probes)
    shards = [list(probes[i : i + size]) for i in range(0, len(probes), size)]
    auto = torch.device("cuda" if options.gpus_per_task > 0 else "cpu")  # what "auto" gives a task
    device = auto if settings.device == "auto" else torch.device(settings.device)

    def cached(i: int, subset: Sequence[Probe]) -> HeadMetrics | None:
        hit = cache.get(record_key(metrics_record(Path(paths[i]), subset, settings, device)))
        return None if hit is None else HeadMetrics(names[i], hit[0], hit[2], hit[1])

    done = {i: m for i in range(len(paths)) if (m := cached(i, probes)) is not None}
    parts = {
        (i, j): cached(i, shard) for i in range(len(paths)) if i not in done for j, shard in enumerate(shards)
    }
    todo = [where for where, hit in parts.items() if hit is None]
    tasks = [(str(Path(paths[i]).resolve()), shards[j]) for i, j in todo]
    results = map_on_ray(partial(measure_shard, settings=settings), tasks, options, progress, "extract")
    for where, result in zip(todo, results, strict=True):
        parts[where] = result
        if (key := record_key(result.settings)) not in cache:  # the worker's cache may be another node's
            cache.put(key, result.samples, result.answers, result.settings)
    for i in sorted(set(range(len(paths))) - set(done)):
        pieces = [piece for j in range(len(shards)) if (piece := parts[i, j]) is not None]
        record = {"probe_set_hash": probe_set_hash(list(probes)), "n_probes": len(probes)}
        meta = pieces[0].settings | record
        samples = np.concatenate([piece.samples for piece in pieces])
        answers = pd.concat([piece.answers for piece in pieces], ignore_index=True)
        if len(shards) > 1:
            cache.put(record_key(meta), samples, answers, meta)
        done[i] = HeadMetrics(names[i], samples, meta, answers)
    return [done[i] for i in range(len(paths))]


def measure_live_model(
    model: torch.nn.Module,
    processor: Any,
    probes: Sequence[Probe],
    settings: ExtractionSettings = ExtractionSettings(),
) -> HeadMetrics:
    """Head metrics and answers of a model in memory (one being trained), as it is at this step.

    Measured in eval mode without gradients, in the model's own dtype; its train mode and the tokenizer's
    padding side are restored after, and nothing is copied or saved.
    """
    model = getattr(model, "module", model)  # DistributedDataParallel and friends
    if not isinstance(model, PreTrainedModel):
        raise HeadcastError(
            f"a {type(model).__name__} is not a transformers model; pass the model being trained"
        )
    config = model.config
    checkpoint = Checkpoint(
        path=Path(getattr(config, "_name_or_path", "") or "live-model"),
        model=model,
        processor=processor,
        arch=config.model_type,
        text_model=config.text_config.model_type,
    )
    tokenizer = processor.tokenizer
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # the query row is the last position
    try:
        with torch.no_grad():
            samples, answers = measure_heads(checkpoint, probes, settings.query, settings.batch_size, False)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    record = {
        "query": settings.query,
        "dtype": live_dtype(model),
        "probe_set_hash": probe_set_hash(list(probes)),
        "n_probes": len(probes),
        "metrics_version": METRICS_VERSION,
    }
    return HeadMetrics(str(checkpoint.path), samples, record, answers)


def live_dtype(model: torch.nn.Module) -> str:
    """The dtype a live model computes in, named as extraction settings name it (`float32`, ...)."""
    return str(getattr(model, "module", model).dtype).removeprefix("torch.")
