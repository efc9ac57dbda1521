"""Regressors from feature rows to benchmark scores, with conformal intervals and an OOD flag.

`HeadcastPredictor` follows scikit-learn: `fit(X, Y, groups)` / `predict(X)`, plain DataFrames
in and out. One regressor per benchmark; the interval half-width is the conformal quantile of
out-of-fold residuals from grouped cross-validation inside the training data, so whole runs are
held out there too and the width reflects error on unseen runs, not on seen ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headcast.contract import ExtractionContract
from headcast.predictor.regressors import ESTIMATORS, REGRESSORS, make_regressor
from headcast.predictor.splits import GroupFolds
from headcast.schema import confidence_feature_columns

SHRINK_WEIGHTS = (0.25, 0.5, 0.75, 1.0)  # of the regressor; the rest is the mean
# A feature set tried after the first (head metrics after confidence) must beat the best model so far
# by two standard errors across runs, not one: on the seed-1 zoo one let heads in at k = 0 where
# they then cost 0.3 points on unseen runs (7.32 against confidence alone 7.02; two: 7.02), while
# on seed 0 the two bars gave the same error (7.87).
LATER_SET_STANDARD_ERRORS = 2.0
COVERAGE = 0.9  # nominal share of unseen runs' scores inside a conformal interval, everywhere


def label_free_feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """Named label-free feature sets in the order they compete: confidence, then everything (heads too).

    Heads must earn their place over the model's confidence, the obvious label-free competitor.
    """
    columns = list(columns)
    confidence = confidence_feature_columns(columns)
    return {"confidence": confidence, "heads": columns} if confidence else {"heads": columns}


class ShrunkToMean(RegressorMixin, BaseEstimator):
    """`regressor`'s prediction pulled toward the training mean: mean + weight · (prediction - mean).

    With weight 0 (or no regressor) it is the training mean itself.
    """

    def __init__(self, regressor: BaseEstimator | None, weight: float = 1.0) -> None:
        self.regressor = regressor
        self.weight = weight

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ShrunkToMean:
        self.mean_ = float(np.mean(y))
        self.regressor_ = clone(self.regressor).fit(X, y) if self.weight else None
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.regressor_ is None:
            return np.full(len(X), self.mean_)
        return self.mean_ + self.weight * (self.regressor_.predict(X) - self.mean_)


def clearly_better(
    residuals: np.ndarray, baseline: np.ndarray, groups: np.ndarray, standard_errors: float = 1.0
) -> bool:
    """Whether `residuals` beat `baseline`'s by more than one standard error across runs.

    The one-standard-error rule with the mean as the simplest model: the winner of a dozen
    cross-validated candidates is flattered by the choice, so it must stand out from run-to-run
    noise. On pure-noise features this still lets a shrunk model through now and then, at about
    1-2% more error than the mean; two standard errors kept the mean where models clearly helped.
    """
    gain = pd.Series(np.abs(baseline) - np.abs(residuals)).groupby(np.asarray(groups)).mean()
    if len(gain) < 2:
        return bool(gain.mean() > 0)
    return bool(gain.mean() > standard_errors * gain.std(ddof=1) / np.sqrt(len(gain)))


def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The split-conformal half-width: the ceil((n+1)·coverage)-th smallest absolute residual."""
    residuals = np.sort(np.abs(residuals))
    rank = math.ceil((len(residuals) + 1) * coverage)
    return float(residuals[min(rank, len(residuals)) - 1])


