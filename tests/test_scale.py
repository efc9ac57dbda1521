"""Extraction on a real two-node Ray cluster (loopback, one CPU a node) equals the sequential run, survives a
lost node and resumes through the cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.extract import read_probes
from headcast.extract.evaluate import evaluate, items_path
from headcast.extract.pipeline import extract_features
from headcast.scale import RayOptions, connect, import_ray
from headcast.tables import read_features
from tests.ray_cluster import RayCluster

CHECKPOINTS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node, this process joined as their driver; the nodes share a cache folder."""
    worker_cache = tmp_path_factory.mktemp("worker-cache")
    cluster = RayCluster(workers=1, env={"HEADCAST_CACHE": str(worker_cache)})
    try:
        connect(RayOptions(cluster.address))
        cluster.wait_for_nodes(2)
        cluster.worker_cache = worker_cache
        yield cluster
    finally:
        import_ray().shutdown()
        cluster.stop()


@pytest.fixture(scope="module")
def zoo_checkpoints(smoke_zoo) -> list[Path]:
    folders = sorted(p.parent for p in (smoke_zoo / "checkpoints").glob("*/*/config.json"))
    return folders[:: len(folders) // CHECKPOINTS][:CHECKPOINTS]


@pytest.fixture(scope="module")
def probes(smoke_zoo):
    return read_probes(smoke_zoo / "probes" / "probes.jsonl")


@pytest.fixture(scope="module")
def sequential(zoo_checkpoints, probes) -> pd.DataFrame:
    """The plain loop in this process: the reference every Ray run must equal."""
    return extract_features(zoo_checkpoints, probes, progress=False)[0]


@pytest.fixture
def driver_cache(tmp_path, monkeypatch) -> Path:
    """A driver cache of this test's own, so the sequential run's entries cannot answer for the cluster."""
    monkeypatch.setenv("HEADCAST_CACHE", str(tmp_path / "driver-cache"))
    return tmp_path / "driver-cache" / "head-metrics"


def worker_entries(cluster) -> int:
    return len(list((cluster.worker_cache / "head-metrics").glob("*.npz")))


def clear_worker_cache(cluster) -> None:
    for entry in (cluster.worker_cache / "head-metrics").glob("*.npz"):
        entry.unlink()


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got["checkpoint"]) == list(want["checkpoint"])
    assert list(got["contract"]) == list(want["contract"])
    numeric = want.select_dtypes("number").columns
    assert list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got[numeric].to_numpy(float), want[numeric].to_numpy(float), atol=1e-6)


def test_extract_on_the_cluster_in_probe_shards_writes_the_sequential_table(
    cluster, smoke_zoo, zoo_checkpoints, probes, sequential, driver_cache, tmp_path
):
    out = tmp_path / "features.parquet"
    half = str(-(-len(probes) // 2))
    command = ["extract", *map(str, zoo_checkpoints), "--probes", str(smoke_zoo / "probes" / "probes.jsonl")]
    flags = ["--out", str(out), "--ray-address", cluster.address, "--probes-per-task", half, "--quiet"]
    assert main([*command, *flags]) == 0
    assert_same_table(read_features(out)[0].reset_index(drop=True), sequential)
    # two shards a checkpoint, cached on the driver, and each checkpoint assembled whole
    assert len(list(driver_cache.glob("*.npz"))) == 3 * CHECKPOINTS


def test_a_rerun_after_a_partial_run_computes_only_the_missing_checkpoints(
    cluster, zoo_checkpoints, probes, sequential, driver_cache
):
    options = RayOptions(address=cluster.address)
    extract_features(zoo_checkpoints[:2], probes, ray=options, progress=False)  # a run cut short
    clear_worker_cache(cluster)  # the nodes that did that work are gone
    table, _ = extract_features(zoo_checkpoints, probes, ray=options, progress=False)
    assert worker_entries(cluster) == CHECKPOINTS - 2
    assert_same_table(table, sequential)


def test_evaluate_on_the_cluster_scores_as_the_plain_loop(cluster, smoke_zoo, zoo_checkpoints, tmp_path):
    paths, suite = zoo_checkpoints[:2], smoke_zoo / "benchmarks"
    want = evaluate(paths, suite, tmp_path / "plain.csv", "cpu")
    got = evaluate(paths, suite, tmp_path / "ray.csv", "cpu", ray=RayOptions(cluster.address))
    assert got == want
    items = [pd.read_parquet(items_path(tmp_path / f"{name}.csv")) for name in ("plain", "ray")]
    pd.testing.assert_frame_equal(*items)


def test_a_worker_node_lost_mid_run_is_retried_and_the_table_is_unchanged(
    cluster, zoo_checkpoints, probes, sequential, driver_cache
):
    clear_worker_cache(cluster)
    killed: list[float] = []

    def kill_after_the_first_result() -> None:
        deadline = time.monotonic() + 120
        while worker_entries(cluster) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.kill_worker(0)
        killed.append(time.monotonic())

    killer = threading.Thread(target=kill_after_the_first_result)
    killer.start()
    table, _ = extract_features(zoo_checkpoints, probes, ray=RayOptions(cluster.address), progress=False)
    killer.join()
    assert killed, "the worker node was not killed"
    assert_same_table(table, sequential)
    cluster.wait_for_nodes(1)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--gpus-per-task", "-1"], "not a number of at least 0"),
        (["--cpus-per-task", "nan"], "not a number of at least 0"),
        (["--max-retries", "-2"], "negative"),
        (["--probes-per-task", "0"], "not positive"),
    ],
)
def test_bad_ray_flags_are_refused_while_parsing(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["extract", str(tmp_path), "--probes", "p.jsonl", "--out", "f.parquet", "--ray", *flags])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_ray_options_refuse_what_no_task_can_hold():
    with pytest.raises(HeadcastError, match="gpus_per_task must be a non-negative number"):
        RayOptions(gpus_per_task=-0.5)
    with pytest.raises(HeadcastError, match="max_retries must be a whole number"):
        RayOptions(max_retries=1.5)
