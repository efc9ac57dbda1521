"""A shared tracking server: `fit`, `predict-runs`, service jobs, the training callback and the zoo log to a
real `mlflow server` over HTTP (`MLFLOW_TRACKING_URI=http://...`, the user's path), and writers at once
lose or double nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from headcast.cli import main
from headcast.experiments.zoo_tracking import log_training_runs
from headcast.predictor import build_dataset
from headcast.predictor.callback import HeadcastCallback
from headcast.predictor.registry import configure_tracking
from headcast.predictor.schedule import fit_scheduler
from headcast.predictor.service.job_runs import log_job_run
from headcast.predictor.service.jobs import Job
from headcast.predictor.tracking import fit_and_track
from tests.predictor_data import synthetic_tables
from tests.servers import free_port, wait_healthy
from tests.test_callback import EVERY, STEPS, make_zoo_run, train_with

WRITERS = 8


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """`mlflow server` on a free loopback port, its store and artifacts in a folder of its own."""
    folder = tmp_path_factory.mktemp("tracking-server")
    port = free_port()
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1"]
    store = ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    artifacts = ["--artifacts-destination", str(folder / "artifacts"), "--workers", "1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), *store, *artifacts],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its workers go down with it
    )
    url = f"http://127.0.0.1:{port}"

    try:
        wait_healthy(process, url, 90, "mlflow server")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def on_server(tracking_server, monkeypatch, tmp_path):
    """This process logs to the server, as a user's would; nothing may land in a local store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.chdir(tmp_path)
    assert configure_tracking() == tracking_server
    yield MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    assert not (tmp_path / "mlruns").exists(), "something logged to the local store"


def test_fit_registers_and_predict_runs_logs_on_the_server(on_server, smoke_zoo, tmp_path, capsys):
    client = on_server
    probes = smoke_zoo / "probes" / "probes.jsonl"
    checkpoints = smoke_zoo / "checkpoints"
    folders = sorted(str(p.parent) for p in checkpoints.glob("*/*/config.json"))
    features = tmp_path / "features.parquet"
    extract = ["extract", *folders, "--probes", str(probes), "--relative-to", str(checkpoints)]
    assert main([*extract, "--out", str(features), "--quiet"]) == 0
    fit = ["fit", "--features", str(features), "--scores", str(smoke_zoo / "scores.csv")]
    assert main([*fit, "--estimators", "ridge"]) == 0
    champion = client.get_model_version_by_alias("headcast-predictor", "champion")
    assert client.get_run(champion.run_id).info.status == "FINISHED"

    mlflow.set_experiment("training-on-the-server")
    runs = {}
    for run_dir in sorted(checkpoints.iterdir()):
        with mlflow.start_run(run_name=run_dir.name) as run:
            mlflow.log_param("output_dir", str(run_dir))
            runs[run_dir.name] = run.info.run_id
    command = ["predict-runs", "--experiment", "training-on-the-server", "--probes", str(probes)]
    assert main(command) == 0
    assert "predicted 15 checkpoint(s) of 3 run(s)" in capsys.readouterr().out
    for run_id in runs.values():
        assert len(client.get_metric_history(run_id, "pred/spatial")) == 5


def test_jobs_logged_at_once_by_many_writers_are_all_there_once(on_server):
    client = on_server
    prediction = {"pope": {"score": 61.0, "lower": 55.0, "upper": 67.0, "ood": False}}

    def job(i: int) -> Job:
        result = {"prediction": {"pope": prediction["pope"] | {"score": float(i)}}, "features": {"all.x": i}}
        return Job(f"writer-{i:02d}", f"ckpt-{i}", "probes.jsonl", "last-prompt", result=result)

    def write(i: int) -> str:  # the service's own logging, each writer creating the experiment if missing
        return log_job_run(job(i), None, "done", "cpu", "many-writers")

    with ThreadPoolExecutor(WRITERS) as pool:
        run_ids = list(pool.map(write, range(WRITERS)))
    assert len(set(run_ids)) == WRITERS
    experiment = client.get_experiment_by_name("many-writers")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(r.data.tags["headcast.job_id"] for r in runs) == [f"writer-{i:02d}" for i in range(WRITERS)]
    for run in runs:
        i = int(run.data.tags["headcast.job_id"].removeprefix("writer-"))
        assert run.data.metrics["pred/pope"] == i and run.data.params["checkpoint"] == f"ckpt-{i}"
        assert len(client.get_metric_history(run.info.run_id, "pred/pope")) == 1


def test_a_budgeted_training_run_logs_predictions_schedule_and_figure_to_the_server(
    on_server, tracking_server, tmp_path, monkeypatch, capsys
):
    client = on_server
    dataset = build_dataset(*synthetic_tables(n_runs=4))
    fit_and_track(dataset, "champion-on-the-server", estimators=["ridge"])
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "training")
    model, processor, examples, probes = make_zoo_run(tmp_path / "probes")
    scheduler = fit_scheduler(dataset, 2, estimator="ridge")
    callback = HeadcastCallback(processor, probes, every_n_steps=EVERY, budget=2, scheduler=scheduler)
    run = train_with(callback, model, examples, tmp_path)

    history = client.get_metric_history(run.info.run_id, "headcast/pred/count")
    assert sorted(m.step for m in history) == list(range(EVERY, STEPS + 1, EVERY))
    evaluate = client.get_metric_history(run.info.run_id, "headcast/schedule/evaluate")
    assert sum(m.value for m in evaluate) == 2 and len(evaluate) == STEPS // EVERY
    assert sum(key.startswith("headcast/schedule/") for key in run.data.tags) == STEPS // EVERY
    for request in callback.requests:  # the scores come back after training, over HTTP too
        callback.record_scores(request.step, {"count": 30.0, "pope": 60.0})
    scores = client.get_metric_history(run.info.run_id, "headcast/score/pope")
    assert sorted(m.step for m in scores) == sorted(r.step for r in callback.requests)
    assert "plots/schedule.png" in {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    server = client.tracking_uri.rstrip("/")
    assert (
        f"{server}/#/experiments/{run.info.experiment_id}/runs?compareRunsMode=CHART"
        in capsys.readouterr().out
    )


def test_the_zoo_logs_its_training_runs_to_the_server_once(on_server, smoke_zoo):
    client = on_server
    first = log_training_runs(smoke_zoo, "zoo-on-the-server")
    assert log_training_runs(smoke_zoo, "zoo-on-the-server") == first
    experiment = client.get_experiment_by_name("zoo-on-the-server")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(first.values())
    assert all(len(client.get_metric_history(r, "score/pope_random")) == 5 for r in first.values())
