"""Which checkpoints of a training run get a full benchmark run, when only a few can.

A team can afford `budget` full evaluations of a run (a count, or a share of its checkpoints). After
each checkpoint, `RunSchedule.decide` says whether to benchmark it now and why, from what is known
then: the label-free prediction (its interval and OOD flag) and, once the run has real scores, the
change since its last benchmarked checkpoint (in steps, in the model's confidence, in its head
metrics). Every checkpoint left unbenchmarked gets an estimate: the label-free prediction until the
run has a real score, then the within-run estimator chosen on the training runs.

    ChangeEstimator       last real scores + a ridge on the feature change since (carry forward
                          with no columns); refitted with the run's own pairs as real scores arrive
    EvaluationScheduler   learns, on whole training runs held out in turn, which estimator to use,
                          how large each signal makes the error of not benchmarking (a non-negative
                          linear model), and the threshold on that error that spends the budget best;
                          then keeps that rule only if, out of fold by run, it beats the fixed
                          schedules (evenly spaced, last-only) on the training runs' trajectories
    RunSchedule           one run, checkpoint by checkpoint: `decide`, then `record` real scores

Signals and estimators are candidates: the fit keeps what the training folds show to work (a signal
whose weight comes out zero never triggers a benchmark).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, RidgeCV

from headcast.errors import HeadcastError
from headcast.predictor.dataset import Dataset
from headcast.predictor.evaluation import held_out_predictions
from headcast.predictor.models import COVERAGE, conformal_quantile
from headcast.predictor.pyfunc import prediction_json
from headcast.predictor.regressors import COARSE_RIDGE_ALPHAS
from headcast.predictor.splits import GroupFolds, run_folds
from headcast.schema import confidence_feature_columns, head_feature_columns

SIGNALS = ("unbenchmarked", "width", "ood", "steps", "confidence_change", "head_change")
CONFIDENCE_SIGNALS = SIGNALS[:-1]  # everything but the heads
# The product's: head signals (and the head change in the within-run estimator) did not lower the
# trajectory error beyond its standard error across runs on the small zoo (docs/estimation.md)
DEFAULT_SIGNALS = CONFIDENCE_SIGNALS
SIGNAL_WORDS = {
    "unbenchmarked": "no real score yet in this run",
    "width": "a wide interval",
    "ood": "outside the predictor's training distribution",
    "steps": "training steps since the last real score",
    "confidence_change": "the change in confidence since the last real score",
    "head_change": "the change in head metrics since the last real score",
}
LABEL_FREE = "label-free"
# where the budget goes: benchmark when the expected error of not doing so clears a threshold, or a
# fixed schedule (`FIXED_PLANS`)
EXPECTED_ERROR_RULE = "expected error"
POLICIES = (EXPECTED_ERROR_RULE, "evenly spaced", "last-only")
NONE_YET = ""  # the last benchmarked checkpoint of a run that has none
FIELDS = (("score", ""), ("lower", "_lower"), ("upper", "_upper"))


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether a checkpoint gets a full benchmark run now, why, and its scores estimated meanwhile."""

    step: int
    evaluate: bool
    reason: str
    need: float  # expected error (points) of this checkpoint's estimate if it is not benchmarked
    budget_left: int  # after this decision
    estimate: dict[str, dict[str, float]]  # benchmark -> {score, lower, upper}
    estimator: str  # which estimate it is: the label-free prediction or the within-run estimator

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_pairs(groups: pd.Series, steps: pd.Series) -> list[tuple[str, str]]:
    """Every (earlier, later) pair of checkpoints within a run, by step."""
    pairs = []
    for _, run in steps.groupby(groups):
        ordered = list(run.sort_values().index)
        pairs += [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    return pairs


def change_size(now: pd.DataFrame, then: pd.DataFrame, scale: pd.Series) -> np.ndarray:
    """Root-mean-square change of the columns, each in training standard deviations (missing: no change)."""
    if now.shape[1] == 0:
        return np.zeros(len(now))
    change = (now.to_numpy(float) - then.to_numpy(float)) / scale[now.columns].to_numpy()
    return np.sqrt(np.nanmean(np.nan_to_num(change) ** 2, axis=1))


def feature_scale(features: pd.DataFrame) -> pd.Series:
    """Each feature's training standard deviation, never zero."""
    return features.std().fillna(0.0) + 1e-9


class ChangeEstimator(BaseEstimator):
    """A checkpoint's scores: its run's last real scores plus a ridge on the feature change since then.

    With no `columns` it carries the last scores forward. Fitted on every (earlier, later) pair of
    checkpoints within the training runs; `update` adds a pair of the run's own real scores and refits.
    Intervals: the conformal quantile of the training pairs' residuals, out of fold by run.
    """

    def __init__(self, columns: Sequence[str] = (), coverage: float = COVERAGE) -> None:
        self.columns = columns
        self.coverage = coverage

    def fit(self, X: pd.DataFrame, Y: pd.DataFrame, groups: pd.Series, steps: pd.Series) -> ChangeEstimator:
        columns = list(self.columns)
        pairs = run_pairs(groups, steps)
        if not pairs:
            raise HeadcastError(
                "no run has two checkpoints to learn score changes from; give runs of 2+ steps"
            )
        earlier, later = [p[0] for p in pairs], [p[1] for p in pairs]
        self.columns_, self.benchmarks_ = columns, list(Y.columns)
        self.scale_ = feature_scale(X[columns])
        self.dx_ = self._change(X.loc[later, columns], X.loc[earlier, columns])
        self.dy_ = Y.loc[later].to_numpy(float) - Y.loc[earlier].to_numpy(float)
        self.pair_groups_ = groups.loc[later].to_numpy()
        self.half_widths_ = self._half_widths()
        self._refit()
        return self

    def _change(self, now: pd.DataFrame, then: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num((now.to_numpy(float) - then.to_numpy(float)) / self.scale_.to_numpy())

    def _ridges(self, dx: np.ndarray, dy: np.ndarray) -> list[RidgeCV | None]:
        """One ridge for all benchmarks when every pair has every score (one decomposition), else one each."""
        if not self.columns_:
            return [None] * dy.shape[1]
        if not np.isnan(dy).any():
            return [RidgeCV(alphas=COARSE_RIDGE_ALPHAS, alpha_per_target=True).fit(dx, dy)]
        ridges: list[RidgeCV | None] = []
        for b in range(dy.shape[1]):
            known = ~np.isnan(dy[:, b])
            ridges.append(
                RidgeCV(alphas=COARSE_RIDGE_ALPHAS).fit(dx[known], dy[known, b]) if known.sum() >= 2 else None
            )
        return ridges

    def _refit(self) -> None:
        self.ridges_ = self._ridges(self.dx_, self.dy_)

    def _predict_change(self, ridges: list[RidgeCV | None], dx: np.ndarray) -> np.ndarray:
        parts = [np.zeros((len(dx), 1)) if r is None else r.predict(dx).reshape(len(dx), -1) for r in ridges]
        return np.hstack(parts)

    def _half_widths(self) -> dict[str, float]:
        """Out-of-fold residuals of the score change, whole runs held out, as conformal half-widths."""
        residuals = np.full_like(self.dy_, np.nan)
        groups = self.pair_groups_
        for train, test in GroupFolds(5).split(self.dx_, groups=groups):
            ridges = self._ridges(self.dx_[train], self.dy_[train])
            residuals[test] = self.dy_[test] - self._predict_change(ridges, self.dx_[test])
        if len(set(groups)) < 2:
            residuals = self.dy_
        return {
            b: conformal_quantile(residuals[~np.isnan(residuals[:, i]), i], self.coverage)
            for i, b in enumerate(self.benchmarks_)
        }

    def update(self, then: pd.Series, then_scores: pd.Series, now: pd.Series, now_scores: pd.Series) -> None:
        """Learn from one more pair, of the run's own benchmarked checkpoints."""
        dx = self._change(now[self.columns_].to_frame().T, then[self.columns_].to_frame().T)
        dy = (now_scores[self.benchmarks_] - then_scores[self.benchmarks_]).to_numpy(float)[None, :]
        self.dx_, self.dy_ = np.vstack([self.dx_, dx]), np.vstack([self.dy_, dy])
        self.pair_groups_ = np.append(self.pair_groups_, "(this run)")
        self._refit()

    def predict(self, then: pd.DataFrame, then_scores: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
        """Rows of `now` from the row-aligned `then` (features) and `then_scores`: `<benchmark>`, `_lower`,
        `_upper`."""
        dx = self._change(now[self.columns_], then[self.columns_])
        score = np.clip(
            then_scores[self.benchmarks_].to_numpy(float) + self._predict_change(self.ridges_, dx), 0, 100
        )
        out = pd.DataFrame(index=now.index)
        for i, benchmark in enumerate(self.benchmarks_):
            width = self.half_widths_[benchmark]
            out[benchmark] = score[:, i]
            out[f"{benchmark}_lower"] = np.clip(score[:, i] - width, 0, 100)
            out[f"{benchmark}_upper"] = np.clip(score[:, i] + width, 0, 100)
        return out


def budget_count(budget: float, checkpoints: int) -> int:
    """Full evaluations a run of `checkpoints` may have: a count (int), or a share in (0, 1] of them."""
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0:
        raise HeadcastError(f"budget must be a count (0, 1, 2, ...) or a share in (0, 1], got {budget!r}")
    if isinstance(budget, float) and not budget.is_integer():
        if budget > 1:
            raise HeadcastError(f"a budget share must lie in (0, 1], got {budget}; or give a count")
        return max(1, round(budget * checkpoints))
    return min(int(budget), checkpoints)


def should_evaluate(need: float, left: int, remaining: int, threshold: float) -> str | None:
    """The rule, in one place: why to benchmark now (`forced`, `need`), or None to skip it."""
    if left <= 0:
        return None
    if remaining <= left:
        return "forced"
    return "need" if need >= threshold else None


def interval_width(prediction: pd.DataFrame, benchmarks: Sequence[str]) -> np.ndarray:
    """Mean interval half-width over the benchmarks, per row."""
    upper = prediction[[f"{b}_upper" for b in benchmarks]].to_numpy(float)
    lower = prediction[[f"{b}_lower" for b in benchmarks]].to_numpy(float)
    return (upper - lower).mean(axis=1) / 2


class EvaluationScheduler(BaseEstimator):
    """Learns from whole training runs when a checkpoint is worth a full benchmark run.

    `budget`: full evaluations per run, a count or a share of its checkpoints. `signals`: the candidate
    signals (`SIGNALS`; the default, `CONFIDENCE_SIGNALS`, leaves the heads out, of the estimator too).
    `policies`: the candidates for where the budget goes (`POLICIES`): the learnt rule, or a fixed
    schedule where that gives the training runs' trajectories less error (the rule judged out of fold,
    since in its own training runs it would always look best); the choice is `policy_`.
    `fit(X, Y, groups, steps, predictions)`: the training checkpoints' feature rows, real scores, runs,
    steps, and label-free predictions of them made without their run (`held_out_predictions` on run
    folds), since that is what a new run gets.
    """

    def __init__(
        self,
        budget: float = 2,
        signals: Sequence[str] = DEFAULT_SIGNALS,
        coverage: float = COVERAGE,
        policies: Sequence[str] = POLICIES,
    ) -> None:
        self.budget = budget
        self.signals = signals
        self.coverage = coverage
        self.policies = policies

    def _candidates(self, columns: Sequence[str]) -> dict[str, list[str] | None]:
        confidence, heads = confidence_feature_columns(columns), head_feature_columns(columns)
        candidates: dict[str, list[str] | None] = {LABEL_FREE: None, "carry forward": []}
        if confidence:
            candidates["carry + confidence change"] = confidence
        if "head_change" in self.signals:
            candidates["carry + head change"] = heads
            if confidence:
                candidates["carry + confidence and head change"] = confidence + heads
        return candidates

    def fit(
        self, X: pd.DataFrame, Y: pd.DataFrame, groups: pd.Series, steps: pd.Series, predictions: pd.DataFrame
    ) -> EvaluationScheduler:
        unknown = set(self.signals) - set(SIGNALS)
        if unknown:
            raise HeadcastError(f"unknown signal(s) {sorted(unknown)}; choose from {', '.join(SIGNALS)}")
        unknown = set(self.policies) - set(POLICIES)
        if unknown or not self.policies:
            raise HeadcastError(f"unknown policy(ies) {sorted(unknown)}; choose from {', '.join(POLICIES)}")
        budget_count(self.budget, 1)  # a bad budget is refused before the work
        self.benchmarks_ = list(Y.columns)
        self.signals_ = list(self.signals)
        self.scale_ = feature_scale(X)
        self.confidence_columns_ = confidence_feature_columns(X.columns)
        self.head_columns_ = head_feature_columns(X.columns)
        pairs = run_pairs(groups, steps)
        earlier, later = pd.Index([p[0] for p in pairs]), pd.Index([p[1] for p in pairs])
        truth = Y.loc[later]
        # each candidate estimator's out-of-fold estimate of every later checkpoint from every earlier one
        estimates, widths, self.cv_mae_ = {}, {}, {}
        for name, columns in self._candidates(X.columns).items():
            if columns is None:
                guess = predictions.loc[later].set_axis(range(len(later)))
            else:
                parts = []
                for train, test in GroupFolds(5).split(X, groups=groups):
                    model = ChangeEstimator(columns, self.coverage).fit(
                        X.iloc[train], Y.iloc[train], groups.iloc[train], steps.iloc[train]
                    )
                    held = np.flatnonzero(groups.loc[later].isin(groups.iloc[test].unique()))
                    parts.append(
                        model.predict(
                            X.loc[earlier[held]], Y.loc[earlier[held]], X.loc[later[held]]
                        ).set_axis(held)
                    )
                guess = pd.concat(parts).sort_index()
            error = np.nanmean(np.abs(guess[self.benchmarks_].to_numpy() - truth.to_numpy()), axis=1)
            estimates[name], widths[name] = error, interval_width(guess, self.benchmarks_)
            self.cv_mae_[name] = float(np.mean(error))
        self.estimator_name_ = min(self.cv_mae_, key=self.cv_mae_.__getitem__)
        columns = self._candidates(X.columns)[self.estimator_name_]
        self.estimator_ = (
            None if columns is None else ChangeEstimator(columns, self.coverage).fit(X, Y, groups, steps)
        )
        # the error of not benchmarking, per (checkpoint, its run's last benchmarked one or none), and why
        alone = np.nanmean(np.abs(predictions[self.benchmarks_].to_numpy() - Y.to_numpy()), axis=1)
        first = self._signal_table(
            X, None, steps, None, predictions, interval_width(predictions, self.benchmarks_)
        )
        first = first.assign(error=alone).set_axis(pd.MultiIndex.from_arrays([X.index, [NONE_YET] * len(X)]))
        chosen = self.estimator_name_
        later_signals = self._signal_table(
            X.loc[later],
            X.loc[earlier],
            steps.loc[later],
            steps.loc[earlier],
            predictions.loc[later],
            widths[chosen],
        )
        later_signals = later_signals.assign(error=estimates[chosen]).set_axis(
            pd.MultiIndex.from_arrays([later, earlier])
        )
        table = pd.concat([first, later_signals])
        runs = {run: list(checkpoints.sort_values().index) for run, checkpoints in steps.groupby(groups)}
        self.need_, self.threshold_ = self._rule(table, list(runs.values()))
        self.policy_mae_ = {
            policy: float(np.mean(self._held_out_trajectories(policy, table, runs)))
            for policy in self.policies
        }
        self.policy_ = min(self.policies, key=self.policy_mae_.__getitem__)  # ties: the order given
        return self

    def _rule(self, table: pd.DataFrame, runs: list[list[str]]) -> tuple[LinearRegression, float]:
        """The expected-error model and the threshold on it that spends the budget best on `runs`."""
        need = LinearRegression(positive=True).fit(table[self.signals_], table["error"])
        expected = pd.Series(need.predict(table[self.signals_]), index=table.index)
        expected_of, error_of = expected.to_dict(), table["error"].to_dict()
        best, best_error = np.inf, np.inf
        for threshold in sorted(set(np.round(expected, 6)) | {np.inf}, reverse=True):
            rule = functools.partial(_by_rule, need=expected_of, threshold=threshold)
            error = float(np.mean(self._trajectories(runs, error_of, rule)))
            if error < best_error - 1e-9:  # ties: the higher threshold, which keeps budget for later
                best, best_error = threshold, error
        return need, float(best)

    def _held_out_trajectories(
        self, policy: str, table: pd.DataFrame, runs: dict[str, list[str]]
    ) -> list[float]:
        """Every training checkpoint's error under `policy`, the rule learnt without its run's fold."""
        error_of = table["error"].to_dict()
        if policy != EXPECTED_ERROR_RULE:
            fixed = functools.partial(_by_plan, plan=FIXED_PLANS[policy], budget=self.budget)
            return self._trajectories(list(runs.values()), error_of, fixed)
        names = pd.Series(list(runs))
        errors = []
        for train, test in GroupFolds(5).split(names, groups=names):
            known = {c for run in names.iloc[train] for c in runs[run]}
            rows = table[table.index.get_level_values(0).isin(known)]
            need, threshold = self._rule(rows, [runs[run] for run in names.iloc[train]])
            expected = dict(zip(table.index, need.predict(table[self.signals_]), strict=True))
            rule = functools.partial(_by_rule, need=expected, threshold=threshold)
            errors += self._trajectories([runs[run] for run in names.iloc[test]], error_of, rule)
        return errors

    def _trajectories(
        self, runs: list[list[str]], error_of: Mapping[tuple[str, str], float], policy: Callable[..., bool]
    ) -> list[float]:
        """Each checkpoint's error along `runs` (checkpoints in step order) scheduled by `policy`, 0 where
        benchmarked (`error_of[checkpoint, last benchmarked]` otherwise); `policy(checkpoint, last, t, n,
        left)` says whether to benchmark."""
        errors = []
        for run in runs:
            left, last = budget_count(self.budget, len(run)), NONE_YET
            for t, checkpoint in enumerate(run):
                if left > 0 and policy(checkpoint, last, t, len(run), left):
                    left, last = left - 1, checkpoint
                    errors.append(0.0)
                else:
                    errors.append(error_of[checkpoint, last])
        return errors

    def plan(self, checkpoints: int) -> list[bool] | None:
        """The chosen fixed schedule for a run of `checkpoints`, or None when the rule decides."""
        if self.policy_ == EXPECTED_ERROR_RULE:
            return None
        return FIXED_PLANS[self.policy_](budget_count(self.budget, checkpoints), checkpoints)

    def _signal_table(
        self,
        now: pd.DataFrame,
        then: pd.DataFrame | None,
        steps_now: pd.Series,
        steps_then: pd.Series | None,
        predictions: pd.DataFrame,
        width: np.ndarray,
    ) -> pd.DataFrame:
        """Every candidate signal, row by row (`then`: the last benchmarked rows, or None: none yet)."""
        n, since = len(now), np.log1p(steps_now.to_numpy(float))
        if then is not None and steps_then is not None:
            since = since - np.log1p(steps_then.to_numpy(float))
        changes = {
            name: np.zeros(n) if then is None else change_size(now[columns], then[columns], self.scale_)
            for name, columns in (
                ("confidence_change", self.confidence_columns_),
                ("head_change", self.head_columns_),
            )
        }
        return pd.DataFrame(
            {
                "unbenchmarked": np.full(n, float(then is None)),
                "width": np.asarray(width, float),
                "ood": predictions["ood"].to_numpy(float),
                "steps": since,
                **changes,
            },
            index=now.index,
        )[list(SIGNALS)]

    def why_fixed(self) -> str:
        """Why the chosen fixed schedule benchmarks, in words: what it beat on the training runs."""
        beaten = ", ".join(
            f"{policy} {mae:.1f}" for policy, mae in self.policy_mae_.items() if policy != self.policy_
        )
        mae = self.policy_mae_[self.policy_]
        return f"the {self.policy_} schedule: trajectory error {mae:.1f} points on the training runs" + (
            f" against {beaten}" if beaten else ""
        )

    def start(self, checkpoints: int) -> RunSchedule:
        """The schedule of a new run that will have `checkpoints` checkpoints."""
        return RunSchedule(self, checkpoints)

    def explain(self, signals: pd.Series) -> str:
        """The signal that adds most to the expected error, in words."""
        contribution = pd.Series(self.need_.coef_, index=self.signals_) * signals[self.signals_]
        if contribution.max() <= 0:
            return "the error every checkpoint has"
        return SIGNAL_WORDS[str(contribution.idxmax())]


class RunSchedule:
    """One training run's schedule: `decide` at each checkpoint in order, `record` real scores as they come.

    Signals are measured from the last checkpoint whose real scores were recorded; a requested evaluation
    counts against the budget as soon as it is decided, whenever its scores arrive.
    """

    def __init__(self, scheduler: EvaluationScheduler, checkpoints: int) -> None:
        if checkpoints < 1:
            raise HeadcastError(f"a run needs at least one checkpoint to schedule, got {checkpoints}")
        self.scheduler, self.checkpoints = scheduler, checkpoints
        self.budget_left = budget_count(scheduler.budget, checkpoints)
        self.estimator = copy.deepcopy(scheduler.estimator_)  # refitted with this run's pairs only
        self.features: dict[int, pd.Series] = {}
        self.scores: dict[int, pd.Series] = {}  # step -> real scores
        self.decisions: list[Decision] = []

    def _last_real(self) -> int | None:
        return max(self.scores) if self.scores else None

    def decide(
        self,
        step: int,
        features: Mapping[str, float],
        prediction: Mapping[str, Mapping[str, Any]],
        plan: bool | None = None,
    ) -> Decision:
        """Benchmark this checkpoint now? `prediction`: its label-free prediction, benchmark -> {score,
        lower, upper, ood} (as `FittedModel.predict_json` gives it). `plan`: the caller's own fixed
        schedule instead of the scheduler's (its estimates and budget are kept all the same)."""
        sched = self.scheduler
        missing = set(sched.benchmarks_) - set(prediction)
        if missing:
            raise HeadcastError(
                f"the prediction lacks benchmark(s) {sorted(missing)} the scheduler was fitted on"
            )
        row = pd.Series(dict(features), dtype=object).reindex(sched.scale_.index).astype(float)
        self.features[step] = row
        predicted = pd.DataFrame(
            [
                {f"{b}{suffix}": prediction[b][field] for b in sched.benchmarks_ for field, suffix in FIELDS}
                | {"ood": float(any(bool(prediction[b]["ood"]) for b in sched.benchmarks_))}
            ]
        )
        last = self._last_real()
        if last is None or self.estimator is None:
            estimate, name = predicted, LABEL_FREE
        else:
            estimate = self.estimator.predict(
                self.features[last].to_frame().T, self.scores[last].to_frame().T, row.to_frame().T
            ).reset_index(drop=True)
            name = sched.estimator_name_
        then = None if last is None else self.features[last].to_frame().T
        signals = sched._signal_table(
            row.to_frame().T,
            then,
            pd.Series([step]),
            None if last is None else pd.Series([last]),
            predicted,
            interval_width(estimate, sched.benchmarks_),
        ).iloc[0]
        need = float(sched.need_.predict(signals[sched.signals_].to_frame().T)[0])
        remaining = max(1, self.checkpoints - len(self.decisions))
        why = should_evaluate(need, self.budget_left, remaining, sched.threshold_)
        chosen = None if plan is not None else sched.plan(self.checkpoints)
        if chosen is not None:
            plan = len(self.decisions) < len(chosen) and chosen[len(self.decisions)]
        if plan is not None:
            why = "plan" if plan else None
        if why == "plan":
            reason = "the fixed schedule" if chosen is None else sched.why_fixed()
        elif chosen is not None:
            reason = "budget spent" if self.budget_left <= 0 else f"not in the {sched.policy_} schedule"
        elif why == "forced":
            reason = f"budget left for each of the last {remaining} checkpoint(s)"
        elif why == "need":
            because = sched.explain(signals)
            reason = f"expected error {need:.1f} >= {sched.threshold_:.1f} points, most from {because}"
        elif self.budget_left <= 0:
            reason = "budget spent"
        elif plan is not None:
            reason = "not in the fixed schedule"
        else:
            reason = f"expected error {need:.1f} < {sched.threshold_:.1f} points"
        self.budget_left = max(0, self.budget_left - (why is not None))
        decision = Decision(
            step=int(step),
            evaluate=why is not None,
            reason=reason,
            need=need,
            budget_left=self.budget_left,
            estimate={
                b: {field: float(estimate[f"{b}{suffix}"].iloc[0]) for field, suffix in FIELDS[:3]}
                for b in sched.benchmarks_
            },
            estimator=name,
        )
        self.decisions.append(decision)
        return decision

    def record(self, step: int, scores: Mapping[str, float]) -> None:
        """Real scores of a checkpoint this schedule decided on: later estimates start from them."""
        if step not in self.features:
            raise HeadcastError(
                f"no checkpoint at step {step} was decided on; record scores of a decided step"
            )
        missing = set(self.scheduler.benchmarks_) - set(scores.keys())
        if missing:
            raise HeadcastError(f"the real scores of step {step} lack benchmark(s) {sorted(missing)}")
        real = pd.Series({b: float(scores[b]) for b in self.scheduler.benchmarks_})
        last = self._last_real()
        if self.estimator is not None and last is not None and last < step:
            self.estimator.update(self.features[last], self.scores[last], self.features[step], real)
        self.scores[step] = real


def trajectory_errors(
    schedule: RunSchedule,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    steps: pd.Series,
    predictions: pd.DataFrame,
    plan: Sequence[bool] | None = None,
) -> np.ndarray:
    """A run scheduled online, checkpoint by checkpoint in step order, with its real scores recorded as
    soon as they are asked for: each checkpoint's error (mean over benchmarks), 0 where benchmarked.
    `predictions`: the label-free predictions of its checkpoints; `plan`: a fixed schedule instead."""
    order = steps.sort_values().index
    rows = prediction_json(predictions.loc[order], schedule.scheduler.benchmarks_)
    errors = []
    for i, (checkpoint, prediction) in enumerate(zip(order, rows, strict=True)):
        step = int(steps[checkpoint])
        decision = schedule.decide(
            step, features.loc[checkpoint], prediction, None if plan is None else plan[i]
        )
        truth = scores.loc[checkpoint]
        if decision.evaluate:
            schedule.record(step, truth)
            errors.append(0.0)
        else:
            errors.append(
                float(np.nanmean([abs(decision.estimate[b]["score"] - truth[b]) for b in truth.index]))
            )
    return np.asarray(errors)


def evenly_spaced(budget: int, checkpoints: int) -> list[bool]:
    """Every (checkpoints / budget)-th checkpoint, the last one included: the usual fixed schedule."""
    chosen = {math.ceil((i + 1) * checkpoints / budget) - 1 for i in range(budget)} if budget else set()
    return [i in chosen for i in range(checkpoints)]


def last_only(budget: int, checkpoints: int) -> list[bool]:
    """The last `budget` checkpoints: benchmark the run where it ends."""
    return [i >= checkpoints - budget for i in range(checkpoints)]


FIXED_PLANS = {"evenly spaced": evenly_spaced, "last-only": last_only}


def _by_rule(checkpoint: str, last: str, t: int, n: int, left: int, *, need: dict, threshold: float) -> bool:
    return should_evaluate(need[checkpoint, last], left, n - t, threshold) is not None


def _by_plan(checkpoint: str, last: str, t: int, n: int, left: int, *, plan: Callable, budget: float) -> bool:
    return plan(budget_count(budget, n), n)[t]


def fit_scheduler(
    dataset: Dataset, budget: float, estimator: str = "auto", signals: Sequence[str] = DEFAULT_SIGNALS
) -> EvaluationScheduler:
    """A scheduler fitted on the checkpoints a predictor is fitted on: their label-free predictions come
    from models fitted without their run, as a new run's do (`estimator`: the predictor's)."""
    predictions = held_out_predictions(dataset, estimator, run_folds(dataset))
    return EvaluationScheduler(budget, signals).fit(
        dataset.features, dataset.scores, dataset.groups, dataset.steps, predictions
    )


def resolve_scheduler(
    scheduler: EvaluationScheduler | Dataset | None, budget: float | None
) -> EvaluationScheduler:
    """A fitted scheduler for `budget`: the one given (its budget must be `budget`, when given) or one
    fitted on the given training checkpoints."""
    if isinstance(scheduler, EvaluationScheduler):
        if not hasattr(scheduler, "threshold_"):
            raise HeadcastError("the EvaluationScheduler is not fitted; fit it, or pass the training Dataset")
        if budget is not None and budget != scheduler.budget:
            raise HeadcastError(
                f"the scheduler was fitted for budget={scheduler.budget}, not {budget}; refit it for {budget}"
            )
        return scheduler
    if isinstance(scheduler, Dataset):
        if budget is None:
            raise HeadcastError("scheduling needs budget=N (full evaluations per run) or a share in (0, 1]")
        return fit_scheduler(scheduler, budget)
    raise HeadcastError(
        "budget= needs scheduler=: a fitted EvaluationScheduler, or the Dataset of benchmarked checkpoints "
        "(build_dataset(features, scores)) to fit one on"
    )
