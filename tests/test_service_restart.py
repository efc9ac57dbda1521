"""`headcast serve --state-dir`: a real server process killed and started again reports every job it took."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.service.jobs import Job, JobStore
from tests.test_service import REPO, champion_store, free_port, wait_for

http = httpx.Client(timeout=60.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return champion_store(tmp_path_factory)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_checkpoint, tiny_probes):
    tiny_checkpoint("llava-1.5-7b")
    return tmp_path_factory.getbasetemp()


def start_server(store, root, state_dir, port) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "headcast", "serve", "--port", str(port), "--root", str(root)]
    flags = ["--state-dir", str(state_dir), "--device", "cpu", "--log-level", "warning"]
    process = subprocess.Popen([*command, *flags], cwd=store, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return http.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, 180, "the server to answer /health")  # the machine may be busy
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


def finished(url: str, job_id: str) -> dict:
    def done():
        body = http.get(f"{url}/jobs/{job_id}").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_for(done, 120, f"job {job_id}")


def test_a_restarted_server_reports_the_job_it_finished_and_resumes_the_one_it_was_running(
    store, root, tiny_checkpoint, tiny_probes, tmp_path
):
    state, port = tmp_path / "state", free_port()
    body = {"checkpoint": str(tiny_checkpoint("llava-1.5-7b")), "probes": str(tiny_probes)}
    process, url = start_server(store, root, state, port)
    try:
        first = http.post(f"{url}/jobs", json=body).json()["id"]
        before = finished(url, first)
        second = http.post(f"{url}/jobs", json=body | {"query": "first-generated"}).json()["id"]
    finally:
        os.kill(process.pid, signal.SIGKILL)  # a crash: nothing is saved on the way out
        process.wait()
    assert before["status"] == "done", before
    cut_short = JobStore(state / "jobs.sqlite").get(second)
    assert cut_short is not None and cut_short.status in ("queued", "running")

    process, url = start_server(store, root, state, port)
    try:
        again = http.get(f"{url}/jobs/{first}").json()
        resumed = finished(url, second)
        assert http.get(f"{url}/jobs/not-a-job").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert again == before | {"position": 0}, "a finished job is reported as it was"
    assert resumed["status"] == "done" and resumed["resumed"] is True, resumed
    assert resumed["result"]["prediction"].keys() == before["result"]["prediction"].keys()
    assert resumed["run_id"] and resumed["run_id"] != before["run_id"]


def test_the_store_keeps_jobs_in_submission_order_and_refuses_an_unwritable_folder(tmp_path):
    jobs = JobStore(tmp_path / "state" / "jobs.sqlite")
    made = [Job(f"job-{i}", "ckpt", "probes.jsonl", "last-prompt") for i in range(3)]
    for job in made:
        jobs.save(job)
    made[0].status, made[0].error = "failed", "no such checkpoint"
    jobs.save(made[0])
    assert [job.id for job in jobs.jobs()] == ["job-0", "job-1", "job-2"]
    assert jobs.get("job-0") == made[0] and jobs.get("job-9") is None
    (tmp_path / "a-file").write_text("")
    with pytest.raises(HeadcastError, match="pass a writable --state-dir"):
        JobStore(tmp_path / "a-file" / "jobs.sqlite")
