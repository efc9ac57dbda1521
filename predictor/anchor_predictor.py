"""`AnchorPredictor`: a score from a budget of answered items: anchors, IRT and label-free features.

`AnchorPredictor` estimates one benchmark's full score from a checkpoint's answers on k anchor
items (right or wrong, and the gold answer's probability) and, optionally, label-free features
of the same prefill (confidence, head metrics). It tries several ways of combining them and
keeps, by grouped cross-validation inside the training data, the one that generalises to unseen
runs; methods that use the extra features (the heads) must beat the best method without them by
one (heads: two) standard errors across runs, so heads enter only where they help.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from headcast.predictor.anchors import choose_anchors
from headcast.predictor.irt import IRT
from headcast.predictor.item_results import BenchmarkItems
from headcast.predictor.models import LATER_SET_STANDARD_ERRORS, clearly_better
from headcast.predictor.regressors import COARSE_RIDGE_ALPHAS
from headcast.predictor.splits import GroupFolds

# Without label-free features: the anchors' weighted accuracy (0/1 or the gold probability), IRT's
# estimate from the anchors, a ridge on all of it, and a convex combination of these four. With a
# set of label-free features (`+set`):
# the IRT prior predicted from them (latent regression), the ridge given them too, and a
# precision-weighted blend of a features-only prediction with the best estimate from the anchors.
ANSWER_METHODS = ("anchors", "anchors-prob", "irt", "ridge")
BASE_METHODS = (*ANSWER_METHODS, "stack")  # stack: their convex combination, weights cross-fitted
FEATURE_METHODS = ("irt", "ridge", "blend")


_IRT_FITS: dict[tuple, IRT] = {}


def fitted_irt(correct: np.ndarray, dims: int, seed: int) -> IRT:
    """An IRT fit memoised by the content of `correct`: every budget k of a fold shares its items' fit."""
    key = (hashlib.sha1(np.ascontiguousarray(correct).tobytes()).hexdigest(), correct.shape, dims, seed)
    if key not in _IRT_FITS:
        if len(_IRT_FITS) >= 256:
            _IRT_FITS.pop(next(iter(_IRT_FITS)))
        _IRT_FITS[key] = IRT(dims, seed=seed).fit(correct)
    return _IRT_FITS[key]


def _ridge() -> RidgeCV:
    return RidgeCV(alphas=COARSE_RIDGE_ALPHAS)


def _scaled(features: np.ndarray) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()).fit(
        features
    )


@dataclasses.dataclass
class _Parts:
    """What the methods without label-free features need, fitted on one training set and budget."""

    anchors: np.ndarray
    weights: np.ndarray
    irt: IRT
    ridge: RidgeCV


@dataclasses.dataclass
class AbilityPrior:
    """Latent regression: IRT ability predicted from label-free features, with how far it misses on unseen
    runs as the prior's covariance (the training abilities' spread when there is one run only)."""

    scaler: Pipeline
    theta: RidgeCV
    cov: np.ndarray

    @classmethod
    def fit(cls, irt: IRT, features: np.ndarray, groups: np.ndarray) -> AbilityPrior:
        scaler = _scaled(features)
        x = scaler.transform(features)
        if len(set(groups)) >= 2:  # the prior's spread: how far the features miss abilities of unseen runs
            predicted = cross_val_predict(_ridge(), x, irt.theta_, groups=groups, cv=GroupFolds(4))
            residual = irt.theta_ - predicted.reshape(irt.theta_.shape)
        else:  # one run: no unseen run to learn from; the features earn no confidence
            residual = irt.theta_ - irt.theta_.mean(0)
        cov = np.atleast_2d(np.cov(residual.T)) + 1e-3 * np.eye(irt.dims)
        return cls(scaler, _ridge().fit(x, irt.theta_), cov)

    def mean(self, features: np.ndarray) -> np.ndarray:
        """The prior's mean ability [rows, dims] of checkpoints with these features."""
        return self.theta.predict(self.scaler.transform(features)).reshape(len(features), -1)


