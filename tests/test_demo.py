"""`headcast demo` end to end on the smoke zoo: build, extract, fit with runs held out, JSON summary."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.experiments.layout import ZooLayout
from headcast.predictor.frontier import FRONTIER_ESTIMATORS
from headcast.predictor.tracking import configure_tracking


def test_demo_prints_headcast_and_baseline_errors_per_benchmark_and_registers_a_champion(
    smoke_zoo, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["demo", "--preset", "smoke", "--zoo", str(smoke_zoo), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["runs"] == 3 and result["checkpoints"] == 15 and result["estimator"] == "auto"
    assert len(result["benchmarks"]) == 8
    assert set(result["seconds"]) == {"zoo", "extract", "fit", "training runs to MLflow", "frontier"}
    assert result["provenance"]["seed"] == 0 and len(result["provenance"]["scores_sha256"]) == 12
    for entry in result["benchmarks"].values():
        assert set(entry) >= {"headcast", "mean_baseline", "subset_baseline", "step_baseline"}
        assert set(entry["headcast"]) >= {"mae", "spearman"} and entry["mean_baseline"]["mae"] >= 0
    zoo = ZooLayout(smoke_zoo)
    assert zoo.features.is_file() and zoo.per_head.is_file()
    configure_tracking()
    version = MlflowClient().get_model_version_by_alias("headcast-predictor", "champion")
    assert str(version.version) == result["model_version"]
    frontier = result["frontier"]
    # the smoke suite has 8 items per benchmark: budgets past answering all of them are not measured
    assert frontier["protocol"] == "new-run" and frontier["k"] == [0, 2, 4, 8]
    assert all(0 <= share <= 1 for share in frontier["hybrid_coverage"])
    assert set(frontier["ordering"]) == set(FRONTIER_ESTIMATORS) and frontier["allocation"]["total"]
    logged = MlflowClient().get_run(result["mlflow_run_id"]).data.metrics
    assert 0 <= logged["frontier.new-run.ordering.hybrid.gap1.k8"] <= 1
    assert "frontier.new-run.allocation.total64.allocated" in logged
    for estimators in frontier["mae"].values():
        assert set(estimators) == set(FRONTIER_ESTIMATORS)
        assert estimators["subset"][0] is None and estimators["heads"][1] is None
        assert all(v >= 0 for v in estimators["hybrid"]) and all(v >= 0 for v in estimators["subset"][1:])
    anchors = [json.loads(line) for line in zoo.anchors.read_text().splitlines()]
    assert {a["task"] for a in anchors} == set(result["benchmarks"]) and len(anchors) <= 8 * 8
    assert all(a["answer"] for a in anchors)  # items whose correctness vectors coincide share one anchor
    training = MlflowClient().get_experiment_by_name(result["training_runs"])
    runs = MlflowClient().search_runs([training.experiment_id])
    assert len(runs) == 3 and training.tags["mlflow.experimentKind"] == "custom_model_development"
    assert result["training_runs_charts"].endswith(
        f"/#/experiments/{training.experiment_id}/runs?compareRunsMode=CHART"
    )
    for run in runs:  # each checkpoint's held-out prediction, with its interval, beside its measured score
        measured = MlflowClient().get_metric_history(run.info.run_id, "score/pope_random")
        predicted = MlflowClient().get_metric_history(run.info.run_id, "pred/pope_random")
        lower = MlflowClient().get_metric_history(run.info.run_id, "pred/pope_random_lower")
        assert sorted(m.step for m in predicted) == sorted(m.step for m in measured) and len(measured) == 5
        bound = {m.step: m.value for m in lower}
        assert all(bound[m.step] <= m.value for m in predicted)
