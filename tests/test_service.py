"""`headcast serve`: a real server process over loopback HTTP, and a battery of bad input (never a 5xx)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from PIL import Image

from headcast.predictor.dataset import build_dataset
from headcast.predictor.service import create_app
from headcast.predictor.tracking import fit_and_track
from headcast.schema import FEATURE_SCHEMA_VERSION
from tests.predictor_data import synthetic_tables
from tests.servers import start_serve, stop, wait_for

http = httpx.Client(timeout=60.0)  # generous: the test shares two cores with everything else


def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `mlruns/` holds a registered champion fitted on synthetic rows; made once a session."""
    folder = tmp_path_factory.getbasetemp() / "champion-store"
    if (folder / "ready").exists():
        return folder
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        features, scores = synthetic_tables(n_runs=4)
        fit_and_track(build_dataset(features, scores), estimators=["ridge"])
    (folder / "ready").touch()
    return folder


def feature_row() -> dict:
    features, _ = synthetic_tables(n_runs=4)
    return features.drop(columns=["checkpoint"]).iloc[0].to_dict()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return champion_store(tmp_path_factory)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_checkpoint, tiny_probes) -> Path:
    """The served root: holds the tiny checkpoint and the probe set (both made under the base temp)."""
    tiny_checkpoint("llava-1.5-7b")
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def client(store, root):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with TestClient(create_app(roots=[root / "served"]), raise_server_exceptions=False) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def server(store, root):
    """`python -m headcast serve` in a real process on a free loopback port."""
    process, url = start_serve(store, root)
    try:
        yield url
    finally:
        stop(process)


