"""From per-sample x layer x head metrics to per-head means and one architecture-free feature row.

Torch-free on purpose: the predictor and the service import this module for the schema.
Layers map to relative-depth bins, heads are summarised inside each bin and over the whole
model, so a 24-layer and a 40-layer model give rows with the same columns. Beside the head
features, `confidence.*` columns summarise how sure the model is of its first answer token
(label-free); their per-task columns depend on the probe set, not on the model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

METRICS: tuple[str, ...] = ("visual_mass", "text_mass", "region_mass", "concentration")  # recorded per head
QUERY_POSITIONS: tuple[str, ...] = ("last-prompt", "first-generated", "answer-mean")  # a recorded setting
FEATURE_SCHEMA_VERSION = "headcast-features/2"
METRICS_VERSION = "2"  # bump when the recorded numbers change meaning (2: answers cached too)
DEPTH_BINS = 4
HEAD_PREFIXES: tuple[str, ...] = ("all.", *(f"depth{b}." for b in range(DEPTH_BINS)))
CONFIDENCE_PREFIX = "confidence."
CONFIDENCE_QUANTILES = (10, 50, 90)
# Average thresholded confidence (Garg et al. 2022) predicts accuracy as the share of items whose
# confidence clears a threshold fitted on labelled models; the shares over a grid of thresholds let
# the predictor fit that threshold (or a blend of them) inside its training folds.
CONFIDENCE_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
PER_HEAD_COLUMNS = ["checkpoint", "layer", "head", *METRICS, "visual_head_rate"]
SUMMARISED = ("visual_mass", "text_mass", "region_mass", "region_share", "concentration")


@dataclasses.dataclass(frozen=True)
class VisualHeadThresholds:
    """A head is visual on a sample when its visual mass and its concentration both clear these."""

    visual_mass: float = 0.25
    concentration: float = 0.2


def head_means(samples: np.ndarray, thresholds: VisualHeadThresholds) -> dict[str, np.ndarray]:
    """Means over the probe set of each [samples, layers, heads] metric, plus visual-head rate."""
    by_name = {name: samples[..., i] for i, name in enumerate(METRICS)}
    visual = by_name["visual_mass"]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = by_name["region_mass"] / visual
    means = {name: _nanmean(values) for name, values in by_name.items()}
    means["region_share"] = _nanmean(share)
    is_visual = (visual >= thresholds.visual_mass) & (by_name["concentration"] >= thresholds.concentration)
    means["visual_head_rate"] = is_visual.mean(axis=0)
    return means


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over samples; NaN (not a warning) where no sample has a value, e.g. no probe has a box."""
    counts = np.isfinite(values).sum(axis=0)
    totals = np.where(np.isfinite(values), values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def per_head_table(checkpoint: str, samples: np.ndarray, thresholds: VisualHeadThresholds) -> pd.DataFrame:
    """One row per (layer, head), 0-based, with the probe-set means."""
    means = head_means(samples, thresholds)
    n_layers, n_heads = samples.shape[1:3]
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    table = pd.DataFrame({"checkpoint": checkpoint, "layer": layer.ravel(), "head": head.ravel()})
    for name in [*METRICS, "visual_head_rate"]:
        table[name] = means[name].ravel()
    return table[PER_HEAD_COLUMNS]


def depth_bins(n_layers: int, n_bins: int = DEPTH_BINS) -> np.ndarray:
    """The relative-depth bin of each layer, by the layer's centre."""
    centres = (np.arange(n_layers) + 0.5) / n_layers
    return np.minimum((centres * n_bins).astype(int), n_bins - 1)


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (not a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else np.nan


def _finite_quantile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, q)) if finite.size else np.nan


def _summaries(means: dict[str, np.ndarray], layers: np.ndarray, prefix: str) -> dict[str, float]:
    row: dict[str, float] = {}
    for name in SUMMARISED:
        values = means[name][layers].ravel()
        row[f"{prefix}.{name}.mean"] = _finite_mean(values)
        row[f"{prefix}.{name}.q90"] = _finite_quantile(values, 0.9)
    rate = means["visual_head_rate"][layers].ravel()
    row[f"{prefix}.visual_head_rate.mean"] = float(rate.mean())
    row[f"{prefix}.visual_head_fraction"] = float((rate >= 0.5).mean())
    return row