@dataclasses.dataclass
class _FeatureParts:
    """What the methods with one set of label-free features need, fitted on the same training set."""

    prior: AbilityPrior
    ridge: RidgeCV  # score from the anchors' answers and the features
    score: RidgeCV  # score from the features alone


def _answer_block(parts: _Parts, correct: np.ndarray, prob: np.ndarray) -> dict[str, np.ndarray]:
    """The base methods' estimates (percent) and the ridge's inputs, from answers on the anchors."""
    soft = np.where(np.isfinite(prob), prob, correct)
    estimates = {
        "anchors": 100 * correct @ parts.weights,
        "anchors-prob": 100 * soft @ parts.weights,
        "irt": 100 * parts.irt.score(parts.irt.ability(correct, parts.anchors), correct, parts.anchors),
    }
    design = np.column_stack(
        [correct, soft, *(estimates[m] / 100 for m in ("anchors", "anchors-prob", "irt"))]
    )
    return estimates | {"design": design}


def _fit_parts(data: BenchmarkItems, k: int, seed: int, irt: IRT) -> tuple[_Parts, np.ndarray]:
    """The base parts and the training checkpoints' ridge design (feature parts extend it)."""
    soft = np.where(np.isfinite(data.prob), data.prob, data.correct)
    anchors, weights = choose_anchors(soft, k, seed)
    parts = _Parts(anchors, weights, irt, _ridge())
    design = _answer_block(parts, data.correct[:, anchors], data.prob[:, anchors])["design"]
    parts.ridge.fit(design, data.score)
    return parts, design


