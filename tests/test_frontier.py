"""The frontier on synthetic item responses: random items with a regression, ordering, budget, rounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headcast.predictor.dataset import build_dataset
from headcast.predictor.evaluation import ordering_counts
from headcast.predictor.frontier import FRONTIER_ESTIMATORS, ORDERING_GAPS, format_frontier, measure_frontier
from headcast.predictor.item_results import BenchmarkItems
from tests.predictor_data import synthetic_tables

BUDGETS = (0, 4, 16)


def test_ordering_counts_pairs_by_gap_and_credits_ties_half():
    actual = np.array([10.0, 12.0, 20.0, 40.0])
    count, right = ordering_counts(actual, actual, (1.0, 5.0, 25.0))
    assert count.tolist() == [6, 5, 2] and right.tolist() == [6, 5, 2]
    assert ordering_counts(actual, -actual, (1.0,))[1].tolist() == [0]
    assert ordering_counts(actual, np.zeros(4), (1.0,))[1].tolist() == [3]
    draws = np.stack([actual, -actual])  # one draw right on every pair, one wrong: half on average
    assert ordering_counts(actual, draws, (1.0,))[1].tolist() == [3]


@pytest.fixture(scope="module")
def synthetic():
    """Eight runs whose per-item answers follow their scores: 150 items a benchmark, no gold probabilities."""
    features, scores = synthetic_tables(n_runs=8)
    dataset = build_dataset(features, scores)
    rng = np.random.default_rng(1)
    items = {}
    for benchmark in dataset.benchmarks:
        chance = dataset.scores[benchmark].to_numpy()[:, None] / 100
        correct = (rng.random((len(chance), 150)) < chance).astype(float)
        items[benchmark] = BenchmarkItems(
            correct, np.full(correct.shape, np.nan), [str(j) for j in range(150)]
        )
        dataset.scores[benchmark] = items[benchmark].score
    return dataset, items


@pytest.fixture(scope="module")
def new_run(synthetic):
    return measure_frontier(*synthetic, "new-run", budgets=BUDGETS)


def test_a_regression_on_random_items_beats_their_plain_mean_among_runs_like_the_training_ones(new_run):
    mean = new_run.mean()
    assert mean.loc["subset_regression", 4] < mean.loc["subset", 4]
    assert mean.loc["subset_regression", 16] < mean.loc["subset_regression", 4]
    assert np.isnan(mean.loc["subset_regression", 0]) and np.isnan(mean.loc["subset", 0])
    se = new_run.standard_error()
    assert (se.loc[(slice(None), "hybrid"), 4] > 0).all()


def test_pairs_far_apart_are_ordered_right_more_often_than_close_ones(new_run):
    for estimator in ("subset", "subset_regression", "hybrid"):
        shares = new_run.ordering.loc[estimator, 4].to_numpy()
        assert 0.5 < shares[0] <= shares[-1] <= 1
    assert new_run.pairs.index.tolist() == list(ORDERING_GAPS)
    assert (np.diff(new_run.pairs.to_numpy()) <= 0).all() and new_run.pairs.iloc[0] > 0
    assert "held-out pairs ordered right" in format_frontier(new_run)


def test_an_allocated_budget_never_spends_more_than_the_equal_split(new_run):
    table = new_run.allocation
    assert table.index.tolist() == [8, 32] and (table["spent"] <= table.index).all()
    assert (table[["equal", "allocated"]] > 0).all().all()


def test_the_json_carries_every_estimator_ordering_and_allocation(new_run):
    result = json.loads(json.dumps(new_run.as_json()))
    assert set(result["mae"]["count"]) == set(FRONTIER_ESTIMATORS) == set(result["ordering"])
    assert result["ordering"]["hybrid"]["5"][BUDGETS.index(4)] is not None
    assert result["allocation"]["total"] == [8, 32] and len(result["mae_se"]["pope"]["hybrid"]) == 3
    assert result["adaptive_rounds"] == [0, 1, 4]  # rounds of four items: one prefill each


def test_the_stronger_protocol_predicts_only_the_best_quarter(synthetic):
    dataset, items = synthetic
    result = measure_frontier(dataset, items, "stronger", budgets=(0, 4))
    best = dataset.scores.mean(1).sort_values().index[-len(dataset.scores) // 4 :]
    assert sorted(result.errors.columns) == sorted(best)
    assert result.mean().loc["subset", 4] > 0
