"""The regressors `HeadcastPredictor` fits per benchmark, by name: the one registry behind every list.

`REGRESSORS` maps a name to a factory of a fresh, unfitted pipeline (missing features, e.g. no
boxes, are imputed). The command line offers and checks these names before any fit and must start
without sklearn (seconds of imports) or LightGBM, so each factory imports what it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# The ridge penalties tried (by leave-one-out) wherever a ridge is fitted. The anchored estimator fits
# hundreds of small ridges per benchmark and fold and keeps every other point, the grid its documented
# frontier numbers were measured with.
RIDGE_ALPHAS = np.logspace(-2, 4, 25)
COARSE_RIDGE_ALPHAS = RIDGE_ALPHAS[::2]


def _imputed(*steps) -> Pipeline:
    from sklearn.impute import SimpleImputer  # lazy: see the module docstring
    from sklearn.pipeline import make_pipeline

    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), *steps)


def _ridge(n_features: int) -> Pipeline:
    from sklearn.linear_model import RidgeCV  # lazy: see the module docstring
    from sklearn.preprocessing import StandardScaler

    return _imputed(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def _lightgbm(n_features: int) -> Pipeline:
    from lightgbm import LGBMRegressor  # lazy: see the module docstring

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
    return _imputed(booster)


def _knn(n_features: int) -> Pipeline:
    """Nonparametric; distances only over the features most related to the score."""
    from sklearn.feature_selection import SelectKBest, f_regression  # lazy: see the module docstring
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.preprocessing import StandardScaler

    select = SelectKBest(f_regression, k=min(8, n_features))
    return _imputed(StandardScaler(), select, KNeighborsRegressor(n_neighbors=5, weights="distance"))


REGRESSORS: dict[str, Callable[[int], Pipeline]] = {"ridge": _ridge, "lightgbm": _lightgbm, "knn": _knn}
# `auto` picks, per benchmark, the training mean or a regressor shrunk toward it, with the lowest
# grouped cross-validated error inside the training data, so the choice itself never sees held-out
# runs; a model replaces the mean only when its gain clears one standard error across runs.
# Shrinking trades a little of a noisy model's signal for much of its variance: with a handful of
# training runs that is usually the better bet.
ESTIMATORS = ("auto", *REGRESSORS)  # what `HeadcastPredictor(estimator=...)` and `headcast fit` accept


def make_regressor(name: str, n_features: int) -> Pipeline:
    """A fresh, unfitted pipeline for one benchmark with `n_features` columns."""
    if name not in REGRESSORS:
        raise ValueError(f"unknown estimator {name!r}; use one of {', '.join(ESTIMATORS)}")
    return REGRESSORS[name](n_features)
