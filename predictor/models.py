"""Regressors from feature rows to benchmark scores, with conformal intervals and an OOD flag.

`HeadcastPredictor` follows scikit-learn: `fit(X, Y, groups)` / `predict(X)`, plain DataFrames
in and out. One regressor per benchmark; the interval half-width is the conformal quantile of
out-of-fold residuals from grouped cross-validation inside the training data, so whole runs are
held out there too and the width reflects error on unseen runs, not on seen ones.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

REGRESSORS = ("ridge", "lightgbm", "knn")
# `auto` picks, per benchmark, the regressor (or the training mean) with the lowest grouped
# cross-validated error inside the training data, so the choice itself never sees held-out runs.
ESTIMATORS = ("auto", *REGRESSORS)
AUTO_CANDIDATES = (*REGRESSORS, "mean")


def make_regressor(name: str, n_features: int) -> Pipeline:
    """A fresh, unfitted pipeline for one benchmark; missing features (no boxes) are imputed."""
    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    if name == "ridge":
        return make_pipeline(impute, StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))
    if name == "lightgbm":
        booster = LGBMRegressor(
            n_estimators=300,
            learning_rate=0.03,
            num_leaves=7,
            min_child_samples=3,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            random_state=0,
            verbose=-1,
            n_jobs=1,
        )
        return make_pipeline(impute, booster)
    if name == "knn":  # nonparametric; distances only over the features most related to the score
        select = SelectKBest(f_regression, k=min(8, n_features))
        return make_pipeline(
            impute, StandardScaler(), select, KNeighborsRegressor(n_neighbors=5, weights="distance")
        )
    if name == "mean":  # the fallback when no feature helps: the training runs' mean score
        return make_pipeline(DummyRegressor(strategy="mean"))
    raise ValueError(f"unknown estimator {name!r}; use one of {', '.join(ESTIMATORS)}")


def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The split-conformal half-width: the ceil((n+1)·coverage)-th smallest absolute residual."""
    residuals = np.sort(np.abs(residuals))
    rank = math.ceil((len(residuals) + 1) * coverage)
    return float(residuals[min(rank, len(residuals)) - 1])


class HeadcastPredictor(BaseEstimator):
    """Benchmark scores (percent) from feature rows, with intervals and an out-of-distribution flag."""

    def __init__(self, estimator: str = "auto", coverage: float = 0.9, inner_folds: int = 5) -> None:
        self.estimator = estimator
        self.coverage = coverage
        self.inner_folds = inner_folds

    def fit(self, X: pd.DataFrame, Y: pd.DataFrame, groups: pd.Series) -> HeadcastPredictor:
        self.feature_names_ = list(X.columns)
        self.benchmarks_ = list(Y.columns)
        self.models_, self.half_widths_ = {}, {}
        self.chosen_ = {}
        candidates = AUTO_CANDIDATES if self.estimator == "auto" else (self.estimator,)
        for benchmark in self.benchmarks_:
            known = Y[benchmark].notna().to_numpy()
            x, y, g = X[known], Y.loc[known, benchmark], np.asarray(groups)[known]
            folds = GroupKFold(n_splits=min(self.inner_folds, len(set(g))))
            residuals = {
                name: y
                - np.clip(
                    cross_val_predict(make_regressor(name, X.shape[1]), x, y, groups=g, cv=folds), 0, 100
                )
                for name in candidates
            }
            best = min(residuals, key=lambda name: np.abs(residuals[name]).mean())
            self.chosen_[benchmark] = best
            self.half_widths_[benchmark] = conformal_quantile(residuals[best], self.coverage)
            self.models_[benchmark] = make_regressor(best, X.shape[1]).fit(x, y)
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
            score = np.clip(self.models_[benchmark].predict(X), 0, 100)
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
            final = model[-1]
            if hasattr(final, "coef_"):
                columns[benchmark] = np.abs(final.coef_)
            elif hasattr(final, "booster_"):
                columns[benchmark] = final.booster_.feature_importance(importance_type="gain")
        return pd.DataFrame(columns, index=self.feature_names_)