def test_server_process_answers_health_model_predict_and_a_checkpoint_job(
    server, store, root, tiny_checkpoint, tiny_probes
):
    assert http.get(f"{server}/health").json() == {"status": "ok", "model_loaded": True}
    model = http.get(f"{server}/model").json()
    assert model["registered_name"] == "headcast-predictor" and model["alias"] == "champion"
    assert model["version"] == "1" and model["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    assert model["benchmarks"] == ["count", "pope"]
    assert "/predict" in http.get(f"{server}/openapi.json").json()["paths"]

    answer = http.post(f"{server}/predict", json={"features": feature_row()})
    assert answer.status_code == 200, answer.text
    count = answer.json()["prediction"]["count"]
    assert count["lower"] <= count["score"] <= count["upper"] and count["ood"] is False
    rows = http.post(f"{server}/predict", json={"rows": [feature_row()] * 3}).json()["predictions"]
    assert len(rows) == 3 and rows[0] == answer.json()["prediction"]

    bad = http.post(
        f"{server}/predict", content=b'{"features": ', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422 and "JSON" in bad.json()["error"]
    escape = http.post(f"{server}/jobs", json={"checkpoint": "/etc", "probes": str(tiny_probes)})
    assert escape.status_code == 403 and "outside the served roots" in escape.json()["error"]

    checkpoint = tiny_checkpoint("llava-1.5-7b")
    submitted = http.post(f"{server}/jobs", json={"checkpoint": str(checkpoint), "probes": str(tiny_probes)})
    assert submitted.status_code == 202, submitted.text
    job_url = f"{server}{submitted.json()['url']}"
    job = wait_for(
        lambda: (body := http.get(job_url).json())["status"] in ("done", "failed") and body, 120, "the job"
    )
    assert job["status"] == "done", job["error"]
    assert job["progress"] == {"stage": "done", "done": 6, "total": 6}
    assert set(job["result"]["prediction"]) == {"count", "pope"}
    assert job["result"]["features"]["schema_version"] == FEATURE_SCHEMA_VERSION

    tracking = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    run = tracking.get_run(job["run_id"])
    assert run.data.params["checkpoint"] == str(checkpoint.resolve())
    assert run.data.metrics["pred/count"] == pytest.approx(job["result"]["prediction"]["count"]["score"])
    ood = float(job["result"]["prediction"]["count"]["ood"])
    assert run.data.metrics["pred/ood"] == ood  # the callback's names (predictor.metric_names), no prefix


@pytest.fixture(scope="module")
def escapes(root) -> Path:
    """Inside the served root: a symlink leading out, and a probe file whose image path leads out."""
    served = root / "served"
    served.mkdir(exist_ok=True)
    (served / "outside").symlink_to(root.parent)
    (served / "probes.jsonl").write_text(
        json.dumps({"id": "a", "image": "../../x.png", "question": "q"}) + "\n"
    )
    (served / "bert").mkdir()
    (served / "bert" / "config.json").write_text('{"model_type": "bert"}')
    (served / "ok.jsonl").write_text("")
    Image.new("RGB", (8, 8)).save(served / "image.png")
    (served / "one.jsonl").write_text(
        json.dumps({"id": "a", "image": "image.png", "question": "how ?"}) + "\n"
    )
    return served


BAD_PREDICT = [
    ("malformed JSON", b'{"features": {"a": 1', 422, "JSON"),
    ("not an object", b"[1, 2]", 422, "valid dictionary"),
    ("unknown field", b'{"feature": {}}', 422, "feature: Extra inputs are not permitted"),
    ("both sources", b'{"features": {}, "rows": [{}]}', 422, "exactly one"),
    ("no rows", b'{"rows": []}', 422, "at least 1"),
    ("string value", b'{"features": {"all.visual_mass.mean": "high"}}', 422, "must be a number or null"),
    ("NaN literal", b'{"features": {"all.visual_mass.mean": NaN}}', 422, "finite"),
    ("huge number", b'{"features": {"all.visual_mass.mean": 1' + b"0" * 400 + b"}}", 422, "finite"),
    ("missing columns", b'{"features": {"all.visual_mass.mean": 0.3}}', 422, "missing"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_PREDICT, ids=[c[0] for c in BAD_PREDICT])
def test_bad_predict_bodies_get_a_4xx_naming_the_problem(client, case, body, status, message):
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_rows_of_another_schema_or_with_unknown_columns_are_refused(client):
    old = client.post(
        "/predict", json={"features": feature_row() | {"schema_version": "headcast-features/0"}}
    )
    assert (
        old.status_code == 422
        and f"does not match the model's {FEATURE_SCHEMA_VERSION!r}" in old.json()["error"]
    )
    extra = client.post("/predict", json={"rows": [feature_row() | {"depth9.visual_mass.mean": 0.1}]})
    assert extra.status_code == 422 and "unknown feature column(s) 'depth9.visual_mass.mean'" in extra.text


def test_bodies_over_a_mebibyte_are_refused_with_413(client):
    huge = b'{"features": {"x": "' + b"a" * (2 << 20) + b'"}}'
    answer = client.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413

    def chunks():  # no Content-Length: the limit must count streamed bytes
        for _ in range(40):
            yield b" " * 65536

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("checkpoint", "probes", "status", "message"),
    [
        ("/etc", "ok.jsonl", 403, "outside the served roots"),
        ("../../..", "ok.jsonl", 403, "outside the served roots"),
        ("outside", "ok.jsonl", 403, "outside the served roots"),  # a symlink leading out
        ("bert", "outside/x.jsonl", 403, "outside the served roots"),
        ("bert", "probes.jsonl", 403, "probes line 1: image"),  # an image path leading out
        ("nothing-here", "ok.jsonl", 404, "config.json"),
        ("bert", "missing.jsonl", 404, "does not exist"),
        ("bert\x00", "ok.jsonl", 422, "NUL"),
    ],
)
def test_job_paths_outside_the_roots_are_refused(client, escapes, checkpoint, probes, status, message):
    answer = client.post("/jobs", json={"checkpoint": checkpoint, "probes": probes})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_a_job_that_fails_reports_why_and_unknown_jobs_are_404(client, escapes):
    submitted = client.post("/jobs", json={"checkpoint": "bert", "probes": "one.jsonl"})
    assert submitted.status_code == 202, submitted.text
    job = wait_for(
        lambda: (body := client.get(submitted.json()["url"]).json())["status"] in ("done", "failed") and body,
        60,
        "the job to fail",
    )
    assert job["status"] == "failed" and "not a supported vision-language model" in job["error"]
    assert client.get("/jobs/no-such-job").status_code == 404


def test_a_missing_model_is_a_404_that_says_how_to_make_one(store, root):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        app = create_app("models:/no-such-model@champion", roots=[root])
        with TestClient(app, raise_server_exceptions=False) as test_client:
            assert test_client.get("/health").json() == {"status": "ok", "model_loaded": False}
            for answer in (
                test_client.get("/model"),
                test_client.post("/predict", json={"features": feature_row()}),
            ):
                assert answer.status_code == 404 and "run 'headcast fit'" in answer.json()["error"]
