"""The extraction stage end to end: checkpoints + probe set -> head metrics -> feature rows."""

from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from extract.errors import HeadcastError
from extract.features import (
    FEATURE_SCHEMA_VERSION,
    METRICS,
    QUERY_POSITIONS,
    VisualHeadThresholds,
    feature_row,
    per_head_table,
)
from extract.inputs import QueryPosition, encode_batch
from extract.loading import (
    Checkpoint,
    load_checkpoint,
    read_config,
    resolve_device,
    resolve_dtype,
    weight_files,
)
from extract.probes import Probe, probe_set_hash
from extract.runner import record_batch
from extract.storage import MetricsCache, cache_key, checkpoint_fingerprint

METRICS_VERSION = "1"  # bump when the recorded numbers change meaning


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    query: QueryPosition = "last-prompt"
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    thresholds: VisualHeadThresholds = dataclasses.field(default_factory=VisualHeadThresholds)

    def __post_init__(self) -> None:
        if self.query not in QUERY_POSITIONS:
            raise HeadcastError(
                f"unknown query position {self.query!r}; use one of {', '.join(QUERY_POSITIONS)}"
            )
        if self.batch_size < 1:
            raise HeadcastError(f"batch size must be at least 1, got {self.batch_size}")


@dataclasses.dataclass
class HeadMetrics:
    """Per-sample metrics of one checkpoint on one probe set: [samples, layers, heads, METRICS]."""

    checkpoint: str
    samples: np.ndarray
    settings: dict

    def per_head(self, thresholds: VisualHeadThresholds) -> pd.DataFrame:
        return per_head_table(self.checkpoint, self.samples, thresholds)

    def feature_row(self, thresholds: VisualHeadThresholds) -> dict[str, float]:
        return feature_row(self.samples, thresholds)


def library_versions() -> dict[str, str]:
    names = ("torch", "transformers", "headcast")
    versions = {name: importlib.metadata.version(name) for name in names}
    return versions | {"python": platform.python_version()}


def measure_heads(
    checkpoint: Checkpoint,
    probes: Sequence[Probe],
    query: QueryPosition = "last-prompt",
    batch_size: int = 8,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run the probes through a loaded (or live, training) model: [samples, layers, heads, METRICS].

    Region mass is NaN for probes without a box. Non-finite attention is an error, not a number.
    `on_batch(done, total)` reports progress to callers without a terminal (the service).
    """
    chunks = []
    starts = range(0, len(probes), batch_size)
    for start in tqdm(starts, desc=checkpoint.path.name, unit="batch", leave=False, disable=not progress):
        batch = list(probes[start : start + batch_size])
        recorded = record_batch(checkpoint, encode_batch(checkpoint, batch, query), query).stacked()
        if not torch.isfinite(recorded).all():
            layer = int(torch.nonzero(~torch.isfinite(recorded))[0, 1])
            raise HeadcastError(
                f"{checkpoint.path}: attention is NaN/Inf in layer {layer} at dtype {checkpoint.dtype} "
                "(e.g. float16 overflow); rerun with --dtype float32 or bfloat16"
            )
        no_box = torch.tensor([p.box is None for p in batch])
        recorded[no_box, :, :, METRICS.index("region_mass")] = float("nan")
        chunks.append(recorded.float().numpy())
        if on_batch is not None:
            on_batch(start + len(batch), len(probes))
    return np.concatenate(chunks)


def extract_head_metrics(
    path: str | Path,
    probes: Sequence[Probe],
    settings: ExtractionSettings = ExtractionSettings(),
    name: str | None = None,
    cache: MetricsCache | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> HeadMetrics:
    """Head metrics of the checkpoint at `path`, from the cache when its content was seen before."""
    path = Path(path)
    config = read_config(path)
    dtype = resolve_dtype(settings.dtype, resolve_device(settings.device), config)
    settings_record = {
        "query": settings.query,
        "dtype": str(dtype).removeprefix("torch."),
        "probe_set_hash": probe_set_hash(list(probes)),
        "n_probes": len(probes),
        "checkpoint_fingerprint": checkpoint_fingerprint(path),
        "metrics_version": METRICS_VERSION,
    }
    key = cache_key(**{k: str(v) for k, v in settings_record.items()})
    cache = cache or MetricsCache()
    if (hit := cache.get(key)) is not None:
        samples, meta = hit
        return HeadMetrics(name or str(path), samples, meta)
    checkpoint = load_checkpoint(path, settings.device, settings_record["dtype"])
    samples = measure_heads(checkpoint, probes, settings.query, settings.batch_size, progress, on_batch)
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
    cache.put(key, samples, meta)
    return HeadMetrics(name or str(path), samples, meta)


def features_table(metrics: Sequence[HeadMetrics], thresholds: VisualHeadThresholds) -> pd.DataFrame:
    """One row per checkpoint: `checkpoint`, `schema_version`, then the features."""
    rows = [
        {"checkpoint": m.checkpoint, "schema_version": FEATURE_SCHEMA_VERSION} | m.feature_row(thresholds)
        for m in metrics
    ]
    return pd.DataFrame(rows)


def per_head_tables(metrics: Sequence[HeadMetrics], thresholds: VisualHeadThresholds) -> pd.DataFrame:
    return pd.concat([m.per_head(thresholds) for m in metrics], ignore_index=True)


def extract_features(
    paths: Sequence[str | Path],
    probes: Sequence[Probe],
    settings: ExtractionSettings = ExtractionSettings(),
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[HeadMetrics]]:
    """The public entry point: feature rows (and the head metrics behind them) for checkpoints."""
    names = list(names) if names is not None else [str(p) for p in paths]
    if len(set(names)) != len(names):
        raise HeadcastError("two checkpoints have the same name; pass each folder once")
    for path in paths:  # fail before any work, not after hours of it
        read_config(path)
        weight_files(Path(path))
    cache = MetricsCache()
    metrics = [
        extract_head_metrics(path, probes, settings, name, cache, progress)
        for path, name in tqdm(
            list(zip(paths, names, strict=True)), desc="extract", unit="ckpt", disable=not progress
        )
    ]
    return features_table(metrics, settings.thresholds), metrics