def confidence_features(answers: pd.DataFrame) -> dict[str, float]:
    """Label-free features from per-probe `confidence` (top first-token probability) and `task`.

    Mean, quantiles and thresholded shares over all probes, then one mean per task (probes without a
    task count only in the overall ones). NaN where no probe has a confidence (`answer-mean`).
    """
    confidence = answers["confidence"].to_numpy(dtype=float)
    row = {f"{CONFIDENCE_PREFIX}mean": _finite_mean(confidence)}
    for q in CONFIDENCE_QUANTILES:
        row[f"{CONFIDENCE_PREFIX}q{q}"] = _finite_quantile(confidence, q / 100)
    finite = np.isfinite(confidence)
    for t in CONFIDENCE_THRESHOLDS:
        row[f"{CONFIDENCE_PREFIX}above{t:g}"] = _finite_mean(np.where(finite, confidence >= t, np.nan))
    tasks = answers["task"]
    for task in sorted(tasks.dropna().unique()):
        row[f"{CONFIDENCE_PREFIX}task={task}"] = _finite_mean(confidence[(tasks == task).to_numpy()])
    return row


def feature_row(
    samples: np.ndarray, thresholds: VisualHeadThresholds, answers: pd.DataFrame | None = None
) -> dict[str, float]:
    """One feature row from [samples, layers, heads, METRICS]; its head keys depend on no model size.

    With the per-probe `answers` (columns `task`, `confidence`) the row also gets the confidence features.
    """
    means = head_means(samples, thresholds)
    n_layers = samples.shape[1]
    bins = depth_bins(n_layers)
    row: dict[str, float] = {}
    for b in range(DEPTH_BINS):
        layers = np.flatnonzero(bins == b)
        if layers.size == 0:  # fewer layers than bins: borrow the nearest layer
            layers = np.array([min(int(b * n_layers / DEPTH_BINS), n_layers - 1)])
        row |= _summaries(means, layers, f"depth{b}")
    row |= _summaries(means, np.arange(n_layers), "all")
    depth = (np.arange(n_layers) + 0.5) / n_layers
    layer_mass = means["visual_mass"].mean(axis=1)
    row["all.visual_mass.depth_centroid"] = float((depth * layer_mass).sum() / max(layer_mass.sum(), 1e-12))
    return row if answers is None else row | confidence_features(answers)


def feature_columns() -> list[str]:
    """The head-feature names of the current schema, in order (the confidence columns vary by probe set)."""
    dummy = np.full((1, DEPTH_BINS, 1, len(METRICS)), 0.5)
    return list(feature_row(dummy, VisualHeadThresholds()))


def head_feature_columns(columns: Iterable[str]) -> list[str]:
    """The attention (head) features among `columns`, in their order; the predictor uses the groups apart."""
    return [c for c in columns if c.startswith(HEAD_PREFIXES)]


def confidence_feature_columns(columns: Iterable[str]) -> list[str]:
    """The label-free answer-confidence features among `columns`, in their order."""
    return [c for c in columns if c.startswith(CONFIDENCE_PREFIX)]


