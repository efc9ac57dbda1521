"""The zoo's training runs in MLflow, looked at the way a user would: through MLflow's own search API."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from headcast.experiments.layout import ZooLayout
from headcast.experiments.zoo_tracking import TRAINING_RUN_TAG, log_training_runs
from headcast.predictor.dataset import run_of, step_of
from headcast.predictor.registry import configure_tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking()
    return MlflowClient()


def test_each_training_run_becomes_an_mlflow_run_with_its_config_and_score_curves(smoke_zoo, store):
    ids = log_training_runs(smoke_zoo, "zoo-test")
    experiment = mlflow.get_experiment_by_name("zoo-test")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = store.search_runs([experiment.experiment_id])
    scores = pd.read_csv(ZooLayout(smoke_zoo).scores)
    assert (
        sorted(r.info.run_name for r in runs) == sorted(set(scores["checkpoint"].map(run_of))) == sorted(ids)
    )
    for run in runs:
        name = run.info.run_name
        assert run.data.tags[TRAINING_RUN_TAG] == name and run.info.status == "FINISHED"
        assert Path(run.data.params["output_dir"]) == ZooLayout(smoke_zoo).run_dir(name).resolve()
        assert {"strategy", "data", "steps", "spec.layers", "spec.heads"} <= set(run.data.params)
        mine = scores[scores["checkpoint"].map(run_of) == name]
        for benchmark, table in mine.groupby("benchmark"):
            history = store.get_metric_history(run.info.run_id, f"score/{benchmark}")
            logged = sorted((m.step, round(m.value, 2)) for m in history)
            assert logged == sorted(
                zip(table["checkpoint"].map(step_of).astype(int), table["score"], strict=True)
            )


def test_logging_the_zoo_again_adds_no_runs_and_no_points(smoke_zoo, store):
    first = log_training_runs(smoke_zoo, "zoo-test")
    assert log_training_runs(smoke_zoo, "zoo-test") == first
    experiment = mlflow.get_experiment_by_name("zoo-test")
    assert len(store.search_runs([experiment.experiment_id])) == len(first)
    run_id = next(iter(first.values()))
    assert len(store.get_metric_history(run_id, "score/pope_random")) == 5
