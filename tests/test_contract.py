"""The extraction contract end to end: fit on non-default settings, then every prediction path.

One small zoo (three runs of two tiny checkpoints) is extracted with `--query answer-mean` and
non-default visual-head thresholds, fitted and registered once for the module; each test predicts
through one path (CLI, pyfunc, service, callback) with the model's settings and with others.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.contract import ExtractionContract, table_contract
from headcast.errors import HeadcastError
from headcast.extract.probes import probe_set_hash, read_probes
from headcast.predictor.tracking import configure_tracking
from headcast.tables import read_features, write_features
from tests.servers import wait_for
from tests.tiny_probes import write_tiny_probe_set

# three runs of two checkpoints; all but the last shape are made by other test files too (session fixture)
SHAPES = (
    "llava-1.5-7b",
    "llava-1.6-mistral-7b",
    "vip-llava-7b",
    "llava-1.5-phi3-mini",
    "llava-1.5-llama3-8b",
    "llava-1.5-13b",
)
SETTINGS = ["--query", "answer-mean", "--visual-mass-threshold", "0.3", "--concentration-threshold", "0.1"]
WRONG_QUERY = (
    "features were extracted with query=last-prompt but the model was fitted on query=answer-mean; "
    "re-extract with --query answer-mean or predict from the checkpoint"
)


def test_a_mismatch_names_each_differing_field_with_both_values_and_the_fix():
    fitted = ExtractionContract("answer-mean", 0.3, 0.1, "float32", "aaaa")
    assert fitted.mismatch(fitted) is None
    assert ExtractionContract.from_json(fitted.to_json()) == fitted
    rows = ExtractionContract("answer-mean", 0.25, 0.1, "bfloat16", "bbbb")
    assert rows.mismatch(fitted) == (
        "features were extracted with visual_mass_threshold=0.25, dtype=bfloat16, probe_set_hash=bbbb "
        "but the model was fitted on visual_mass_threshold=0.3, dtype=float32, probe_set_hash=aaaa; "
        "re-extract with --visual-mass-threshold 0.3 --dtype float32 on the probe set the model was "
        "fitted on or predict from the checkpoint"
    )
    older = ExtractionContract(**(fitted.to_dict() | {"metrics_version": "1"}))
    assert older.mismatch(fitted).endswith(
        "; re-extract the features with this headcast version, or refit the model on features from it"
    )
    with pytest.raises(HeadcastError, match="not an extraction contract"):
        ExtractionContract.from_dict({"query": "last-prompt"})
    with pytest.raises(HeadcastError, match="unknown query position 'middle'"):
        ExtractionContract.from_dict(fitted.to_dict() | {"query": "middle"})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_checkpoint, tiny_probes):
    """The zoo folder, its checkpoints, the feature table and the fit's MLflow store, made once."""
    folder = tmp_path_factory.mktemp("contract")
    checkpoints = []
    for i, shape in enumerate(SHAPES):
        link = folder / "zoo" / f"run{i // 2}" / str(i % 2 + 1)  # the name says the run and step
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(tiny_checkpoint(shape))
        checkpoints.append(str(link))
    rng = np.random.default_rng(0)
    scores = [
        {"checkpoint": c, "benchmark": b, "score": float(rng.uniform(20, 90)), "n": 100}
        for c in checkpoints
        for b in ("count", "pope")
    ]
    pd.DataFrame(scores).to_csv(folder / "scores.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        common = ["--probes", str(tiny_probes), "--device", "cpu", "--quiet"]
        assert main(["extract", *checkpoints, "--out", "features.parquet", *common, *SETTINGS]) == 0
        assert main(["extract", checkpoints[0], "--out", "last-prompt.parquet", *common, *SETTINGS[2:]]) == 0
        assert (
            main(["fit", "--features", "features.parquet", "--scores", "scores.csv", "--estimators", "ridge"])
            == 0
        )
    return folder, checkpoints


@pytest.fixture
def in_store(fitted, monkeypatch, capsys):
    folder, _ = fitted
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking()
    capsys.readouterr()  # the fixture's own output
    return fitted


@pytest.fixture(scope="module")
def other_probes(tmp_path_factory) -> Path:
    return write_tiny_probe_set(tmp_path_factory.mktemp("other-probes"), n=4, seed=1)


def predicted(capsys, *args: str) -> dict:
    assert main(["predict", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def refused(capsys, *args: str) -> str:
    assert main(["predict", *args]) == 2
    return capsys.readouterr().err


def test_the_contract_travels_from_the_feature_table_to_the_registered_model(in_store, tiny_probes):
    folder, checkpoints = in_store
    table, settings = read_features(folder / "features.parquet")
    contract = table_contract(table)
    assert contract == ExtractionContract(
        "answer-mean", 0.3, 0.1, "float32", probe_set_hash(read_probes(tiny_probes))
    )
    assert settings[checkpoints[0]]["contract"] == contract.to_dict()  # in the Parquet metadata too
    version = MlflowClient().get_model_version_by_alias("headcast-predictor", "champion")
    assert ExtractionContract.from_json(version.tags["extraction_contract"]) == contract
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/headcast-predictor/{version.version}"))
    assert json.loads((model_dir / "artifacts" / "contract.json").read_text()) == contract.to_dict()
    assert mlflow.artifacts.load_dict(f"runs:/{version.run_id}/contract.json") == contract.to_dict()

    # a file written before contracts gets its contract back from the settings in its metadata
    legacy = {c: {k: v for k, v in s.items() if k != "contract"} for c, s in settings.items()}
    write_features(table.drop(columns=["contract"]), legacy, folder / "legacy.parquet")
    assert table_contract(read_features(folder / "legacy.parquet")[0]) == contract


def test_fit_refuses_a_table_that_mixes_contracts(in_store, capsys):
    folder, _ = in_store
    table, settings = read_features(folder / "features.parquet")
    other = ExtractionContract.from_json(table["contract"].iloc[0])
    table.loc[3, "contract"] = ExtractionContract(**(other.to_dict() | {"query": "last-prompt"})).to_json()
    write_features(table, settings, folder / "mixed.parquet")
    code = main(["fit", "--features", "mixed.parquet", "--scores", "scores.csv", "--no-register"])
    assert code == 2
    error = capsys.readouterr().err
    assert "mixes 2 extraction contracts (query=answer-mean (" in error and "vs last-prompt" in error


def test_predict_from_the_checkpoint_follows_the_contract_and_matches_the_feature_table(
    in_store, capsys, tiny_probes
):
    folder, checkpoints = in_store
    from_table = predicted(capsys, "--features", str(folder / "features.parquet"))
    from_checkpoint = predicted(capsys, checkpoints[1], "--probes", str(tiny_probes))
    assert set(from_checkpoint) == {"count", "pope"}
    assert from_checkpoint == from_table[checkpoints[1]]
    explicit = predicted(capsys, checkpoints[1], "--probes", str(tiny_probes), "--query", "answer-mean")
    assert explicit == from_checkpoint


def test_predict_refuses_features_and_settings_of_another_contract(
    in_store, capsys, tiny_probes, other_probes
):
    folder, checkpoints = in_store
    assert WRONG_QUERY in refused(capsys, "--features", str(folder / "last-prompt.parquet"))
    probes = str(tiny_probes)
    error = refused(capsys, checkpoints[0], "--probes", probes, "--query", "last-prompt")
    assert "query=last-prompt was asked for but the model was fitted on features extracted with " in error
    assert "query=answer-mean; leave the query out" in error
    error = refused(capsys, checkpoints[0], "--probes", probes, "--dtype", "bfloat16")
    assert "dtype=bfloat16 was asked for" in error and "dtype=float32" in error
    error = refused(capsys, checkpoints[0], "--probes", str(other_probes))
    assert f"is probe set {probe_set_hash(read_probes(other_probes))} but the model was fitted" in error
    assert "pass the probe file the model's training features were extracted from" in error
    assert error.count("\n") == 1  # one line


def test_the_pyfunc_model_refuses_rows_of_another_contract(in_store, capsys):
    folder, checkpoints = in_store
    model = mlflow.pyfunc.load_model("models:/headcast-predictor@champion")
    table, _ = read_features(folder / "features.parquet")
    rows = table.drop(columns=["checkpoint"])
    predictions = model.predict(rows)
    cli = predicted(capsys, "--features", str(folder / "features.parquet"))
    assert predictions["count"].tolist() == pytest.approx(
        [cli[c]["count"]["score"] for c in checkpoints], abs=1e-3
    )
    wrong, _ = read_features(folder / "last-prompt.parquet")
    with pytest.raises(HeadcastError, match="^" + WRONG_QUERY.replace("(", r"\(")):
        model.predict(wrong.drop(columns=["checkpoint"]))
    # a row without a contract is taken on the caller's word, as before contracts
    assert model.predict(rows.drop(columns=["contract"]))["count"].tolist() == predictions["count"].tolist()


@pytest.fixture
def service(in_store, tmp_path_factory):
    """The app on the fitted model; roots hold the zoo links and what they point at."""
    from headcast.predictor.service import create_app

    with TestClient(create_app(roots=[tmp_path_factory.getbasetemp()]), raise_server_exceptions=False) as c:
        yield c


def test_the_service_refuses_rows_and_jobs_of_another_contract(
    in_store, service, capsys, tiny_probes, other_probes
):
    folder, checkpoints = in_store
    cli = predicted(capsys, "--features", str(folder / "features.parquet"))
    contract = read_features(folder / "features.parquet")[0]["contract"].iloc[0]
    assert service.get("/model").json()["extraction_contract"] == json.loads(contract)

    wrong, _ = read_features(folder / "last-prompt.parquet")
    row = json.loads(wrong.drop(columns=["checkpoint"]).iloc[0].to_json())  # NaN -> null
    answer = service.post("/predict", json={"features": row})
    assert answer.status_code == 422 and answer.json()["error"] == WRONG_QUERY
    answer = service.post("/predict", json={"features": row | {"contract": contract}})  # the contract decides
    assert answer.status_code == 200, answer.text
    answer = service.post("/predict", json={"features": row | {"contract": "{not json"}})
    assert answer.status_code == 422 and "is not JSON" in answer.json()["error"]

    probes = str(tiny_probes)
    asked = service.post(
        "/jobs", json={"checkpoint": checkpoints[1], "probes": probes, "query": "last-prompt"}
    )
    assert asked.status_code == 422 and "query=last-prompt was asked for" in asked.json()["error"]
    other = service.post("/jobs", json={"checkpoint": checkpoints[1], "probes": str(other_probes)})
    assert other.status_code == 422 and "pass the probe file" in other.json()["error"]

    submitted = service.post("/jobs", json={"checkpoint": checkpoints[1], "probes": probes})
    assert submitted.status_code == 202, submitted.text
    job = wait_for(
        lambda: (
            (body := service.get(submitted.json()["url"]).json())["status"] in ("done", "failed") and body
        ),
        120,
        "the job",
    )
    assert job["status"] == "done", job["error"]
    assert job["query"] == "answer-mean"
    assert json.loads(job["result"]["features"]["contract"]) == json.loads(contract)
    assert job["result"]["prediction"] == cli[checkpoints[1]]


def test_the_callback_measures_under_the_contract_and_refuses_another(
    in_store, capsys, tiny_probes, other_probes
):
    from headcast.extract import load_checkpoint
    from headcast.predictor.callback import HeadcastCallback, log_predicted_scores
    from headcast.predictor.tracking import use_experiment

    _, checkpoints = in_store
    probes = tiny_probes
    expected = predicted(capsys, checkpoints[1], "--probes", str(probes))
    loaded = load_checkpoint(checkpoints[1], device="cpu")
    with pytest.raises(HeadcastError, match="query=last-prompt was asked for"):
        HeadcastCallback(loaded.processor, probes, query="last-prompt")
    with pytest.raises(HeadcastError, match="pass the probe file"):
        HeadcastCallback(loaded.processor, other_probes)
    with mlflow.start_run(experiment_id=use_experiment("contract-callback")):
        with pytest.raises(HeadcastError, match="query=last-prompt was asked for"):
            log_predicted_scores(loaded.model, loaded.processor, probes, step=1, query="last-prompt")
        metrics = log_predicted_scores(loaded.model, loaded.processor, probes, step=1)
        half = load_checkpoint(checkpoints[1], device="cpu", dtype="bfloat16")
        with pytest.raises(HeadcastError, match="runs in dtype=bfloat16 but the predictor was fitted on"):
            log_predicted_scores(half.model, half.processor, probes, step=2)
    for benchmark, entry in expected.items():
        assert metrics[f"headcast/pred/{benchmark}"] == pytest.approx(entry["score"], abs=1e-3)
