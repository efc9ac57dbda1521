"""`headcast serve --state-dir`: a real server process killed and started again reports every job it took."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.service.jobs import Job, JobStore
from tests.servers import finished_job, free_port, start_serve
from tests.test_service import champion_store

http = httpx.Client(timeout=60.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return champion_store(tmp_path_factory)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_checkpoint, tiny_probes):
    tiny_checkpoint("llava-1.5-7b")
    return tmp_path_factory.getbasetemp()


def test_a_restarted_server_reports_the_job_it_finished_and_resumes_the_one_it_was_running(
    store, root, tiny_checkpoint, tiny_probes, tmp_path
):
    state, port = tmp_path / "state", free_port()
    body = {"checkpoint": str(tiny_checkpoint("llava-1.5-7b")), "probes": str(tiny_probes)}
    process, url = start_serve(store, root, "--state-dir", str(state), port=port)
    try:
        first = http.post(f"{url}/jobs", json=body).json()["id"]
        before = finished_job(url, first)
        second = http.post(f"{url}/jobs", json=body | {"query": "first-generated"}).json()["id"]
    finally:
        os.kill(process.pid, signal.SIGKILL)  # a crash: nothing is saved on the way out
        process.wait()
    assert before["status"] == "done", before
    cut_short = JobStore(state / "jobs.sqlite").get(second)
    assert cut_short is not None and cut_short.status in ("queued", "running")

    process, url = start_serve(store, root, "--state-dir", str(state), port=port)
    try:
        again = http.get(f"{url}/jobs/{first}").json()
        resumed = finished_job(url, second)
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
