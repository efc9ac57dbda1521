"""Anchors and the hybrid estimator through the command line, on the smoke zoo and a real MLflow store."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from headcast.cli import main
from headcast.tables import read_features, write_features


@pytest.fixture(scope="module")
def fitted(smoke_zoo, tmp_path_factory):
    """Features of the smoke zoo, a fit with its per-item results, and the anchor probe file (once)."""
    folder = tmp_path_factory.mktemp("hybrid")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        checkpoints = sorted(str(p.parent) for p in (smoke_zoo / "checkpoints").glob("*/*/config.json"))
        probes = smoke_zoo / "probes" / "probes.jsonl"
        common = ["--probes", str(probes), "--relative-to", str(smoke_zoo / "checkpoints"), "--quiet"]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["extract", *checkpoints, "--out", "features.parquet", *common]) == 0
            assert main([
                "fit", "--features", "features.parquet", "--scores", str(smoke_zoo / "scores.csv"),
                "--items", str(smoke_zoo / "scores.items.parquet"), "--anchors", "4",
                "--suite", str(smoke_zoo / "benchmarks"), "--anchors-out", "anchors.jsonl",
                "--estimators", "auto",
            ]) == 0  # fmt: skip
        yield checkpoints, probes, folder / "anchors.jsonl", printed.getvalue()


@pytest.fixture
def in_fitted_folder(fitted, monkeypatch):
    """Each test runs where the fit's MLflow store is."""
    monkeypatch.chdir(fitted[2].parent)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return fitted


def test_fit_with_per_item_results_prints_the_frontier_and_writes_answered_anchors(fitted):
    _, _, anchors, out = fitted
    assert "mean MAE over benchmarks (new-run)" in out and "hybrid_without_heads" in out
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert lines and all(line["answer"] and line["task"] for line in lines)
    by_benchmark = pd.Series([line["task"] for line in lines]).value_counts()
    assert len(by_benchmark) == 8 and (by_benchmark <= 4).all()


def test_predict_uses_the_anchors_when_answered_and_the_label_free_estimate_otherwise(
    in_fitted_folder, capsys
):
    checkpoints, probes, anchors, _ = in_fitted_folder
    assert (
        main(["predict", checkpoints[-1], "--probes", str(probes), "--anchors", str(anchors), "--json"]) == 0
    )
    answered = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(entry["answered"] for entry in answered.values())
    assert all(entry["lower"] <= entry["score"] <= entry["upper"] for entry in answered.values())
    assert main(["predict", checkpoints[-1], "--probes", str(probes), "--json"]) == 0
    label_free = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not any(entry["answered"] for entry in label_free.values())


def test_predict_with_a_device_map_measures_and_answers_as_one_device(in_fitted_folder, capsys, monkeypatch):
    checkpoints, probes, anchors, _ = in_fitted_folder
    folder = anchors.parent
    monkeypatch.setenv("HEADCAST_CACHE", str(folder / "cache-of-this-test"))  # both measure, neither reads
    predicted = {}
    for placement in (["--device", "cpu"], ["--device-map", "auto"]):
        command = ["predict", checkpoints[-1], "--probes", str(probes), "--anchors", str(anchors)]
        assert main([*command, *placement, "--json"]) == 0
        predicted[placement[0]] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        monkeypatch.setenv("HEADCAST_CACHE", str(folder / "cache-of-this-test-map"))
    one, spread = predicted["--device"], predicted["--device-map"]
    assert one.keys() == spread.keys() and all(spread[b]["answered"] for b in spread)
    for benchmark, entry in one.items():
        assert spread[benchmark]["score"] == pytest.approx(entry["score"], abs=1e-6)


def test_anchor_answers_of_the_wrong_type_or_without_answers_are_refused(in_fitted_folder, tmp_path, capsys):
    checkpoints, probes, anchors, _ = in_fitted_folder
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    stripped = tmp_path / "stripped.jsonl"
    stripped.write_text(
        "\n".join(json.dumps({k: v for k, v in line.items() if k != "answer"}) for line in lines)
    )
    code = main(["predict", checkpoints[-1], "--probes", str(probes), "--anchors", str(stripped)])
    assert code == 2 and "has no answer or task" in capsys.readouterr().err
    answers = pd.DataFrame([
        {"checkpoint": "x", "item": line["id"], "task": line["task"], "correct": 1.0, "prob": 1.5}
        for line in lines
    ])  # fmt: skip
    answers.to_parquet(tmp_path / "answers.parquet")
    table, _ = read_features(anchors.parent / "features.parquet")
    write_features(table.head(1).assign(checkpoint="x"), {}, tmp_path / "one.parquet")
    code = main(
        [
            "predict",
            "--features",
            str(tmp_path / "one.parquet"),
            "--answers",
            str(tmp_path / "answers.parquet"),
        ]
    )
    assert code == 2 and "must be 0 or 1 and prob" in capsys.readouterr().err


def test_one_prefill_gives_the_evaluators_answers_on_single_token_items(smoke_zoo):
    from headcast.contract import ExtractionSettings
    from headcast.extract.pipeline import answers_table, extract_features
    from headcast.extract.probes import read_probes

    checkpoint = sorted((smoke_zoo / "checkpoints").glob("*/*/config.json"))[-1].parent
    name = checkpoint.relative_to(smoke_zoo / "checkpoints").as_posix()
    probes = [p for file in sorted((smoke_zoo / "benchmarks").glob("*.jsonl")) for p in read_probes(file)]
    _, metrics = extract_features(
        [checkpoint], probes, ExtractionSettings(device="cpu"), [name], progress=False
    )
    extracted = answers_table(metrics).set_index("item")
    truth = pd.read_parquet(smoke_zoo / "scores.items.parquet").query("checkpoint == @name").set_index("item")
    assert (extracted.loc[truth.index, "correct"].astype(bool) == truth["correct"].astype(bool)).all()
    assert extracted.loc[truth.index, "prob"].to_numpy() == pytest.approx(truth["prob"].to_numpy(), abs=1e-4)


