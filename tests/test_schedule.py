"""The evaluation scheduler: budgets spent exactly, reasons given, real scores fed into later estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.experiments.scheduling import LABEL_FREE_ONLY, POLICIES, summarise, trajectory_table
from headcast.predictor import build_dataset, held_out_predictions, run_folds
from headcast.predictor.schedule import (
    CONFIDENCE_SIGNALS,
    EXPECTED_ERROR_RULE,
    SIGNALS,
    ChangeEstimator,
    EvaluationScheduler,
    budget_count,
    evenly_spaced,
    last_only,
    trajectory_errors,
)
from headcast.predictor.schedule import POLICIES as POLICY_CANDIDATES
from tests.predictor_data import synthetic_tables


@pytest.fixture(scope="module")
def fitted():
    """A scheduler fitted on seven synthetic runs, and the eighth run to schedule."""
    dataset = build_dataset(*synthetic_tables(8))
    predictions = held_out_predictions(dataset, "ridge", run_folds(dataset))
    train = dataset.groups != "run7"
    scheduler = EvaluationScheduler(2, SIGNALS).fit(
        dataset.features[train],
        dataset.scores[train],
        dataset.groups[train],
        dataset.steps[train],
        predictions[train],
    )
    run = dataset.steps[~train].sort_values().index
    return scheduler, dataset, predictions, run


def prediction_of(predictions: pd.DataFrame, checkpoint: str, benchmarks: list[str]) -> dict:
    row = predictions.loc[checkpoint]
    return {
        b: {"score": row[b], "lower": row[f"{b}_lower"], "upper": row[f"{b}_upper"], "ood": bool(row["ood"])}
        for b in benchmarks
    }


def schedule_run(scheduler, dataset, predictions, run, record: bool = True):
    schedule = scheduler.start(len(run))
    decisions = []
    for checkpoint in run:
        decision = schedule.decide(
            int(dataset.steps[checkpoint]),
            dataset.features.loc[checkpoint].to_dict(),
            prediction_of(predictions, checkpoint, dataset.benchmarks),
        )
        decisions.append(decision)
        if decision.evaluate and record:
            schedule.record(decision.step, dataset.scores.loc[checkpoint].to_dict())
    return schedule, decisions


@pytest.mark.parametrize("budget", [0, 1, 3, 5, 0.4])
def test_every_budget_is_spent_exactly_and_each_decision_says_why(fitted, budget):
    _, dataset, predictions, run = fitted
    train = dataset.groups != "run7"
    scheduler = EvaluationScheduler(budget).fit(
        *(part[train] for part in (dataset.features, dataset.scores, dataset.groups, dataset.steps)),
        predictions[train],
    )
    _, decisions = schedule_run(scheduler, dataset, predictions, run)
    assert sum(d.evaluate for d in decisions) == budget_count(budget, len(run))
    fixed = f"the {scheduler.policy_} schedule: trajectory error"
    for d in decisions:
        if d.evaluate:
            assert d.reason.startswith(("expected error", "budget left", fixed)), d.reason
        else:
            assert d.reason.startswith(("expected error", "budget spent", "not in the")), d.reason
    assert [d.budget_left for d in decisions][-1] == 0


def test_a_fixed_schedule_is_chosen_only_where_the_training_runs_favour_it_out_of_fold(fitted):
    _, dataset, predictions, run = fitted
    parts = (dataset.features, dataset.scores, dataset.groups, dataset.steps, predictions)
    for budget in (1, 2):
        scheduler = EvaluationScheduler(budget).fit(*parts)
        assert set(scheduler.policy_mae_) == set(POLICY_CANDIDATES)
        assert scheduler.policy_mae_[scheduler.policy_] == min(scheduler.policy_mae_.values())
        plan = scheduler.plan(len(run))
        if scheduler.policy_ == EXPECTED_ERROR_RULE:
            assert plan is None
        else:
            _, decisions = schedule_run(scheduler, dataset, predictions, run)
            assert [d.evaluate for d in decisions] == plan
            assert all(d.reason.startswith("the ") for d in decisions if d.evaluate)
    rule_only = EvaluationScheduler(1, policies=[EXPECTED_ERROR_RULE]).fit(*parts)
    assert rule_only.policy_ == EXPECTED_ERROR_RULE and rule_only.plan(5) is None
    last = EvaluationScheduler(1, policies=["last-only"]).fit(*parts)
    _, decisions = schedule_run(last, dataset, predictions, run)
    assert [d.evaluate for d in decisions] == [False] * 4 + [True]
    assert decisions[-1].reason == "the last-only schedule: trajectory error " + (
        f"{last.policy_mae_['last-only']:.1f} points on the training runs"
    )
    with pytest.raises(HeadcastError, match="unknown policy"):
        EvaluationScheduler(1, policies=["every other"]).fit(*parts)


def test_real_scores_replace_the_label_free_estimate_once_recorded(fitted):
    scheduler, dataset, predictions, run = fitted
    schedule, decisions = schedule_run(scheduler, dataset, predictions, run)
    first_real = next(i for i, d in enumerate(decisions) if d.evaluate)
    assert all(d.estimator == "label-free" for d in decisions[: first_real + 1])
    if scheduler.estimator_ is not None:
        assert all(d.estimator == scheduler.estimator_name_ for d in decisions[first_real + 1 :])
    assert set(schedule.scores) == {d.step for d in decisions if d.evaluate}


def test_the_change_in_features_beats_carrying_the_score_forward_when_features_track_ability(fitted):
    """Synthetic runs whose head features move with ability: the head change must say more than nothing."""
    scheduler = fitted[0]
    assert scheduler.cv_mae_["carry + head change"] < 0.8 * scheduler.cv_mae_["carry forward"]
    assert "carry + confidence change" not in scheduler.cv_mae_  # these rows have no confidence features


def test_carry_forward_carries_and_own_pairs_refit_the_change_model(fitted):
    _, dataset, _, run = fitted
    x, y = dataset.features, dataset.scores
    carry = ChangeEstimator().fit(x, y, dataset.groups, dataset.steps)
    then, now = run[:1], run[3:4]
    carried = carry.predict(x.loc[then], y.loc[then], x.loc[now])
    assert np.allclose(carried[dataset.benchmarks].to_numpy(), y.loc[then].to_numpy())
    change = ChangeEstimator(["all.visual_mass.mean"]).fit(x, y, dataset.groups, dataset.steps)
    before = change.predict(x.loc[then], y.loc[then], x.loc[now])
    for _ in range(20):  # the run's own pairs, told as often as all training pairs together
        change.update(x.loc[run[0]], y.loc[run[0]], x.loc[run[3]], y.loc[run[3]])
    after = change.predict(x.loc[then], y.loc[then], x.loc[now])
    miss = lambda p: float(np.abs(p[dataset.benchmarks].to_numpy() - y.loc[now].to_numpy()).mean())  # noqa: E731
    assert miss(after) < miss(before)


def test_bad_budgets_signals_and_steps_are_refused(fitted):
    scheduler, dataset, predictions, _ = fitted
    for budget in (-1, 1.5, "2", True):
        with pytest.raises(HeadcastError, match="budget"):
            budget_count(budget, 5)
    x, y, g, s = dataset.features, dataset.scores, dataset.groups, dataset.steps
    with pytest.raises(HeadcastError, match="unknown signal"):
        EvaluationScheduler(2, signals=("width", "loss")).fit(x, y, g, s, predictions)
    schedule = scheduler.start(5)
    with pytest.raises(HeadcastError, match="no checkpoint at step 10"):
        schedule.record(10, y.iloc[0].to_dict())
    with pytest.raises(HeadcastError, match="lacks benchmark"):
        only_count = {"count": {"score": 1, "lower": 0, "upper": 2, "ood": False}}
        schedule.decide(10, x.iloc[0].to_dict(), only_count)


def test_the_default_confidence_signals_leave_the_heads_out_of_estimator_and_signals(fitted):
    _, dataset, predictions, _ = fitted
    x, y, g, s = dataset.features, dataset.scores, dataset.groups, dataset.steps
    scheduler = EvaluationScheduler(2).fit(x, y, g, s, predictions)
    assert scheduler.signals_ == list(CONFIDENCE_SIGNALS)
    assert "head_change" not in scheduler.signals_
    assert not any("head" in name for name in scheduler.cv_mae_)


def test_fixed_schedules_benchmark_where_they_say_and_the_table_holds_every_policy(fitted):
    scheduler, dataset, predictions, run = fitted
    for budget in (1, 2, 3):
        plan = evenly_spaced(budget, len(run))
        assert sum(plan) == budget and plan[-1] and last_only(budget, len(run))[-budget:] == [True] * budget
    rows = run.tolist()
    x, y, s = dataset.features.loc[rows], dataset.scores.loc[rows], dataset.steps.loc[rows]
    errors = trajectory_errors(scheduler.start(len(run)), x, y, s, predictions.loc[rows], evenly_spaced(2, 5))
    assert np.flatnonzero(errors == 0).tolist() == [2, 4] and (errors[[0, 1, 3]] > 0).all()
    table = trajectory_table(build_dataset(*synthetic_tables(6, seed=1)), "ridge", budgets=(2,))
    assert set(table["policy"]) == {*POLICIES, LABEL_FREE_ONLY} and table.groupby("policy").size().eq(6).all()
    summary = summarise(table)
    assert list(summary.index) == [
        LABEL_FREE_ONLY,
        *POLICIES,
        "heads - confidence",
        "scheduler - evenly spaced",
    ]
    assert " ± " in summary.iloc[0, 0]
