"""The protocols' splitters: runs stay whole, families are held out, early checkpoints stay in training."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_predict

from headcast.predictor.splits import EarlyRowsInTraining, GroupFolds, OneGroupHeldOut, protocol_folds

GROUPS = np.repeat(["a", "b", "c"], 4)
X = np.arange(len(GROUPS), dtype=float)[:, None]


def test_group_folds_keep_groups_whole_and_have_at_most_one_fold_per_group():
    splitter = GroupFolds(5)
    folds = list(splitter.split(X, groups=GROUPS))
    assert splitter.get_n_splits(X, groups=GROUPS) == len(folds) == 3
    for train, test in folds:
        assert not set(GROUPS[train]) & set(GROUPS[test])
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(GROUPS)))


def test_group_folds_serve_as_the_cv_of_cross_val_predict():
    predicted = cross_val_predict(LinearRegression(), X, X[:, 0], groups=GROUPS, cv=GroupFolds(5))
    assert predicted.shape == (len(GROUPS),)


def test_one_group_held_out_gives_no_folds_without_a_second_group():
    assert list(OneGroupHeldOut().split(X, groups=np.full(len(X), "only"))) == []
    folds = list(OneGroupHeldOut().split(X, groups=GROUPS))
    assert [sorted(set(GROUPS[test])) for _, test in folds] == [["a"], ["b"], ["c"]]


def test_held_out_groups_keep_their_first_half_by_order_in_training():
    order = np.tile([40, 10, 30, 20], 3)  # steps, not in row order
    folds = list(EarlyRowsInTraining(GroupFolds(3)).split(X, groups=GROUPS, order=order))
    assert len(folds) == 3
    for train, test in folds:
        (held_out,) = set(GROUPS[test])
        assert sorted(order[test]) == [30, 40]  # the later half is predicted
        assert {10, 20} <= set(order[train][GROUPS[train] == held_out])  # the earlier half trains
        assert not set(train) & set(test)


def test_an_unknown_protocol_names_the_known_ones():
    with pytest.raises(ValueError, match="new-run, new-family, during-training"):
        protocol_folds(None, "new-moon")