def _fit_feature_parts(
    irt: IRT, design: np.ndarray, features: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> _FeatureParts:
    prior = AbilityPrior.fit(irt, features, groups)
    x = prior.scaler.transform(features)
    return _FeatureParts(
        prior=prior, ridge=_ridge().fit(np.column_stack([design, x]), y), score=_ridge().fit(x, y)
    )


def _predict_parts(
    parts: _Parts,
    feature_parts: dict[str, _FeatureParts],
    correct: np.ndarray,
    prob: np.ndarray,
    features: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every method's estimate (percent, unclipped), `method` or `method+set`; blends come later."""
    block = _answer_block(parts, correct, prob)
    out = {m: block[m] for m in ("anchors", "anchors-prob", "irt")}
    out["ridge"] = parts.ridge.predict(block["design"])
    for name, fp in feature_parts.items():
        x = fp.prior.scaler.transform(features[name])
        theta = parts.irt.ability(correct, parts.anchors, fp.prior.mean(features[name]), fp.prior.cov)
        out[f"irt+{name}"] = 100 * parts.irt.score(theta, correct, parts.anchors)
        out[f"ridge+{name}"] = fp.ridge.predict(np.column_stack([block["design"], x]))
        out[f"features+{name}"] = fp.score.predict(x)
    return out


def convex_weights(predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that best combine `predictions` [rows, methods] into `y`."""
    weights, _ = nnls(predictions, y)
    total = weights.sum()
    return weights / total if total > 0 else np.full(predictions.shape[1], 1 / predictions.shape[1])


def _mae(residual: np.ndarray) -> float:
    return float(np.abs(residual).mean())


class AnchorPredictor(BaseEstimator):
    """One benchmark's score (percent) from answers on `k` anchor items, plus label-free features.

    `fit(data, features, groups)`: per-item results of the training checkpoints, named sets of their
    label-free features (e.g. {"confidence": C, "heads": C+H}; may be empty) and their runs.
    Methods without features compete first; each feature set's methods replace the best so far
    only when they beat it by one standard error across runs (two for sets after the first).
    `chosen_` names the method kept, `chosen_by_set_` the best after each set (what a fit
    stopping at that set would keep).
    `predict(correct, prob, features)`: new checkpoints' answers on `anchors_` (in that order).
    """

    def __init__(self, k: int, inner_folds: int = 4, irt_dims: int = 1, seed: int = 0) -> None:
        self.k = k
        self.inner_folds = inner_folds
        self.irt_dims = irt_dims
        self.seed = seed

    def _fit_all(self, data: BenchmarkItems, features: dict[str, np.ndarray], groups: np.ndarray):
        irt = fitted_irt(data.correct, self.irt_dims, self.seed)
        parts, design = _fit_parts(data, self.k, self.seed, irt)
        feature_parts = {
            name: _fit_feature_parts(irt, design, values, data.score, groups)
            for name, values in features.items()
        }
        return parts, feature_parts

    def fit(
        self, data: BenchmarkItems, features: dict[str, np.ndarray] | None, groups: Sequence
    ) -> AnchorPredictor:
        features = features or {}
        runs = np.asarray(groups)  # the run of each row
        y = data.score
        folds = list(GroupFolds(self.inner_folds).split(y, groups=runs))
        oof: dict[str, np.ndarray] = {}
        for train, test in folds:
            parts, feature_parts = self._fit_all(
                data.rows(train), {n: f[train] for n, f in features.items()}, runs[train]
            )
            predicted = _predict_parts(
                parts,
                feature_parts,
                data.correct[test][:, parts.anchors],
                data.prob[test][:, parts.anchors],
                {n: f[test] for n, f in features.items()},
            )
            for method, values in predicted.items():
                oof.setdefault(method, np.empty(len(y)))[test] = values
        answers = np.column_stack([oof[m] for m in ANSWER_METHODS])
        oof["stack"] = np.empty(len(y))
        for train, test in folds:  # cross-fitted, so the stack's error is as honest as the others'
            oof["stack"][test] = answers[test] @ convex_weights(answers[train], y[train])
        self.stack_weights_ = convex_weights(answers, y)
        residual = {m: y - np.clip(oof[m], 0, 100) for m in BASE_METHODS}
        best = min(BASE_METHODS, key=lambda m: _mae(residual[m]))
        self.chosen_by_set_ = {"": best}
        self.blends_: dict[str, tuple[str, float]] = {}  # set -> (partner method, weight of the features)
        for index, name in enumerate(features):
            # precision weighting: each source weighted by the inverse of its cross-validated error variance
            base_var = np.var(residual[best]) + 1e-9
            weight = base_var / (base_var + np.var(y - oof[f"features+{name}"]) + 1e-9)
            self.blends_[name] = (best, float(weight))
            oof[f"blend+{name}"] = (1 - weight) * oof[best] + weight * oof[f"features+{name}"]
            methods = [f"{m}+{name}" for m in FEATURE_METHODS]
            residual |= {m: y - np.clip(oof[m], 0, 100) for m in methods}
            candidate = min(methods, key=lambda m: _mae(residual[m]))
            bar = LATER_SET_STANDARD_ERRORS if index else 1.0  # as in HeadcastPredictor
            if clearly_better(residual[candidate], residual[best], runs, bar):
                best = candidate
            self.chosen_by_set_[name] = best
        self.chosen_ = best
        self.cv_mae_ = {m: _mae(r) for m, r in residual.items()}
        self.cv_residuals_ = residual  # per method, cross-validated with runs held out
        self.residuals_ = residual[best]  # the conformal intervals' basis
        self.parts_, self.feature_parts_ = self._fit_all(data, features, runs)
        self.anchors_ = self.parts_.anchors
        self.anchor_items_ = [data.items[i] for i in self.anchors_]
        return self

    def predict(
        self,
        correct: np.ndarray,
        prob: np.ndarray,
        features: dict[str, np.ndarray] | None = None,
        method: str | None = None,
    ) -> np.ndarray:
        """Scores (percent) from answers on `anchors_`; `method` overrides the chosen one."""
        method = method or self.chosen_
        predicted = _predict_parts(
            self.parts_,
            self.feature_parts_,
            np.asarray(correct, float),
            np.asarray(prob, float),
            features or {},
        )
        predicted["stack"] = np.column_stack([predicted[m] for m in ANSWER_METHODS]) @ self.stack_weights_
        for name, (partner, weight) in self.blends_.items():
            predicted[f"blend+{name}"] = (1 - weight) * predicted[partner] + weight * predicted[
                f"features+{name}"
            ]
        return np.clip(predicted[method], 0, 100)