def write_features(table: pd.DataFrame, settings: dict[str, dict], path) -> None:
    """Write the feature table atomically, with each checkpoint's settings in the file's metadata.

    A row's extraction contract (its `contract` column) joins its checkpoint's settings there too, so
    tools that read only the Parquet metadata see how every row was made.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from headcast.extract.contract import CONTRACT_COLUMN
    from headcast.extract.storage import atomic_output

    if CONTRACT_COLUMN in table:
        settings = dict(settings)
        for checkpoint, text in zip(table["checkpoint"], table[CONTRACT_COLUMN], strict=True):
            if isinstance(text, str):
                settings[checkpoint] = dict(settings.get(checkpoint, {})) | {"contract": json.loads(text)}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[b"headcast"] = json.dumps(
        {"schema_version": FEATURE_SCHEMA_VERSION, "settings": settings}
    ).encode()
    with atomic_output(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def read_features(path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """A feature table and its per-checkpoint settings; errors name what is wrong with the file.

    A file written before extraction contracts gets its `contract` column back from the settings in
    its metadata, so old tables are checked like new ones.
    """
    import json

    from headcast.extract.contract import CONTRACT_COLUMN, contracts_from_settings
    from headcast.extract.errors import HeadcastError

    path = Path(path)
    arrow = _read_arrow(path, "feature file", "create it with 'headcast extract'")
    table = arrow.to_pandas()
    if not {"checkpoint", "schema_version"} <= set(table.columns):
        raise HeadcastError(
            f"{path} has no checkpoint/schema_version columns; it is not a headcast feature table"
        )
    check_feature_rows(table, path)
    meta = json.loads((arrow.schema.metadata or {}).get(b"headcast", b"{}"))
    settings = meta.get("settings", {})
    if CONTRACT_COLUMN not in table:
        implied = contracts_from_settings(settings, table["checkpoint"].tolist())
        if implied is not None:
            table.insert(2, CONTRACT_COLUMN, implied)
    return table, settings


def _read_arrow(path: Path, what: str, fix: str):
    """The Parquet file at `path` as an Arrow table; a missing or unreadable one is a one-line error."""
    import pyarrow.parquet as pq

    from headcast.extract.errors import HeadcastError

    if not os.path.isfile(path):  # not Path.is_file: Python 3.11's raises on a name too long to exist
        raise HeadcastError(f"{what} {path} does not exist; {fix}")
    try:
        return pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        detail = (str(err).strip().splitlines() or [""])[0].removeprefix(
            f"Could not open Parquet input source '{path}': "
        )
        reason = f"{type(err).__name__}: {detail[:120]}" if detail else type(err).__name__
        raise HeadcastError(f"{path} is not a readable Parquet file ({reason}); {fix}") from None


def read_table(path, what: str, columns: Iterable[str], fix: str) -> pd.DataFrame:
    """A Parquet table that must hold `columns` (a per-head or answer table), or a one-line error."""
    from headcast.extract.errors import HeadcastError

    path = Path(path)
    table = _read_arrow(path, what, fix).to_pandas()
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise HeadcastError(f"{path} lacks column(s) {', '.join(missing)}, so it is not a {what}; {fix}")
    return table


def check_feature_rows(table: pd.DataFrame, where) -> None:
    """One row per named checkpoint, and numbers in every feature column: NaN where undefined, never inf
    or text (which the predictor would turn into a crash or, coerced, a silently missing value)."""
    from headcast.extract.contract import CONTRACT_COLUMN
    from headcast.extract.errors import HeadcastError

    names = table["checkpoint"]
    unnamed = names.isna() | ~names.map(lambda n: isinstance(n, str) and bool(n.strip()))
    if unnamed.any():
        raise HeadcastError(
            f"{where}: row {int(unnamed.to_numpy().argmax())} has no checkpoint name; "
            "every row needs one, as 'headcast extract' writes it"
        )
    repeated = names[names.duplicated()]
    if not repeated.empty:
        raise HeadcastError(
            f"{where}: checkpoint {repeated.iloc[0]!r} has {int((names == repeated.iloc[0]).sum())} rows; "
            "keep one row per checkpoint (pass each checkpoint to 'headcast extract' once)"
        )
    for column in table.columns.drop(["checkpoint", "schema_version", CONTRACT_COLUMN], errors="ignore"):
        values = table[column]
        if values.isna().all():  # an all-missing column may come back untyped; it is all NaN
            continue
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            shown = next((v for v in values if not isinstance(v, int | float)), values.iloc[0])
            raise HeadcastError(
                f"{where}: feature column {column!r} holds {type(shown).__name__} values such as {shown!r}, "
                "not numbers; re-extract the features with 'headcast extract'"
            )
        infinite = np.isinf(values.to_numpy(dtype=float))
        if infinite.any():
            row = int(infinite.argmax())
            raise HeadcastError(
                f"{where}: feature column {column!r} is {values.iloc[row]} for checkpoint "
                f"{names.iloc[row]!r}; features are finite (NaN where undefined), re-extract them with "
                "'headcast extract'"
            )
