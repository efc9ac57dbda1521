"""Adaptive anchors: per checkpoint, items asked in rounds, each next one the most informative at its ability.

Fluid Benchmarking (Hofmann et al., COLM 2025): the benchmark's 2PL IRT model, the checkpoint's ability
the MAP estimate under a prior predicted from its confidence (so the first round is already informed),
and each round's items those of highest Fisher information a²P(1 − P) at the current estimate. A round
is one prefill: every benchmark still short of its precision answers its next items together.
`ask_in_rounds` stops a benchmark when its 90% interval is at most ± `target_width` points or it has
answered `max_items`; the estimate is tinyBenchmarks' p-IRT from the items answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator

from headcast.predictor.anchor_predictor import AbilityPrior, fitted_irt
from headcast.predictor.item_results import BenchmarkItems
from headcast.predictor.models import COVERAGE

ADAPTIVE_ROUND = 4  # items per benchmark per round (one prefill), the frontier's and `headcast predict`'s


@dataclasses.dataclass
class Estimate:
    """One benchmark's adaptive estimate for one checkpoint: score and half-width in points, items asked."""

    score: float
    half_width: float
    asked: np.ndarray
    correct: np.ndarray
    theta: np.ndarray  # the MAP ability [dims] the score comes from


class AdaptiveAnchors(BaseEstimator):
    """One benchmark's IRT items and ability prior, for choosing each checkpoint's items as it answers.

    `fit(data, features, groups)`: per-item results of the training checkpoints, their label-free
    features for the prior (None: the training abilities' spread) and their runs.
    """

    def __init__(self, irt_dims: int = 1, coverage: float = COVERAGE, seed: int = 0) -> None:
        self.irt_dims = irt_dims
        self.coverage = coverage
        self.seed = seed

    def fit(
        self, data: BenchmarkItems, features: np.ndarray | None, groups: Sequence | np.ndarray
    ) -> AdaptiveAnchors:
        self.irt_ = fitted_irt(data.correct, self.irt_dims, self.seed)
        self.prior_ = None if features is None else AbilityPrior.fit(self.irt_, features, np.asarray(groups))
        self.items_ = list(data.items)
        return self

    def prior_means(self, features: np.ndarray | None, rows: int) -> np.ndarray:
        """[rows, dims]: where each checkpoint's ability starts before any answer."""
        if self.prior_ is None or features is None:
            return np.tile(self.irt_.theta_mean_, (rows, 1))
        return self.prior_.mean(features)

    @property
    def prior_cov(self) -> np.ndarray:
        return self.irt_.theta_cov_ if self.prior_ is None else self.prior_.cov

    def estimate(self, asked: np.ndarray, correct: np.ndarray, prior_mean: np.ndarray) -> Estimate:
        """The MAP ability from answers `correct` on items `asked`, as a score with a Laplace interval."""
        irt = self.irt_
        theta = irt.ability(correct[None, :], asked, prior_mean[None, :], self.prior_cov)
        p = irt.probabilities(theta)[0]
        slope = p * (1 - p)
        information = np.linalg.inv(self.prior_cov) + (irt.a_[asked] * slope[asked, None]).T @ irt.a_[asked]
        unseen = np.ones(len(p), dtype=bool)
        unseen[asked] = False
        gradient = (irt.a_[unseen] * slope[unseen, None]).sum(0) / len(p)  # d score / d theta
        sd = float(np.sqrt(gradient @ np.linalg.solve(information, gradient)))
        score = 100 * float(irt.score(theta, correct[None, :], asked)[0])
        return Estimate(score, 100 * norm.ppf(0.5 + self.coverage / 2) * sd, asked, correct, theta[0])

    def next_items(self, prior_mean: np.ndarray, estimate: Estimate | None, count: int) -> np.ndarray:
        """The `count` unasked items of highest Fisher information at the current ability estimate."""
        asked = np.empty(0, dtype=int) if estimate is None else estimate.asked
        theta = prior_mean if estimate is None else estimate.theta
        p = self.irt_.probabilities(theta[None, :])[0]
        information = (self.irt_.a_**2).sum(1) * p * (1 - p)
        information[asked] = -np.inf
        return np.argsort(-information, kind="stable")[:count]


Answer = Callable[[Mapping[str, Any]], Mapping[str, Any]]  # {benchmark: items} -> {benchmark: 0/1 each}


def ask_in_rounds(
    models: Mapping[str, AdaptiveAnchors],
    prior_means: Mapping[str, np.ndarray],
    answer: Answer,
    max_items: int,
    round_size: int = 4,
    target_width: float | None = None,
) -> tuple[dict[str, Estimate], int]:
    """One checkpoint's estimates after rounds of questions, and the number of rounds (prefills) asked.

    `answer({benchmark: item indices})` answers one round (one prefill) and returns 0/1 per item.
    A benchmark stops at `max_items`, or once its interval is at most ± `target_width` points.
    """
    estimates: dict[str, Estimate | None] = dict.fromkeys(models)
    rounds = 0
    while True:
        wanted = {}
        for benchmark, model in models.items():
            done = estimates[benchmark]
            so_far = 0 if done is None else len(done.asked)
            precise = done is not None and target_width is not None and done.half_width <= target_width
            count = min(round_size, max_items - so_far)
            if count > 0 and not precise:
                wanted[benchmark] = model.next_items(prior_means[benchmark], done, count)
        if not wanted:
            break
        answers = answer(wanted)
        rounds += 1
        for benchmark, items in wanted.items():
            done = estimates[benchmark]
            asked = items if done is None else np.concatenate([done.asked, items])
            correct = np.asarray(answers[benchmark], float)
            correct = correct if done is None else np.concatenate([done.correct, correct])
            estimates[benchmark] = models[benchmark].estimate(asked, correct, prior_means[benchmark])
    out = {}
    for benchmark, model in models.items():
        done = estimates[benchmark]
        if done is None:  # no item asked at all: the prior alone
            done = model.estimate(np.empty(0, dtype=int), np.empty(0), prior_means[benchmark])
        out[benchmark] = done
    return out, rounds
