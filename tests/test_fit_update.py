"""`headcast fit --update`: real scores that come back during training join what the champion learnt
from, on a real MLflow store, so the run's later checkpoints are predicted by a model that saw them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.predictor.dataset import build_dataset
from headcast.predictor.registry import configure_tracking
from headcast.predictor.tracking import fit_and_track
from headcast.predictor.training_tables import UPDATED_FROM_TAG, TrainingTables
from headcast.tables import read_features, write_features
from tests.predictor_data import synthetic_tables

SETTINGS = {"n_probes": 32, "arch": "llava", "text_model": "llama"}
LATER = ["run5/300", "run5/1000"]  # the training run's checkpoints nobody benchmarks
CAME_BACK = ["run5/30", "run5/100"]  # its checkpoints whose real scores came back
RESCORED = "run0/1000"  # benchmarked again, with another score


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh working folder, so `mlruns/` is the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking()
    return tmp_path


def write_tables(folder, name: str, features: pd.DataFrame, scores: pd.DataFrame) -> list[str]:
    write_features(features, dict.fromkeys(features["checkpoint"], SETTINGS), folder / f"{name}.parquet")
    scores.to_csv(folder / f"{name}.csv", index=False)
    return ["--features", str(folder / f"{name}.parquet"), "--scores", str(folder / f"{name}.csv")]


def predicted(features: pd.DataFrame, folder, capsys) -> dict:
    write_features(features, dict.fromkeys(features["checkpoint"], SETTINGS), folder / "later.parquet")
    assert main(["predict", "--features", str(folder / "later.parquet"), "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_an_update_refits_the_champion_on_its_tables_plus_the_scores_that_came_back(store, capsys):
    features, scores = synthetic_tables(n_runs=6)
    first = ~features["checkpoint"].isin(LATER + CAME_BACK)
    first_scores = scores[scores["checkpoint"].isin(features["checkpoint"][first])]
    base = write_tables(store, "base", features[first], first_scores)
    assert main(["fit", *base, "--estimators", "ridge"]) == 0
    client = MlflowClient()
    before = client.get_model_version_by_alias("headcast-predictor", "champion")
    later_before = predicted(features[features["checkpoint"].isin(LATER)], store, capsys)

    back = features["checkpoint"].isin([*CAME_BACK, RESCORED])
    new_scores = scores[scores["checkpoint"].isin(features["checkpoint"][back])].copy()
    new_scores.loc[new_scores["checkpoint"] == RESCORED, "score"] = 11.0
    assert main(["fit", "--update", *write_tables(store, "new", features[back], new_scores)]) == 0
    printed = capsys.readouterr().out
    update = f"updating version {before.version} (fit run {before.run_id}): 2 new checkpoint(s), 28 in all"
    assert update in printed

    after = client.get_model_version_by_alias("headcast-predictor", "champion")
    assert int(after.version) == int(before.version) + 1
    run = client.get_run(after.run_id)
    assert run.data.tags[UPDATED_FROM_TAG] == before.run_id and run.info.run_name == "fit-update"
    assert run.data.params["estimators"] == "ridge" and run.data.params["checkpoints"] == "28"
    learnt = TrainingTables.of_run(after.run_id)
    assert set(CAME_BACK) <= set(learnt.features["checkpoint"]) and len(learnt.features) == 28
    rescored = learnt.scores[learnt.scores["checkpoint"] == RESCORED]
    assert rescored["score"].tolist() == [11.0, 11.0] and set(rescored["source"]) == {"new.csv"}
    assert set(learnt.scores.loc[learnt.scores["checkpoint"] == "run1/10", "source"]) == {"base.csv"}

    later_after = predicted(features[features["checkpoint"].isin(LATER)], store, capsys)
    assert later_after != later_before  # the run's later checkpoints: predicted by the refitted model


def test_an_update_of_a_fit_that_kept_no_tables_or_of_no_model_is_one_line(store, capsys):
    features, scores = synthetic_tables(n_runs=4)
    flags = write_tables(store, "tables", features, scores)
    assert main(["fit", "--update", *flags]) == 2
    assert "no model at models:/headcast-predictor@champion" in capsys.readouterr().err

    settings = dict.fromkeys(features["checkpoint"], SETTINGS)
    fit_and_track(build_dataset(features, scores, settings), estimators=["ridge"])  # the Python API
    capsys.readouterr()
    assert main(["fit", "--update", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not keep its training tables" in err and "fit once with 'headcast fit'" in err
    assert len(err.splitlines()) == 1


def test_an_update_needs_items_exactly_when_the_earlier_fit_had_them(store):
    features, scores = synthetic_tables(n_runs=3)
    items = pd.DataFrame(
        {"checkpoint": "run0/10", "benchmark": "count", "item": ["a", "b"], "correct": [1, 0]}
    )
    with_items = TrainingTables(features, {}, scores, items)
    without = TrainingTables(features, {}, scores)
    for older, newer in ((with_items, without), (without, with_items)):
        with pytest.raises(HeadcastError, match="pass --items for the new checkpoints exactly when"):
            older.updated(newer)
    redone = items.assign(correct=[0, 0])
    merged = with_items.updated(TrainingTables(features.head(1), {}, scores.head(2), redone))
    assert merged.items["correct"].tolist() == [0, 0] and len(merged.features) == len(features)


def test_the_tables_a_fit_logs_come_back_as_they_went_in(store):
    features, scores = synthetic_tables(n_runs=3)
    scores = scores.assign(harness="lmms-eval", harness_version="0.7.3", metric="exact_match", limit=pd.NA)
    scores = scores.assign(date="2026-12-01", source="results.json")
    items = pd.DataFrame(
        {"checkpoint": "run0/10", "benchmark": "count", "item": ["007", "NA"], "correct": [1, 0]}
    )
    settings = dict.fromkeys(features["checkpoint"], SETTINGS)
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("tables")).info.run_id
    TrainingTables(features, settings, scores, items).log(run_id)
    back = TrainingTables.of_run(run_id)
    pd.testing.assert_frame_equal(back.features, read_features_of(features, settings, store))
    assert back.settings == settings
    assert back.scores[["checkpoint", "benchmark", "score", "harness_version"]].equals(
        scores[["checkpoint", "benchmark", "score", "harness_version"]].reset_index(drop=True)
    )
    assert back.scores["limit"].isna().all() and back.items["item"].tolist() == ["007", "NA"]


def read_features_of(features: pd.DataFrame, settings: dict, folder) -> pd.DataFrame:
    """The table as `read_features` gives it back (its contract column restored from the settings)."""
    write_features(features, settings, folder / "round-trip.parquet")
    return read_features(folder / "round-trip.parquet")[0]
