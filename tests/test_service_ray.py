"""`headcast serve --ray`: a real server process measures its jobs as tasks on a real two-node Ray cluster
(loopback, one CPU a node), keeps them through a crash and a restart, and answers as the plain queue does."""

from __future__ import annotations

import os
import signal

import httpx
import numpy as np
import pytest

from tests.ray_cluster import RayCluster  # first: it sets Ray's auth token before Ray is imported
from tests.servers import finished_job, free_port, start_serve
from tests.test_service import champion_store

http = httpx.Client(timeout=60.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a worker node whose tasks share a cache folder of their own (not the server's)."""
    cluster = RayCluster(workers=1, env={"HEADCAST_CACHE": str(tmp_path_factory.mktemp("worker-cache"))})
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return champion_store(tmp_path_factory)


def test_jobs_measured_on_the_cluster_survive_a_restart_and_answer_as_the_plain_queue(
    cluster, store, smoke_zoo, tmp_path, monkeypatch
):
    checkpoints = sorted(str(p.parent) for p in (smoke_zoo / "checkpoints").glob("*/*/config.json"))[-2:]
    probes = str(smoke_zoo / "probes" / "probes.jsonl")
    bodies = [{"checkpoint": c, "probes": probes} for c in checkpoints]
    state, port = tmp_path / "state", free_port()
    monkeypatch.setenv("HEADCAST_CACHE", str(tmp_path / "server-cache"))  # the server measures nothing
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    process, url = start_serve(store, smoke_zoo, "--ray", "--state-dir", str(state), port=port)
    try:
        first = http.post(f"{url}/jobs", json=bodies[0]).json()["id"]
        before = finished_job(url, first, 300)
        second = http.post(f"{url}/jobs", json=bodies[1]).json()["id"]
    finally:
        os.kill(process.pid, signal.SIGKILL)  # a crash, with the second job on the cluster or queued
        process.wait()
    assert before["status"] == "done", before
    assert not (tmp_path / "server-cache").exists(), "the measuring happened on the cluster"

    process, url = start_serve(store, smoke_zoo, "--ray", "--state-dir", str(state), port=port)
    try:
        assert http.get(f"{url}/jobs/{first}").json() == before | {"position": 0}
        resumed = finished_job(url, second, 300)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert resumed["status"] == "done" and resumed["resumed"] is True, resumed

    monkeypatch.delenv("RAY_ADDRESS")
    process, url = start_serve(store, smoke_zoo, port=free_port())  # the plain queue, measuring here
    try:
        plain = [finished_job(url, http.post(f"{url}/jobs", json=body).json()["id"], 300) for body in bodies]
    finally:
        process.terminate()
        process.wait(timeout=30)
    for on_cluster, here in zip((before, resumed), plain, strict=True):
        predicted = on_cluster["result"]["prediction"]
        assert predicted.keys() == here["result"]["prediction"].keys()
        for benchmark, entry in here["result"]["prediction"].items():
            assert predicted[benchmark]["score"] == pytest.approx(entry["score"], abs=1e-6)
        numbers = [k for k, v in here["result"]["features"].items() if not isinstance(v, str)]
        assert len(numbers) > 50
        got, want = ([job["result"]["features"][k] for k in numbers] for job in (on_cluster, here))
        np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), atol=1e-6)


def test_a_cluster_that_cannot_be_reached_is_one_line_before_the_port_is_bound(store, smoke_zoo, capsys):
    from headcast.cli import main

    code = main(["serve", "--ray-address", f"127.0.0.1:{free_port()}", "--root", str(smoke_zoo)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Ray cluster" in err, err
