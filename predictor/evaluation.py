"""Held-out evaluation: grouped cross-validation, per-benchmark metrics, honest baselines.

Every number here comes from checkpoints whose whole training run was left out of the fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from headcast.predictor.dataset import Dataset
from headcast.predictor.models import COVERAGE, HeadcastPredictor


def held_out_predictions(dataset: Dataset, estimator: str, folds, coverage: float = COVERAGE) -> pd.DataFrame:
    """Predictions of every checkpoint by a model that never saw its fold."""
    parts = []
    for train, test in folds:
        model = HeadcastPredictor(estimator, coverage).fit(
            dataset.features.iloc[train], dataset.scores.iloc[train], dataset.groups.iloc[train]
        )
        parts.append(model.predict(dataset.features.iloc[test]))
    return pd.concat(parts).loc[dataset.features.index]


def mean_baseline(dataset: Dataset, folds) -> pd.DataFrame:
    """Each benchmark's mean score over the training folds."""
    parts = [
        pd.DataFrame([dataset.scores.iloc[train].mean()] * len(test), index=dataset.scores.index[test])
        for train, test in folds
    ]
    return pd.concat(parts).loc[dataset.scores.index]


def step_baseline(dataset: Dataset, folds) -> pd.DataFrame | None:
    """Score from log training step alone, fitted on the training folds (None when steps are unknown)."""
    if dataset.steps.isna().any():
        return None
    log_step = np.log1p(dataset.steps.to_numpy())[:, None]
    parts = []
    for train, test in folds:
        fold = {}
        for benchmark in dataset.benchmarks:
            y = dataset.scores[benchmark].to_numpy()
            known = train[~np.isnan(y[train])]
            fit = LinearRegression().fit(log_step[known], y[known])
            fold[benchmark] = np.clip(fit.predict(log_step[test]), 0, 100)
        parts.append(pd.DataFrame(fold, index=dataset.scores.index[test]))
    return pd.concat(parts).loc[dataset.scores.index]


def subset_abs_error(
    right: np.ndarray, n: np.ndarray, k: int, repeats: int = 400, seed: int = 0
) -> np.ndarray:
    """Per row, the expected absolute error (points) of the accuracy on `k` random items of `n`.

    Items are right or wrong, so a subset's accuracy given the full-set accuracy is hypergeometric:
    the exact sampling distribution, no per-item logs needed. `right`: items answered right.
    """
    rng = np.random.default_rng(seed)
    k = np.minimum(k, n)
    draws = rng.hypergeometric(right, n - right, k, size=(repeats, len(n)))
    return np.abs(100 * draws / k - 100 * right / n).mean(0)


def subset_baseline_mae(scores: pd.DataFrame, items: pd.DataFrame, budget: int) -> pd.Series:
    """Expected MAE of running each benchmark on a random subset of its items.

    The probe set's forward passes (`budget`) are split evenly over the benchmarks. `items`: n per
    benchmark cell.
    """
    per_benchmark = max(1, budget // scores.shape[1])
    out = {}
    for benchmark in scores.columns:
        known = scores[benchmark].notna() & items[benchmark].notna()
        n = items.loc[known, benchmark].to_numpy().astype(int)
        right = np.clip(np.rint(scores.loc[known, benchmark].to_numpy() / 100 * n), 0, n).astype(int)
        out[benchmark] = float(subset_abs_error(right, n, per_benchmark, repeats=200).mean())
    return pd.Series(out)


def within_run_spearman(actual: pd.Series, predicted: pd.Series, groups: pd.Series) -> float:
    """Mean over runs of the Spearman correlation along each run (runs of 3+ checkpoints, neither side
    constant; NaN pairs left out): does the ordering hold inside a run, where family and size cannot carry
    it?"""
    values = []
    for _, index in groups.groupby(groups).groups.items():
        a, p = actual.loc[index], predicted.loc[index]
        known = a.notna() & p.notna()
        a, p = a[known], p[known]
        if len(a) >= 3 and a.nunique() > 1 and p.nunique() > 1:
            values.append(stats.spearmanr(a, p).statistic)
    return float(np.mean(values)) if values else float("nan")


def score_predictions(dataset: Dataset, predicted: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark: MAE, RMSE, Spearman, Kendall, mean within-run Spearman, interval coverage."""
    rows = {}
    for benchmark in dataset.benchmarks:
        actual = dataset.scores[benchmark].dropna()
        guess = predicted.loc[actual.index, benchmark]
        constant = guess.nunique() <= 1 or actual.nunique() <= 1
        row = {
            "mae": mean_absolute_error(actual, guess),
            "rmse": root_mean_squared_error(actual, guess),
            "spearman": np.nan if constant else stats.spearmanr(actual, guess).statistic,
            "kendall": np.nan if constant else stats.kendalltau(actual, guess).statistic,
            "within_run_spearman": within_run_spearman(actual, guess, dataset.groups.loc[actual.index]),
        }
        if f"{benchmark}_lower" in predicted:
            lower, upper = (
                predicted.loc[actual.index, f"{benchmark}_lower"],
                predicted.loc[actual.index, f"{benchmark}_upper"],
            )
            row["coverage"] = float(((actual >= lower) & (actual <= upper)).mean())
        rows[benchmark] = row
    return pd.DataFrame(rows).T


def ordering_counts(
    actual: np.ndarray, predicted: np.ndarray, gaps: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Per gap: held-out pairs at least that many points apart, and how many the prediction orders right.

    Users pick checkpoints by comparing them, so MAE is not enough. `predicted` is one row of
    estimates per random draw ([draws, checkpoints], or one row); "right" is averaged over the
    draws, and a tie in the prediction counts half.
    """
    actual = np.asarray(actual, dtype=float)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=float))
    first, second = np.triu_indices(len(actual), 1)
    truth = actual[first] - actual[second]
    agreement = np.sign(predicted[:, first] - predicted[:, second]) * np.sign(truth)
    right = ((agreement > 0) + 0.5 * (agreement == 0)).mean(0)
    apart = np.abs(truth)[None, :] >= np.asarray(gaps, dtype=float)[:, None]  # [gaps, pairs]
    return apart.sum(1), (apart * right).sum(1)
