"""Adaptive anchors on synthetic 2PL responses: informative items first, rounds, and the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.predictor.adaptive import AdaptiveAnchors, ask_in_rounds
from tests.test_budget import responses


@pytest.fixture(scope="module")
def fitted():
    """IRT and a prior from a noisy view of the ability, fitted on ten runs; two runs held out."""
    data, theta, groups, rng = responses(n_runs=12, n_items=200, probabilities=False)
    features = (theta + rng.normal(0, 0.5, len(theta)))[:, None]
    train, test = np.flatnonzero(groups < 10), np.flatnonzero(groups >= 10)
    model = AdaptiveAnchors().fit(data.rows(train), features[train], groups[train])
    return model, data, features, test


def answers_of(data, row, log=None):
    def answer(wanted):
        if log is not None:
            log.append({b: len(items) for b, items in wanted.items()})
        return {b: data.correct[row, items] for b, items in wanted.items()}

    return answer


def test_the_first_items_of_an_able_checkpoint_are_harder_than_those_of_a_weak_one(fitted):
    model = fitted[0]
    ability = model.irt_.theta_[:, 0]
    difficulty = model.irt_.b_ / model.irt_.a_[:, 0]  # where each item is most informative
    strong = model.next_items(np.array([ability.max()]), None, 8)
    weak = model.next_items(np.array([ability.min()]), None, 8)
    assert difficulty[strong].mean() > difficulty[weak].mean()


def test_rounds_ask_every_benchmark_in_one_prefill_up_to_the_item_cap(fitted):
    model, data, features, test = fitted
    prior = model.prior_means(features[test[:1]], 1)[0]
    log: list[dict] = []
    estimates, rounds = ask_in_rounds(
        {"a": model, "b": model}, {"a": prior, "b": prior}, answers_of(data, test[0], log), max_items=10
    )
    assert rounds == 3 == len(log) and log[-1] == {"a": 2, "b": 2}
    assert all(len(set(e.asked)) == 10 for e in estimates.values())


def test_a_target_width_stops_a_benchmark_once_its_interval_is_that_narrow(fitted):
    model, data, features, test = fitted
    prior = model.prior_means(features[test[:1]], 1)[0]
    answer = answers_of(data, test[0])
    wide, rounds = ask_in_rounds({"a": model}, {"a": prior}, answer, 40, target_width=50)
    assert rounds == 1 and len(wide["a"].asked) == 4
    narrow, rounds = ask_in_rounds({"a": model}, {"a": prior}, answer, 40, target_width=0.1)
    assert rounds == 10 and narrow["a"].half_width < wide["a"].half_width


def test_answers_move_the_estimate_from_the_prior_toward_the_held_out_score(fitted):
    model, data, features, test = fitted
    priors = model.prior_means(features[test], len(test))
    error = {}
    for k in (0, 24):
        scores = [
            ask_in_rounds({"a": model}, {"a": priors[i]}, answers_of(data, row), max_items=k)[0]["a"].score
            for i, row in enumerate(test)
        ]
        error[k] = np.abs(np.array(scores) - data.score[test]).mean()
    assert error[24] < error[0]
