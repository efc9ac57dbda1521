"""Dataset joining, the estimator's fit/predict contract, intervals, OOD flag and baselines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from headcast.contract import ExtractionContract, fitted_contract
from headcast.errors import HeadcastError
from headcast.predictor.dataset import build_dataset, run_of, step_of
from headcast.predictor.evaluation import (
    held_out_predictions,
    score_predictions,
    subset_baseline_mae,
)
from headcast.predictor.models import (
    ESTIMATORS,
    HeadcastPredictor,
    ShrunkToMean,
    clearly_better,
    make_regressor,
)
from headcast.predictor.scores import read_scores
from headcast.predictor.splits import run_folds
from tests.predictor_data import synthetic_tables


@pytest.fixture(scope="module")
def dataset():
    features, scores = synthetic_tables(n_runs=10)
    return build_dataset(features, scores)


def test_checkpoints_are_grouped_by_run_and_ordered_by_step():
    assert run_of("llama-frozen/0300") == "llama-frozen" and step_of("llama-frozen/0300") == 300
    assert step_of("out/checkpoint-1500") == 1500 and np.isnan(step_of("final"))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_beats_the_mean_on_unseen_runs(dataset, estimator):
    predicted = held_out_predictions(dataset, estimator, run_folds(dataset))
    metrics = score_predictions(dataset, predicted)
    spread = dataset.scores.sub(dataset.scores.mean()).abs().mean()
    assert (metrics["mae"] < 0.6 * spread).all()
    assert (metrics["spearman"] > 0.7).all()


def test_shrinking_blends_the_regressor_with_the_training_mean(dataset):
    x, y = dataset.features, dataset.scores["count"]
    full = ShrunkToMean(make_regressor("ridge", x.shape[1]), 1.0).fit(x, y).predict(x)
    half = ShrunkToMean(make_regressor("ridge", x.shape[1]), 0.5).fit(x, y).predict(x)
    none = ShrunkToMean(make_regressor("ridge", x.shape[1]), 0.0).fit(x, y).predict(x)
    assert np.allclose(none, y.mean()) and np.allclose(half, (full + y.mean()) / 2)


def test_a_model_replaces_the_mean_only_when_its_gain_stands_out_from_run_to_run_noise():
    runs = np.repeat(np.arange(6), 4)
    mean_residuals = np.full(24, 10.0)
    steady = np.full(24, 9.0)  # one point better on every run
    erratic = np.where(runs % 2 == 0, 5.0, 13.0)  # one point better on average, +5 / -3 by run
    assert clearly_better(steady, mean_residuals, runs)
    assert not clearly_better(erratic, mean_residuals, runs)


def test_auto_uses_a_model_where_features_are_informative(dataset):
    informed = HeadcastPredictor("auto").fit(dataset.features, dataset.scores, dataset.groups)
    assert "mean" not in informed.chosen_.values()


def test_a_predictor_carries_the_contract_it_was_fitted_with_and_none_without(dataset):
    contract = ExtractionContract("answer-mean", 0.3, 0.1, "float32", "aaaa")
    args = dataset.features, dataset.scores, dataset.groups
    assert fitted_contract(HeadcastPredictor("ridge").fit(*args, contract=contract)) == contract
    assert fitted_contract(HeadcastPredictor("ridge").fit(*args)) is None


def test_an_unknown_estimator_is_refused_before_any_fit(dataset):
    with pytest.raises(ValueError, match="auto, ridge, lightgbm, knn"):
        HeadcastPredictor("svm").fit(dataset.features, dataset.scores, dataset.groups)


def test_conformal_intervals_cover_about_the_nominal_share_of_unseen_runs(dataset):
    metrics = score_predictions(dataset, held_out_predictions(dataset, "ridge", run_folds(dataset)))
    assert metrics["coverage"].between(0.75, 1.0).all()


def test_rows_unlike_any_training_row_are_flagged_out_of_distribution(dataset):
    model = HeadcastPredictor("ridge").fit(dataset.features, dataset.scores, dataset.groups)
    assert not model.predict(dataset.features)["ood"].any()
    far = dataset.features.head(1) + 10.0
    prediction = model.predict(far)
    assert prediction["ood"].all()
    assert list(prediction.columns) == [
        "count",
        "count_lower",
        "count_upper",
        "pope",
        "pope_lower",
        "pope_upper",
        "ood",
    ]
    assert (prediction["count_lower"] <= prediction["count"]).all() and prediction.filter(like="count").le(
        100
    ).all().all()


def test_subset_baseline_error_shrinks_with_more_items_and_vanishes_on_the_whole_benchmark():
    scores = pd.DataFrame({"b": [50.0, 80.0]})
    items = pd.DataFrame({"b": [100, 100]})
    small, large, whole = (
        subset_baseline_mae(scores, items, budget)[["b"]].iloc[0] for budget in (8, 50, 100)
    )
    assert small > large > whole == 0.0
    # the hypergeometric draw's expected error at k=8, p=0.5 is about 14 points
    assert 10 < small < 18


def test_scores_and_features_must_name_the_same_checkpoints():
    features, scores = synthetic_tables(n_runs=4)
    with pytest.raises(HeadcastError, match="have scores but no features: run0/10"):
        build_dataset(features[features["checkpoint"] != "run0/10"], scores)
    with pytest.raises(HeadcastError, match="have features but no scores: run1/10"):
        build_dataset(features, scores[scores["checkpoint"] != "run1/10"])


def test_unknown_benchmark_too_few_runs_and_schema_mismatch_are_errors():
    features, scores = synthetic_tables(n_runs=4)
    with pytest.raises(HeadcastError, match="unknown benchmark"):
        build_dataset(features, scores, benchmarks=["mmbench"])
    few = features["checkpoint"].str.startswith(("run0/", "run1/"))
    with pytest.raises(HeadcastError, match="only 2 training run"):
        build_dataset(features[few], scores[scores["checkpoint"].isin(features[few]["checkpoint"])])
    with pytest.raises(HeadcastError, match="does not match this headcast"):
        build_dataset(features.assign(schema_version="headcast-features/0"), scores)
    with pytest.raises(HeadcastError, match="no rows"):
        build_dataset(features.head(0), scores)


def test_lmms_eval_result_folders_become_long_scores_in_percent(tmp_path):
    report = {
        "results": {
            "pope": {"alias": "pope", "pope_accuracy,none": 0.861, "pope_accuracy_stderr,none": 0.004},
            "mmbench_en_dev": {"alias": "mmbench_en_dev", "gpt_eval_score,none": 64.3},
        },
        "config": {"model": "llava", "model_args": "pretrained=ckpts/llava-7b,conv_template=vicuna_v1"},
        "n-samples": {"pope": {"original": 9000, "effective": 9000}},
        "lmms_eval_version": "0.3.0",
    }
    (tmp_path / "llava-7b").mkdir()
    (tmp_path / "llava-7b" / "results.json").write_text(json.dumps(report))
    table = read_scores(tmp_path).set_index("benchmark")
    assert table.loc["pope", "score"] == pytest.approx(86.1) and table.loc["pope", "n"] == 9000
    assert table.loc["mmbench_en_dev", "score"] == pytest.approx(64.3)
    assert set(table["checkpoint"]) == {"ckpts/llava-7b"} and set(table["harness_version"]) == {"0.3.0"}


def test_a_score_csv_with_a_non_number_names_its_line(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("checkpoint,benchmark,score\na/1,count,50\na/2,count,lots\n")
    with pytest.raises(HeadcastError, match=r"scores\.csv:3: score 'lots' is not a number"):
        read_scores(path)