class HeadcastPredictor(BaseEstimator):
    """Benchmark scores (percent) from feature rows, with intervals and an out-of-distribution flag.

    `feature_sets`: column lists tried in order (default: all columns, or for `auto` the
    `label_free_feature_sets`, confidence first); with `auto`, a later set (e.g. heads and
    confidence after confidence alone) replaces the best model so far only when it beats it by
    `later_set_standard_errors` standard errors across runs (any model must beat the mean by one).
    """

    def __init__(
        self,
        estimator: str = "auto",
        coverage: float = COVERAGE,
        inner_folds: int = 5,
        feature_sets: list[list[str]] | None = None,
        later_set_standard_errors: float = LATER_SET_STANDARD_ERRORS,
    ) -> None:
        self.estimator = estimator
        self.coverage = coverage
        self.inner_folds = inner_folds
        self.feature_sets = feature_sets
        self.later_set_standard_errors = later_set_standard_errors

    def fit(
        self,
        X: pd.DataFrame,
        Y: pd.DataFrame,
        groups: pd.Series,
        *,
        contract: ExtractionContract | None = None,
    ) -> HeadcastPredictor:
        """`contract`: what the rows of `X` were extracted under, kept as `contract_` for every prediction
        path to check new rows against (None: rows without one, checked by schema only)."""
        self.contract_ = None if contract is None else contract.to_dict()
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; use one of {', '.join(ESTIMATORS)}")
        self.feature_names_ = list(X.columns)
        self.benchmarks_ = list(Y.columns)
        self.models_, self.half_widths_ = {}, {}
        self.chosen_, self.columns_ = {}, {}
        auto = self.estimator == "auto"
        names = tuple(REGRESSORS) if auto else (self.estimator,)
        weights = SHRINK_WEIGHTS if auto else (1.0,)
        default = (
            list(label_free_feature_sets(self.feature_names_).values()) if auto else [self.feature_names_]
        )
        feature_sets = self.feature_sets or default
        for benchmark in self.benchmarks_:
            known = Y[benchmark].notna().to_numpy()
            y, g = Y.loc[known, benchmark], np.asarray(groups)[known]
            folds = list(GroupFolds(self.inner_folds).split(y, y, g))
            mean = np.empty(len(y))
            for train, test in folds:
                mean[test] = y.iloc[train].mean()
            # (residuals, set index, regressor, weight); the mean first, so that it wins ties
            best = (y - np.clip(mean, 0, 100), 0, "mean", 0.0) if auto else None
            for index, columns in enumerate(feature_sets):
                x = X.loc[known, columns]
                candidates = []
                for name in names:  # one cross-validation per regressor; shrunk versions blend with the mean
                    predicted = cross_val_predict(make_regressor(name, x.shape[1]), x, y, groups=g, cv=folds)
                    for weight in weights:
                        residual = y - np.clip(mean + weight * (predicted - mean), 0, 100)
                        candidates.append((residual, index, name, weight))
                winner = min(candidates, key=lambda c: np.abs(c[0]).mean())
                bar = self.later_set_standard_errors if index else 1.0
                if best is None or clearly_better(winner[0], best[0], g, bar):
                    best = winner
            if best is None:  # unreachable: `feature_sets` is never empty, so the loop picked a winner
                raise ValueError(f"no feature set to fit {benchmark!r} on")
            residuals, index, name, weight = best
            columns = feature_sets[index]
            self.columns_[benchmark] = columns
            self.chosen_[benchmark] = name if weight in (0.0, 1.0) else f"{name}x{weight:g}"
            self.half_widths_[benchmark] = conformal_quantile(residuals, self.coverage)
            regressor = make_regressor(name, len(columns)) if weight else None
            self.models_[benchmark] = ShrunkToMean(regressor, weight).fit(X.loc[known, columns], y)
        # out of distribution: farther from every training row than any training row is from its nearest
        self.space_ = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
        )
        train = self.space_.fit_transform(X)
        self.neighbours_ = NearestNeighbors(n_neighbors=min(2, len(train))).fit(train)
        distances, _ = self.neighbours_.kneighbors(train)
        self.ood_radius_ = float(distances[:, -1].max())
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Columns `<benchmark>`, `<benchmark>_lower`, `<benchmark>_upper` per benchmark, then `ood`."""
        X = X[self.feature_names_]
        out = pd.DataFrame(index=X.index)
        for benchmark in self.benchmarks_:
            score = np.clip(self.models_[benchmark].predict(X[self.columns_[benchmark]]), 0, 100)
            width = self.half_widths_[benchmark]
            out[benchmark] = score
            out[f"{benchmark}_lower"] = np.clip(score - width, 0, 100)
            out[f"{benchmark}_upper"] = np.clip(score + width, 0, 100)
        distances, _ = self.neighbours_.kneighbors(self.space_.transform(X), n_neighbors=1)
        out["ood"] = distances[:, 0] > self.ood_radius_ * (1 + 1e-9)
        return out

    def feature_importance(self) -> pd.DataFrame:
        """Per benchmark, |coefficient| on standardised features (ridge) or split gain (trees)."""
        columns = {}
        for benchmark, model in self.models_.items():
            if model.regressor_ is None:
                continue
            final, used = model.regressor_[-1], self.columns_[benchmark]
            if hasattr(final, "coef_"):
                values = np.abs(final.coef_)
            elif hasattr(final, "booster_"):
                values = final.booster_.feature_importance(importance_type="gain")
            else:
                continue
            columns[benchmark] = pd.Series(values, index=used).reindex(self.feature_names_, fill_value=0.0)
        return pd.DataFrame(columns, index=self.feature_names_)