def test_the_training_callback_answers_the_anchors_and_logs_what_predict_prints(in_fitted_folder, capsys):
    import mlflow

    from headcast.extract import load_checkpoint
    from headcast.predictor.callback import log_predicted_scores
    from headcast.predictor.tracking import configure_tracking, use_experiment

    checkpoints, probes, anchors, _ = in_fitted_folder
    assert (
        main(["predict", checkpoints[-1], "--probes", str(probes), "--anchors", str(anchors), "--json"]) == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    loaded = load_checkpoint(checkpoints[-1], device="cpu")
    configure_tracking()
    with mlflow.start_run(experiment_id=use_experiment("callback-with-anchors")):
        metrics = log_predicted_scores(loaded.model, loaded.processor, probes, anchors=anchors, step=3)
    for benchmark, entry in printed.items():
        assert metrics[f"headcast/pred/{benchmark}"] == pytest.approx(entry["score"], abs=1e-3)


def test_a_service_job_with_anchors_gets_the_anchored_estimate(in_fitted_folder, smoke_zoo):
    from fastapi.testclient import TestClient

    from headcast.predictor.service import create_app
    from tests.servers import wait_for

    checkpoints, probes, anchors, _ = in_fitted_folder
    roots = [smoke_zoo, anchors.parent]
    with TestClient(create_app(roots=roots), raise_server_exceptions=False) as client:
        body = {"checkpoint": checkpoints[-1], "probes": str(probes), "anchors": str(anchors)}
        submitted = client.post("/jobs", json=body)
        assert submitted.status_code == 202, submitted.text
        job = wait_for(
            lambda: (
                (state := client.get(submitted.json()["url"]).json())["status"] in ("done", "failed")
                and state
            ),
            120,
            "the job",
        )
    assert job["status"] == "done", job["error"]
    assert all(entry["answered"] for entry in job["result"]["prediction"].values())


def test_adaptive_anchors_ask_the_suite_in_rounds_until_the_cap_or_the_target_width(
    in_fitted_folder, smoke_zoo, capsys
):
    checkpoints, probes, _, _ = in_fitted_folder
    common = [
        "predict",
        checkpoints[-1],
        "--probes",
        str(probes),
        "--adaptive",
        str(smoke_zoo / "benchmarks"),
    ]
    assert main([*common, "--max-items", "8"]) == 0
    assert "adaptive anchors: 2 round(s)" in capsys.readouterr().out
    assert main([*common, "--max-items", "8", "--target-width", "1000"]) == 0
    assert "adaptive anchors: 1 round(s)" in capsys.readouterr().out
    assert main([*common, "--max-items", "4", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(scores) == 8 and all(entry["answered"] for entry in scores.values())
    assert all(entry["lower"] <= entry["score"] <= entry["upper"] for entry in scores.values())
    assert main([*common, "--anchors", "anchors.jsonl"]) == 2
    assert "not both" in capsys.readouterr().err


def test_an_update_of_the_hybrid_keeps_its_anchor_count_and_adds_the_items_that_came_back(
    in_fitted_folder, smoke_zoo, tmp_path, capsys
):
    """Last in this file: it moves the champion the other tests predict with."""
    from mlflow.tracking import MlflowClient

    from headcast.predictor.training_tables import UPDATED_FROM_TAG, TrainingTables

    client = MlflowClient()
    before = client.get_model_version_by_alias("headcast-predictor", "champion")
    learnt = TrainingTables.of_run(before.run_id)
    assert learnt.items is not None and len(learnt.features) == 15
    rescored = learnt.features["checkpoint"].iloc[-1]
    features, settings = read_features("features.parquet")
    write_features(features[features["checkpoint"] == rescored], settings, tmp_path / "new.parquet")
    learnt.scores[learnt.scores["checkpoint"] == rescored].to_csv(tmp_path / "new.csv", index=False)
    items = learnt.items[learnt.items["checkpoint"] == rescored].assign(correct=0)  # benchmarked again
    items.to_parquet(tmp_path / "new.items.parquet")
    new = ["--features", str(tmp_path / "new.parquet"), "--scores", str(tmp_path / "new.csv")]
    assert main(["fit", "--update", *new]) == 2  # the champion is a hybrid: it needs the new items too
    assert "pass --items for the new checkpoints exactly when" in capsys.readouterr().err
    scores = learnt.scores[learnt.scores["checkpoint"] == rescored].assign(score=0.0)
    scores.to_csv(tmp_path / "new.csv", index=False)
    assert main(["fit", "--update", *new, "--items", str(tmp_path / "new.items.parquet")]) == 0
    assert "0 new checkpoint(s), 15 in all" in capsys.readouterr().out

    after = client.get_model_version_by_alias("headcast-predictor", "champion")
    run = client.get_run(after.run_id)
    assert run.data.tags[UPDATED_FROM_TAG] == before.run_id
    assert run.data.params["anchors_per_benchmark"] == "4" and run.data.params["estimators"] == "auto"
    updated = TrainingTables.of_run(after.run_id)
    assert updated.items.loc[updated.items["checkpoint"] == rescored, "correct"].eq(0).all()
    assert len(updated.items) == len(learnt.items)
