"""`headcast fit` / `headcast predict` against a real MLflow store (SQLite + artifacts under mlruns/)."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.predictor import tracking
from headcast.predictor.pyfunc import predict_rows
from headcast.predictor.registry import fitted_predictor
from headcast.schema import FEATURE_SCHEMA_VERSION
from headcast.tables import read_features, write_features
from tests.predictor_data import synthetic_tables


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """Feature and score files in a fresh working folder, so `mlruns/` is the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    features, scores = synthetic_tables(n_runs=6)
    write_features(
        features,
        {c: {"n_probes": 32, "arch": "llava", "text_model": "llama"} for c in features["checkpoint"]},
        tmp_path / "features.parquet",
    )
    scores.to_csv(tmp_path / "scores.csv", index=False)
    return tmp_path / "features.parquet", tmp_path / "scores.csv"


def runs(experiment: str = "headcast"):
    tracking.configure_tracking()
    experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    return mlflow.search_runs([experiment_id], output_format="list")


def test_fit_logs_nested_runs_and_registers_a_champion_that_predict_uses(tables, capsys):
    features, scores = tables
    assert (
        main(["fit", "--features", str(features), "--scores", str(scores), "--estimators", "ridge,knn"]) == 0
    )
    printed = capsys.readouterr().out
    assert "mean_baseline" in printed and "subset_baseline" in printed and "chosen:" in printed
    by_name = {run.info.run_name: run for run in runs()}
    parent = by_name["fit"]
    assert {"ridge", "knn"} <= set(by_name) and parent.info.status == "FINISHED"
    assert by_name["ridge"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "count.mae" in by_name["ridge"].data.metrics and "mean_baseline.count.mae" in parent.data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(by_name["ridge"].info.run_id, "plots")}
    assert "plots/predicted_vs_actual.png" in artifacts

    version = MlflowClient().get_model_version_by_alias("headcast-predictor", "champion")
    assert version.tags["feature_schema_version"] == FEATURE_SCHEMA_VERSION

    assert main(["predict", "--features", str(features), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    first = result["run0/10"]
    assert set(first) == {"count", "pope"}
    assert first["count"]["lower"] <= first["count"]["score"] <= first["count"]["upper"]
    assert first["pope"]["ood"] is False


def test_rows_of_another_feature_schema_are_refused(tables, capsys, tmp_path):
    features, scores = tables
    assert main(["fit", "--features", str(features), "--scores", str(scores), "--estimators", "ridge"]) == 0
    table, settings = read_features(features)
    write_features(table.assign(schema_version="headcast-features/0"), settings, tmp_path / "old.parquet")
    capsys.readouterr()
    assert main(["predict", "--features", str(tmp_path / "old.parquet")]) == 2
    assert f"does not match the model's {FEATURE_SCHEMA_VERSION!r}" in capsys.readouterr().err


def test_bad_input_creates_no_run_and_a_failed_fit_ends_failed(tables, capsys, monkeypatch):
    features, scores = tables
    assert main(["fit", "--features", str(features), "--scores", str(scores), "--benchmarks", "mmbench"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    tracking.configure_tracking()
    assert mlflow.get_experiment_by_name("headcast") is None

    def broken(*_, **__):
        raise RuntimeError("estimator blew up")

    monkeypatch.setattr(tracking, "held_out_predictions", broken)
    with pytest.raises(RuntimeError, match="blew up"):
        main(["fit", "--features", str(features), "--scores", str(scores), "--estimators", "ridge"])
    assert {run.info.status for run in runs()} == {"FAILED"}


def test_predict_without_a_registered_model_says_how_to_make_one(tables, capsys):
    features, _ = tables
    assert main(["predict", "--features", str(features)]) == 2
    assert "run 'headcast fit' or 'headcast demo' first" in capsys.readouterr().err


def test_predict_from_a_checkpoint_folder_extracts_then_predicts(
    tables, capsys, tiny_checkpoint, tiny_probes
):
    features, scores = tables
    assert main(["fit", "--features", str(features), "--scores", str(scores), "--estimators", "ridge"]) == 0
    capsys.readouterr()
    folder = str(tiny_checkpoint("llava-1.6-mistral-7b"))
    assert main(["predict", folder, "--probes", str(tiny_probes), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"count", "pope"}
    assert all(set(r) == {"score", "lower", "upper", "ood"} for r in result.values())
    assert result["count"]["ood"] is True  # a random model's heads look nothing like the training rows
    assert main(["predict", folder]) == 2
    assert "needs --probes" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", float("inf")])
def test_text_or_infinite_features_are_refused_not_read_as_missing(tables, value):
    """The one prediction path (CLI, service, callback): MLflow's pyfunc adds its own type check on top."""
    features, scores = tables
    assert main(["fit", "--features", str(features), "--scores", str(scores), "--estimators", "ridge"]) == 0
    table, _ = read_features(features)
    column = next(c for c in table.columns if c.startswith("all."))
    rows = table.drop(columns=["checkpoint"]).head(2).astype({column: object})
    rows.loc[rows.index[1], column] = value
    model = mlflow.pyfunc.load_model("models:/headcast-predictor@champion")
    with pytest.raises(HeadcastError, match=rf"feature column '{column}' of row 1 is .*not a finite number"):
        predict_rows(fitted_predictor(model), rows)
    assert len(predict_rows(fitted_predictor(model), rows.head(1))) == 1
