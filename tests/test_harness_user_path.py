"""The anchored estimate from lmms-eval tasks, whole: checkpoints and local task YAMLs to answered anchors.

Per-item truth comes from `headcast evaluate --tasks` (lmms-eval's values, as test_harness_tasks checks
against real lmms-eval), the fit chooses anchors among the tasks' documents, and `predict` answers them
through the tasks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import pandas as pd
import pytest

from headcast.cli import main
from tests.lmms_tasks import write_task_folder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lmms_eval") is None,
    reason="lmms-eval is not installed (pip install 'headcast[lmms-eval]'; CI installs it)",
)

TASKS = "zoo_spatial,zoo_count_object"


def test_fit_on_task_truth_writes_task_anchors_that_predict_answers_through_the_tasks(
    smoke_zoo, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    benchmarks = smoke_zoo / "benchmarks"
    tasks = write_task_folder(
        tmp_path / "tasks", {name: benchmarks / f"{name}.jsonl" for name in ("spatial", "count_object")}
    )
    root = smoke_zoo / "checkpoints"
    checkpoints = sorted(str(p.parent) for p in root.glob("*/*/config.json"))
    probes = smoke_zoo / "probes" / "probes.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        extract = ["extract", *checkpoints, "--probes", str(probes), "--relative-to", str(root)]
        assert main([*extract, "--out", "features.parquet", "--quiet"]) == 0
        evaluate = ["evaluate", *checkpoints, "--tasks", TASKS, "--include-path", str(tasks)]
        assert main([*evaluate, "--out", "scores.csv"]) == 0
        assert main([
            "fit", "--features", "features.parquet", "--scores", "scores.csv",
            "--items", "scores.items.parquet", "--checkpoint-root", str(root), "--anchors", "4",
            "--tasks", TASKS, "--include-path", str(tasks), "--anchors-out", "anchors.jsonl",
            "--estimators", "auto",
        ]) == 0  # fmt: skip
    items = pd.read_parquet("scores.items.parquet")
    assert set(items["benchmark"]) == {"zoo_spatial", "zoo_count_object"}
    assert set(items["item"]) == {str(i) for i in range(8)}  # lmms-eval's doc_ids
    anchors = [json.loads(line) for line in (tmp_path / "anchors.jsonl").read_text().splitlines()]
    assert {a["task"] for a in anchors} == {"zoo_spatial", "zoo_count_object"}
    assert all(a["harness"] == "lmms-eval" and len(a["task_config"]) == 64 for a in anchors)

    capsys.readouterr()
    predict = ["predict", checkpoints[-1], "--probes", str(probes), "--anchors", "anchors.jsonl", "--json"]
    assert main(predict) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(predicted) == {"zoo_spatial", "zoo_count_object"}
    assert all(entry["answered"] for entry in predicted.values())
