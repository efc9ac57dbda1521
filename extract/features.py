"""From per-sample x layer x head metrics to per-head means and one architecture-free feature row.

Torch-free; the names it writes are `headcast.schema`'s.
Layers map to relative-depth bins, heads are summarised inside each bin and over the whole
model, so a 24-layer and a 40-layer model give rows with the same columns. Beside the head
features, `confidence.*` columns summarise how sure the model is of its first answer token
(label-free); their per-task columns depend on the probe set, not on the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from headcast.schema import (
    CONFIDENCE_PREFIX,
    CONFIDENCE_THRESHOLDS,
    DEPTH_BINS,
    METRICS,
    PER_HEAD_COLUMNS,
    VisualHeadThresholds,
)

CONFIDENCE_QUANTILES = (10, 50, 90)
SUMMARISED = ("visual_mass", "text_mass", "region_mass", "region_share", "concentration")


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
