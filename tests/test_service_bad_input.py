"""`headcast serve` on the service side of bad input: one line naming the problem, never a traceback.

The command line (a port out of range, a busy port), jobs whose files are malformed, an unexpected
failure inside a job, and the limits as `serve` options, on a real server process where that matters.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from PIL import Image

from headcast.cli import build_parser, main
from headcast.predictor.predicting import FittedModel
from headcast.predictor.service import Limits, create_app
from headcast.predictor.service.cli import limits_from
from headcast.predictor.service.jobs import Job, JobQueue
from headcast.predictor.service.model import ModelSlot
from tests.servers import start_serve, stop, wait_for
from tests.test_service import champion_store, feature_row


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return champion_store(tmp_path_factory)


@pytest.mark.parametrize("port", ["70000", "0", "-1", "http"])
def test_a_port_out_of_range_is_refused_by_the_parser_in_one_line(capsys, port):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", port])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("headcast serve: error: argument --port: ")
    assert "between 1 and 65535" in last or "is not a port number" in last


def test_a_busy_port_is_one_line_and_a_non_zero_exit(capsys, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["serve", "--port", str(port), "--root", str(tmp_path), "--log-level", "warning"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (
        f"headcast: error: port {port} on 127.0.0.1 is in use; pass --port with a free port, or stop what "
        "holds it"
    )
    assert not (tmp_path / "mlruns").exists(), "nothing may start before the port is ours"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A served root with a probe file that is fine, and checkpoints and probe files that are not."""
    root = tmp_path_factory.mktemp("bad-jobs")
    Image.new("RGB", (8, 8)).save(root / "image.png")
    good = {"id": "a", "image": "image.png", "question": "how many?"}
    (root / "good.jsonl").write_text(json.dumps(good) + "\n")
    for name, text in BAD_CONFIGS.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(text)
    for name, content in BAD_PROBES.items():
        (root / f"{name}.jsonl").write_bytes(content)
    return root


@pytest.fixture(scope="module")
def client(store, served):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with TestClient(create_app(roots=[served]), raise_server_exceptions=False) as test_client:
            yield test_client


def finished_job(client: TestClient, checkpoint: str, probes: str) -> dict:
    submitted = client.post("/jobs", json={"checkpoint": checkpoint, "probes": probes})
    assert submitted.status_code == 202, submitted.text
    return wait_for(
        lambda: (body := client.get(submitted.json()["url"]).json())["status"] in ("done", "failed") and body,
        120,
        "the job to finish",
    )


def assert_one_line(error: str) -> None:
    assert "\n" not in error and "Traceback" not in error and not error.startswith("internal error")


BAD_CONFIGS = {
    "not-json": "{not json",
    "a-list": "[1, 2]",
    "no-type": '{"text_config": {}}',
    "bad-field": '{"model_type": "llava", "text_config": {"model_type": "llama", "vocab_size": "many"}}',
}


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        ("not-json", "config.json is not valid JSON"),
        ("a-list", "config.json holds a JSON list, not a config object"),
        ("no-type", "is a None model, not a supported vision-language model"),
        ("bad-field", "is not a valid 'llava' config"),
    ],
)
def test_a_job_on_a_malformed_config_reports_headcasts_one_line(client, checkpoint, message):
    job = finished_job(client, checkpoint, "good.jsonl")
    assert job["status"] == "failed"
    assert message in job["error"], job["error"]
    assert_one_line(job["error"])


BAD_PROBES = {
    "not-json": b'{"id": "a", "image": "image.png", "question": \n',
    "an-array": b"[1, 2]\n",
    "no-image": b'{"id": "a", "question": "how many?"}\n',
    "latin-1": '{"id": "a", "image": "image.png", "question": "où ?"}\n'.encode("latin-1"),
    "empty": b"\n\n",
}


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ("not-json", "not-json.jsonl:1: not valid JSON"),
        ("an-array", "an-array.jsonl:1: expected a JSON object"),
        ("no-image", "no-image.jsonl:1: field 'image' is missing"),
        ("latin-1", "latin-1.jsonl is not UTF-8 text"),
        ("empty", "empty.jsonl has no items"),
    ],
)
def test_a_job_on_a_malformed_probe_file_reports_headcasts_one_line(client, probes, message):
    job = finished_job(client, "not-json", f"{probes}.jsonl")  # the probes are read before the checkpoint
    assert job["status"] == "failed"
    assert message in job["error"], job["error"]
    assert_one_line(job["error"])


class BrokenQueue(JobQueue):
    """A queue whose extraction hits a bug (no real input reaches one: they are all HeadcastErrors)."""

    def _extract_and_predict(self, job: Job, model: FittedModel) -> dict:
        raise RuntimeError("a bug's first line\nits second line")


def test_an_unexpected_error_in_a_job_is_one_line_for_the_client_and_a_traceback_in_the_log(
    store, served, monkeypatch, caplog
):
    monkeypatch.chdir(store)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    queue = BrokenQueue(ModelSlot("models:/headcast-predictor@champion"), device="cpu")
    with caplog.at_level(logging.ERROR, logger="headcast.serve"):
        job = queue.submit(served / "not-json", served / "good.jsonl", "answer-mean")
        wait_for(lambda: job.status in ("done", "failed"), 60, "the job")
    queue.shutdown()
    assert job.status == "failed"
    assert job.error == "internal error: RuntimeError: a bug's first line"
    assert any(record.exc_info and "its second line" in str(record.exc_info[1]) for record in caplog.records)
    run = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}").get_run(job.run_id)
    assert run.data.tags["headcast.error"] == job.error and run.info.status == "FAILED"


def test_limits_are_serve_options(store, served):
    flags = ["--keep-jobs", "1", "--max-pending", "3", "--batch-size", "2", "--keep-runs", "5"]
    args = build_parser().parse_args(["serve", *flags])
    assert limits_from(args) == Limits(max_pending=3, keep_jobs=1, batch_size=2, keep_runs=5)
    assert limits_from(build_parser().parse_args(["serve"])) == Limits()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        app = create_app(roots=[served], limits=limits_from(args))
        with TestClient(app, raise_server_exceptions=False) as client:
            first = finished_job(client, "not-json", "good.jsonl")
            finished_job(client, "a-list", "good.jsonl")
            finished_job(client, "no-type", "good.jsonl")
            assert client.get(f"/jobs/{first['id']}").status_code == 404, "only the last finished job is kept"


def test_row_and_body_limits_set_on_the_command_line_hold_on_a_real_server(store, served):
    process, url = start_serve(store, served, "--max-rows", "1", "--max-body-bytes", "20000")
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            row = feature_row()
            assert http.post("/predict", json={"rows": [row]}).status_code == 200
            two = http.post("/predict", json={"rows": [row, row]})
            assert two.status_code == 422 and "at most 1" in two.json()["error"]
            big = http.post("/predict", json={"features": row | {"checkpoint": "x" * 20000}})
            assert big.status_code == 413 and "over 20000 bytes" in big.json()["error"]
    finally:
        stop(process)


def test_a_model_that_is_not_a_headcast_predictor_is_a_404_in_one_line(tmp_path, monkeypatch, served):
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.sklearn.save_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "sklearn")
    app = create_app(str(tmp_path / "sklearn"), roots=[served])
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/health").json() == {"status": "ok", "model_loaded": False}
        answer = c.post("/predict", json={"features": feature_row()})
    assert answer.status_code == 404 and "the model is not a headcast predictor" in answer.json()["error"]
    assert_one_line(answer.json()["error"])
