"""`headcast predict-runs`: predicted scores added to training runs a user already has in MLflow."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.predictor.registry import configure_tracking


@pytest.fixture
def trained_without_callback(smoke_zoo, tmp_path, monkeypatch):
    """A fitted champion, and one MLflow run per training run that logged only its output_dir (as
    transformers' MLflow callback does), nothing predicted."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    probes = smoke_zoo / "probes" / "probes.jsonl"
    folders = sorted(str(p.parent) for p in (smoke_zoo / "checkpoints").glob("*/*/config.json"))
    features = tmp_path / "features.parquet"
    root = str(smoke_zoo / "checkpoints")
    assert (
        main(["extract", *folders, "--probes", str(probes), "--relative-to", root, "--out", str(features)])
        == 0
    )
    fit = [
        "fit",
        "--features",
        str(features),
        "--scores",
        str(smoke_zoo / "scores.csv"),
        "--estimators",
        "ridge",
    ]
    assert main(fit) == 0
    configure_tracking()
    mlflow.set_experiment("my-training")
    runs = {}
    for run_dir in sorted((smoke_zoo / "checkpoints").iterdir()):
        with mlflow.start_run(run_name=run_dir.name) as run:
            mlflow.log_params({"output_dir": str(run_dir), "learning_rate": 0.001})
            runs[run_dir.name] = run.info.run_id
    return runs, probes


def test_every_checkpoint_gets_its_predicted_scores_with_intervals_at_its_step(
    trained_without_callback, capsys
):
    runs, probes = trained_without_callback
    assert main(["predict-runs", "--experiment", "my-training", "--probes", str(probes)]) == 0
    assert "predicted 15 checkpoint(s) of 3 run(s)" in capsys.readouterr().out
    client = MlflowClient()
    for run_id in runs.values():
        metrics = client.get_run(run_id).data.metrics
        assert {"pred/pope_random", "pred/pope_random_lower", "pred/pope_random_upper", "pred/ood"} <= set(
            metrics
        )
        predicted = {m.step: m.value for m in client.get_metric_history(run_id, "pred/spatial")}
        lower = {m.step: m.value for m in client.get_metric_history(run_id, "pred/spatial_lower")}
        upper = {m.step: m.value for m in client.get_metric_history(run_id, "pred/spatial_upper")}
        assert len(predicted) == 5 and all(lower[s] <= predicted[s] <= upper[s] for s in predicted)


def test_running_it_again_predicts_only_new_checkpoints(trained_without_callback, capsys):
    runs, probes = trained_without_callback
    command = ["predict-runs", "--experiment", "my-training", "--probes", str(probes)]
    assert main(command) == 0 and main(command) == 0
    assert "predicted 0 checkpoint(s) of 3 run(s)" in capsys.readouterr().out.splitlines()[-1]
    run_id = next(iter(runs.values()))
    assert len(MlflowClient().get_metric_history(run_id, "pred/spatial")) == 5


def test_an_unknown_experiment_or_a_run_without_checkpoints_is_one_line(trained_without_callback, capsys):
    _, probes = trained_without_callback
    assert main(["predict-runs", "--experiment", "nope", "--probes", str(probes)]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err
    mlflow.set_experiment("empty")
    with mlflow.start_run():
        mlflow.log_param("output_dir", "/nowhere")
    assert main(["predict-runs", "--experiment", "empty", "--probes", str(probes)]) == 2
    assert "has a param 'output_dir' naming a folder on this machine" in capsys.readouterr().err
