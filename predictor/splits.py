"""The protocols' splitters: which checkpoints train and which are held out, in one place.

Each splitter follows scikit-learn (`split(X, y, groups)` and `get_n_splits`), so it can go straight
into `cross_val_predict`. The protocols, one per use, name a splitter over a `Dataset`:
`new-run` (whole runs held out), `new-family` (a whole model family held out), `during-training`
(a fold's runs have their first half of checkpoints benchmarked and their later ones predicted;
the other folds' runs are fully known), `stronger` (the best quarter of checkpoints by mean score
held out: checkpoints better than any seen, where estimators must extrapolate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from headcast.predictor.dataset import Dataset

Folds = list[tuple[np.ndarray, np.ndarray]]


class GroupFolds:
    """`GroupKFold` with at most as many folds as there are groups, so a few runs still split."""

    def __init__(self, n_splits: int = 5) -> None:
        self.n_splits = n_splits

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return min(self.n_splits, len(set(np.asarray(groups))))

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return GroupKFold(self.get_n_splits(X, y, groups)).split(X, y, groups)


class OneGroupHeldOut:
    """`LeaveOneGroupOut`, with no folds at all under two groups, where nothing would be left to train on."""

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        n_groups = len(set(np.asarray(groups)))
        return n_groups if n_groups >= 2 else 0

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.get_n_splits(X, y, groups):
            yield from LeaveOneGroupOut().split(X, y, groups)


class EarlyRowsInTraining:
    """`base`'s folds, where each held-out group keeps its first half of rows (by `order`) in training.

    The during-training protocol: a run benchmarked up to its middle predicts its later checkpoints.
    `order` (e.g. training steps) ranks rows within a group, ties by position; default: row order.
    """

    def __init__(self, base: GroupFolds | None = None) -> None:
        self.base = base

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return (self.base or GroupFolds()).get_n_splits(X, y, groups)

    def split(self, X, y=None, groups=None, order=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray(groups)
        order = np.arange(len(groups)) if order is None else np.asarray(order)
        rank = pd.Series(order).groupby(groups).rank(method="first").to_numpy()
        size = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
        early = rank <= np.ceil(size / 2)
        for train, test in (self.base or GroupFolds()).split(X, y, groups):
            yield np.sort(np.concatenate([train, test[early[test]]])), test[~early[test]]


class StrongestHeldOut:
    """One fold: the `share` of rows with the highest mean of `y` held out, every other row trains.

    The `stronger` protocol (Zhang, Dorner and Hardt 2025): during training the next checkpoint is
    usually the best yet, and an estimator learnt on weaker models must extrapolate to it. `y` is
    one score per row or a table of them (their mean, NaN skipped); ties keep row order.
    """

    def __init__(self, share: float = 0.25) -> None:
        self.share = share

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return 1 if y is not None and len(y) >= 2 else 0

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if not self.get_n_splits(X, y, groups):
            return
        values = np.asarray(y, dtype=float)
        mean = np.nanmean(values.reshape(len(values), -1), axis=1)
        held = min(len(mean) - 1, max(1, int(np.ceil(self.share * len(mean)))))
        top = np.argsort(-np.nan_to_num(mean, nan=-np.inf), kind="stable")[:held]
        test = np.zeros(len(mean), dtype=bool)
        test[top] = True
        yield np.flatnonzero(~test), np.flatnonzero(test)


def run_folds(dataset: Dataset, n_splits: int = 5) -> Folds:
    """Train/test indices that keep each training run whole (the `new-run` protocol)."""
    return list(GroupFolds(n_splits).split(dataset.features, groups=dataset.groups))


def family_folds(dataset: Dataset) -> Folds:
    """Leave one config family out (`new-family`; no folds with fewer than two families)."""
    return list(OneGroupHeldOut().split(dataset.features, groups=dataset.families))


def during_training_folds(dataset: Dataset) -> Folds:
    """Run folds whose held-out runs keep their first half of checkpoints (by step) in training."""
    splitter = EarlyRowsInTraining(GroupFolds())
    return list(splitter.split(dataset.features, groups=dataset.groups, order=dataset.steps))


def stronger_folds(dataset: Dataset) -> Folds:
    """The top quarter of checkpoints by mean score held out, trained on the rest (`stronger`)."""
    return list(StrongestHeldOut().split(dataset.features, dataset.scores))


PROTOCOL_FOLDS: dict[str, Callable[[Dataset], Folds]] = {
    "new-run": run_folds,
    "new-family": family_folds,
    "during-training": during_training_folds,
    "stronger": stronger_folds,
}
PROTOCOLS = tuple(PROTOCOL_FOLDS)


def protocol_folds(dataset: Dataset, protocol: str) -> Folds:
    """Train/test indices of one protocol (empty where the data cannot support it)."""
    if protocol not in PROTOCOL_FOLDS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOL_FOLDS[protocol](dataset)
