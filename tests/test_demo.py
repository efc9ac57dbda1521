"""`headcast demo` end to end on the smoke zoo: build, extract, fit with runs held out, JSON summary."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from headcast.cli import main
from predictor.tracking import configure_tracking


def test_demo_prints_headcast_and_baseline_errors_per_benchmark_and_registers_a_champion(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["demo", "--preset", "smoke", "--zoo", str(tmp_path / "zoo"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["runs"] == 3 and result["checkpoints"] == 15 and result["estimator"] == "auto"
    assert len(result["benchmarks"]) == 8
    for entry in result["benchmarks"].values():
        assert set(entry) >= {"headcast", "mean_baseline", "subset_baseline", "step_baseline"}
        assert set(entry["headcast"]) >= {"mae", "spearman"} and entry["mean_baseline"]["mae"] >= 0
    assert (tmp_path / "zoo" / "features.parquet").is_file() and (
        tmp_path / "zoo" / "per_head.parquet"
    ).is_file()
    configure_tracking()
    version = MlflowClient().get_model_version_by_alias("headcast-predictor", "champion")
    assert str(version.version) == result["model_version"]
