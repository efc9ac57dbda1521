"""Checkpoints per second: the plain loop, Ray with one worker and Ray with two, side by side in one run.

Every mode extracts the same zoo checkpoints with a cache of its own (nothing is reused between modes).
Start-up is measured apart: `ray.init` of a local cluster, and a warm-up (one checkpoint into a
throwaway cache, on each worker, and in the plain process too), which pays the imports of torch,
transformers and headcast and the first model load. Ratios are against the plain loop, end to end
(start-up included) and at steady state (after the warm-up). Ray runs each task's torch on as many
threads as the task has CPUs (one), the plain loop on every core: "plain, 1 thread" tells the two apart.

    python benchmarks/bench_scale.py [--zoo DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # before transformers loads, workers included

import torch

from headcast.extract import read_probes
from headcast.extract.pipeline import extract_features, extract_head_metrics
from headcast.extract.storage import MetricsCache
from headcast.scale import RayOptions, import_ray, map_on_ray


def warm_up(task: tuple[Path, list]) -> int:
    """A first extraction, into a throwaway cache: what a fresh process pays once (imports, first load)."""
    path, probes = task
    with tempfile.TemporaryDirectory() as cache:
        extract_head_metrics(path, probes, cache=MetricsCache(Path(cache)), progress=False)
    return os.getpid()


def plain(paths: list[Path], probes: list, threads: int | None = None) -> dict[str, float]:
    """The loop in this process; `threads`: torch's intra-op threads (None: its default, every core)."""
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        return timed_plain(paths, probes)
    finally:
        torch.set_num_threads(default)


def timed_plain(paths: list[Path], probes: list) -> dict[str, float]:
    started = time.perf_counter()
    warm_up((paths[0], probes))
    warm = time.perf_counter()
    extract_features(paths, probes, progress=False)
    done = time.perf_counter()
    return {"seconds": done - started, "steady_seconds": done - warm, "warm_up_seconds": warm - started}


def on_ray(paths: list[Path], probes: list, workers: int) -> dict[str, float]:
    ray = import_ray()
    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    initialised = time.perf_counter()
    try:
        options = RayOptions()
        map_on_ray(warm_up, [(paths[0], probes)] * workers, options, progress=False)
        warm = time.perf_counter()
        extract_features(paths, probes, progress=False, ray=options)
        done = time.perf_counter()
    finally:
        ray.shutdown()
    return {
        "seconds": done - started,
        "steady_seconds": done - warm,
        "init_seconds": initialised - started,
        "warm_up_seconds": warm - initialised,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, help="a built zoo (default: the smoke zoo, built anew)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zoo = args.zoo
        if zoo is None:
            from headcast.experiments.zoo import build

            zoo = Path(tmp) / "zoo"
            build("smoke", zoo, seed=0)
        paths = sorted(p.parent for p in (zoo / "checkpoints").glob("*/*/config.json"))
        probes = read_probes(zoo / "probes" / "probes.jsonl")
        results = {}
        for mode, run in (
            ("plain", lambda: plain(paths, probes)),
            # what a Ray task gets: Ray sets OMP_NUM_THREADS to its CPUs, one here
            ("plain, 1 thread", lambda: plain(paths, probes, threads=1)),
            ("ray, 1 worker", lambda: on_ray(paths, probes, 1)),
            ("ray, 2 workers", lambda: on_ray(paths, probes, 2)),
        ):
            os.environ["HEADCAST_CACHE"] = str(Path(tmp) / f"cache-{len(results)}")  # workers inherit it
            results[mode] = run()
    base = results["plain"]
    for result in results.values():
        result["checkpoints_per_second"] = len(paths) / result["seconds"]
        result["ratio"] = base["seconds"] / result["seconds"]
        result["steady_ratio"] = base["steady_seconds"] / result["steady_seconds"]
    if args.json:
        print(json.dumps({"checkpoints": len(paths), "probes": len(probes), "modes": results}, indent=2))
        return
    print(f"{len(paths)} checkpoints x {len(probes)} probes, on {os.cpu_count()} CPU(s)")
    print(f"{'mode':<18}{'ckpt/s':>8}{'ratio':>8}{'steady':>8}{'init s':>8}{'warm-up s':>11}")
    for mode, r in results.items():
        extra = f"{r.get('init_seconds', 0):>8.1f}{r['warm_up_seconds']:>11.1f}"
        print(
            f"{mode:<18}{r['checkpoints_per_second']:>8.3f}{r['ratio']:>7.2f}x{r['steady_ratio']:>7.2f}x{extra}"
        )


if __name__ == "__main__":
    main()
