"""Item response theory: a low-dimensional 2PL model of which checkpoint gets which item right.

P(checkpoint c answers item j) = σ(a_jᵀθ_c − b_j). Item parameters (a, b) are fitted once on the
training checkpoints' per-item results; a new checkpoint's ability θ is then the MAP estimate from
the few items it answered, under a Gaussian prior. The prior is where label-free evidence enters:
the training abilities' spread by default, or a prediction of θ from head features (latent
regression). At zero items the estimate is the prior; each answered item moves it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


class IRT(BaseEstimator):
    """Multidimensional 2PL, fitted by penalised joint maximum likelihood (L-BFGS, exact gradients).

    The L2 penalty on θ is a standard-normal prior on abilities (it also fixes the scale); the small
    one on a and b keeps items that every training checkpoint got right (or wrong) finite.
    """

    def __init__(self, dims: int = 1, item_penalty: float = 0.05, max_iter: int = 400, seed: int = 0) -> None:
        self.dims = dims
        self.item_penalty = item_penalty
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, correct: np.ndarray) -> IRT:
        """`correct`: [checkpoints, items] of 0/1 (NaN: not answered)."""
        y = np.asarray(correct, dtype=float)
        seen = np.isfinite(y)
        y = np.where(seen, y, 0.0)
        n, m, d = *y.shape, self.dims
        rng = np.random.default_rng(self.seed)
        start = np.concatenate([rng.normal(0, 0.1, n * d), np.full(m * d, 0.5), np.zeros(m)])

        def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return x[: n * d].reshape(n, d), x[n * d : (n + m) * d].reshape(m, d), x[(n + m) * d :]

        def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
            theta, a, b = unpack(x)
            z = theta @ a.T - b
            value = (seen * (_softplus(z) - y * z)).sum()
            value += 0.5 * (theta**2).sum() + 0.5 * self.item_penalty * ((a**2).sum() + (b**2).sum())
            g = seen * (expit(z) - y)
            grad = np.concatenate(
                [
                    (g @ a + theta).ravel(),
                    (g.T @ theta + self.item_penalty * a).ravel(),
                    -g.sum(0) + self.item_penalty * b,
                ]
            )
            return float(value), grad

        result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.theta_, self.a_, self.b_ = unpack(result.x)
        self.theta_mean_ = self.theta_.mean(0)
        self.theta_cov_ = np.atleast_2d(np.cov(self.theta_.T)) + 1e-3 * np.eye(d)
        return self

    def probabilities(self, theta: np.ndarray) -> np.ndarray:
        """[checkpoints, items]: each item's probability of being answered right at ability θ."""
        return expit(theta @ self.a_.T - self.b_)

    def ability(
        self,
        correct: np.ndarray,
        items: np.ndarray,
        prior_mean: np.ndarray | None = None,
        prior_cov: np.ndarray | None = None,
    ) -> np.ndarray:
        """MAP θ [checkpoints, dims] from answers `correct` [checkpoints, len(items)] on `items`.

        `prior_mean` is [dims] or one row per checkpoint; both default to the training abilities'.
        """
        y = np.asarray(correct, dtype=float)
        n, d = len(y), self.dims
        mean = np.broadcast_to(self.theta_mean_ if prior_mean is None else prior_mean, (n, d))
        precision = np.linalg.inv(self.theta_cov_ if prior_cov is None else prior_cov)
        a, b = self.a_[items], self.b_[items]
        if a.shape[0] == 0:
            return np.array(mean, dtype=float)

        def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
            theta = x.reshape(n, d)
            z = theta @ a.T - b
            offset = theta - mean
            value = (_softplus(z) - y * z).sum() + 0.5 * np.einsum("nd,de,ne->", offset, precision, offset)
            grad = (expit(z) - y) @ a + offset @ precision
            return float(value), grad.ravel()

        result = minimize(loss, np.array(mean, dtype=float).ravel(), jac=True, method="L-BFGS-B")
        return result.x.reshape(n, d)

    def score(self, theta: np.ndarray, correct: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Estimated accuracy (fraction): answered items count as answered, the rest as predicted.

        tinyBenchmarks' p-IRT: λ·(answered mean) + (1 − λ)·(predicted mean of the others), λ = k / N.
        """
        predicted = self.probabilities(theta)
        unseen = np.ones(predicted.shape[1], dtype=bool)
        unseen[items] = False
        k, total = len(items), predicted.shape[1]
        answered = np.asarray(correct, dtype=float).mean(1) if k else 0.0
        return (k * answered + predicted[:, unseen].sum(1)) / total
