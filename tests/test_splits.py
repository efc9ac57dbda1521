"""The protocols' splitters: runs stay whole, families are held out, early checkpoints stay in training,
the strongest checkpoints are predicted from weaker ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_predict

from headcast.predictor.splits import (
    EarlyRowsInTraining,
    GroupFolds,
    OneGroupHeldOut,
    StrongestHeldOut,
    protocol_folds,
)
from tests.predictor_data import synthetic_tables

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
    with pytest.raises(ValueError, match="new-run, new-family, during-training, stronger"):
        protocol_folds(None, "new-moon")


def test_the_strongest_quarter_by_mean_score_is_held_out_and_everything_weaker_trains():
    scores = np.column_stack([np.arange(12.0), np.arange(12.0)[::-1] * 0.5 + 2 * np.arange(12.0)])
    scores[3, 0] = np.nan  # a score not measured: the mean of the others stands
    (train, test), *rest = list(StrongestHeldOut(0.25).split(X, scores, GROUPS))
    assert (
        not rest and sorted(test) == [9, 10, 11] and sorted(np.concatenate([train, test])) == list(range(12))
    )
    mean = np.nanmean(scores, axis=1)
    assert mean[test].min() > mean[train].max()


def test_the_strongest_held_out_serve_cross_val_predict_and_leave_training_rows_with_few_rows():
    y = X[:, 0] ** 2
    assert StrongestHeldOut().get_n_splits(X, y) == 1 and StrongestHeldOut().get_n_splits(X[:1], y[:1]) == 0
    assert [len(t) for _, t in StrongestHeldOut(0.99).split(X[:2], y[:2])] == [1]  # one row still trains
    ((_, test),) = StrongestHeldOut().split(X, y)
    model = LinearRegression().fit(np.delete(X, test, 0), np.delete(y, test))
    assert (model.predict(X[test]) < y[test]).all()  # a line learnt on the weaker rows undershoots


def test_the_stronger_protocol_holds_out_a_quarter_of_the_dataset_s_checkpoints():
    from headcast.predictor.dataset import build_dataset

    features, scores = synthetic_tables(n_runs=4)
    dataset = build_dataset(features, scores)
    ((train, test),) = protocol_folds(dataset, "stronger")
    assert len(test) == 5 and len(train) == 15
    assert dataset.scores.iloc[test].mean(1).min() > dataset.scores.iloc[train].mean(1).max()
