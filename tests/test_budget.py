"""IRT, anchor choice and the budget estimator on synthetic item responses with a known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headcast.predictor.anchor_predictor import AnchorPredictor
from headcast.predictor.anchors import choose_anchors
from headcast.predictor.irt import IRT
from headcast.predictor.item_results import BenchmarkItems


def responses(n_runs=12, per_run=5, n_items=300, seed=0, probabilities=True):
    """Checkpoints of runs whose ability grows along training; 2PL items; gold probabilities or NaN."""
    rng = np.random.default_rng(seed)
    run_level = rng.normal(0, 1.2, n_runs)
    theta = (run_level[:, None] + np.linspace(-1, 1, per_run)[None, :]).ravel()
    groups = np.repeat(np.arange(n_runs), per_run)
    a, b = rng.uniform(0.5, 2.5, n_items), rng.normal(0, 1.2, n_items)
    p = 1 / (1 + np.exp(-(theta[:, None] * a - b)))
    correct = (rng.random(p.shape) < p).astype(float)
    prob = np.clip(p + rng.normal(0, 0.05, p.shape), 0, 1) if probabilities else np.full(p.shape, np.nan)
    data = BenchmarkItems(correct, prob, [f"item-{j}" for j in range(n_items)])
    return data, theta, groups, rng


def test_irt_recovers_the_abilities_order():
    data, theta, _, _ = responses()
    model = IRT(dims=1).fit(data.correct)
    sign = np.sign(np.corrcoef(model.theta_[:, 0], theta)[0, 1])
    assert stats.spearmanr(sign * model.theta_[:, 0], theta).statistic > 0.95


def test_irt_ability_from_no_items_is_the_prior_and_items_move_it():
    data, _, _, _ = responses()
    model = IRT(dims=1).fit(data.correct)
    none = model.ability(np.empty((2, 0)), np.array([], dtype=int))
    assert np.allclose(none, model.theta_mean_)
    items = np.arange(40)
    strong = model.ability(np.ones((1, 40)), items)
    weak = model.ability(np.zeros((1, 40)), items)
    assert model.score(strong, np.ones((1, 40)), items) > model.score(weak, np.zeros((1, 40)), items) + 0.3


def test_anchors_are_distinct_items_whose_weights_sum_to_one():
    data, _, _, _ = responses()
    anchors, weights = choose_anchors(data.correct, 16)
    assert len(set(anchors.tolist())) == len(anchors) == 16
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()


def test_anchors_survive_more_clusters_than_distinct_items():
    correct = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0]]), 3, axis=1)  # two distinct item columns
    anchors, weights = choose_anchors(correct, 4)
    assert len(set(anchors.tolist())) == len(anchors) and weights.sum() == pytest.approx(1.0)


def _held_out_mae(data, groups, features, k):
    errors, chosen = [], []
    for run in np.unique(groups):
        train, test = groups != run, groups == run
        model = AnchorPredictor(k).fit(
            data.rows(np.flatnonzero(train)), {name: f[train] for name, f in features.items()}, groups[train]
        )
        rows = np.flatnonzero(test)
        predicted = model.predict(
            data.correct[rows][:, model.anchors_],
            data.prob[rows][:, model.anchors_],
            {name: f[test] for name, f in features.items()},
        )
        errors.append(np.abs(predicted - data.score[rows]))
        chosen.append(model.chosen_)
    return float(np.concatenate(errors).mean()), chosen


def test_the_budget_estimator_beats_random_items_at_the_same_budget():
    data, _, groups, rng = responses()
    k = 8
    mae, _ = _held_out_mae(data, groups, {}, k)
    random_items = np.mean(
        [
            np.abs(100 * data.correct[:, rng.choice(300, k, replace=False)].mean(1) - data.score).mean()
            for _ in range(50)
        ]
    )
    assert mae < 0.6 * random_items


def test_features_that_carry_the_ability_are_taken_and_noise_is_left_out():
    data, theta, groups, rng = responses(probabilities=False)  # right/wrong only: two items tell little
    informative = (theta + rng.normal(0, 0.2, theta.shape))[:, None]
    noise = rng.normal(size=(len(theta), 3))
    _, with_signal = _held_out_mae(data, groups, {"heads": informative}, 2)
    _, with_noise = _held_out_mae(data, groups, {"heads": noise}, 2)
    assert sum("+heads" in method for method in with_signal) >= len(with_signal) // 2
    assert sum("+heads" in method for method in with_noise) <= 2
