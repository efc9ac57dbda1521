"""Load and bad input against a real `headcast serve` process on loopback.

    python benchmarks/bench_service.py [--json] [--requests 300] [--concurrency 16] [--url URL]

Without --url it makes a throwaway MLflow store in a temp folder, registers a champion fitted on
synthetic feature rows, starts `headcast serve` there on a free loopback port, and
stops it at the end. Then:
1. load: a bounded number of POST /predict requests (one feature row each), `concurrency` at a time:
   p50/p99 latency, requests/s, errors, and the server's and client's CPU per request, beside the
   same rows through the fitted model in-process, one a call (bare scikit-learn, no HTTP);
2. bad input: a battery of malformed JSON, wrong types, huge bodies and path escapes: how many got
   a 4xx, and how many a 5xx (must be 0; the exit status is 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import psutil
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from headcast.extract.features import feature_columns  # noqa: E402
from headcast.schema import FEATURE_SCHEMA_VERSION  # noqa: E402


def synthetic_rows(n_runs: int = 6, seed: int = 0):
    """Feature rows whose two features drive two benchmark scores (like tests/predictor_data.py)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = feature_columns()
    features, scores = [], []
    for run in range(n_runs):
        ceiling = rng.uniform(0.2, 1.0)
        for step in (10, 30, 100, 300, 1000):
            ability = ceiling * np.log10(step) / 3
            values = rng.normal(0.3, 0.05, len(columns))
            values[columns.index("all.visual_mass.mean")] = 0.2 + 0.5 * ability
            name = f"run{run}/{step}"
            features.append(
                {"checkpoint": name, "schema_version": FEATURE_SCHEMA_VERSION}
                | dict(zip(columns, values, strict=True))
            )
            for benchmark, chance in (("count", 20.0), ("pope", 50.0)):
                score = chance + (95 - chance) * ability + rng.normal(0, 2.0)
                scores.append(
                    {"checkpoint": name, "benchmark": benchmark, "score": float(np.clip(score, 0, 100))}
                )
    return pd.DataFrame(features), pd.DataFrame(scores)


def register_champion(folder: Path) -> None:
    """A champion in `folder/mlruns`, fitted on synthetic rows (ridge only: this is about the service)."""
    from headcast.predictor.dataset import build_dataset
    from headcast.predictor.tracking import fit_and_track

    cwd = Path.cwd()
    os.chdir(folder)
    try:
        features, scores = synthetic_rows()
        fit_and_track(build_dataset(features, scores), estimators=["ridge"])
    finally:
        os.chdir(cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(folder: Path, root: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "headcast", "serve", "--port", str(port), "--root", str(root)]
    process = subprocess.Popen([*command, "--log-level", "warning"], cwd=folder, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not come up")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def latency_summary(seconds: list[float], wall: float) -> dict:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "requests_per_s": round(len(seconds) / wall, 1),
    }


async def load(url: str, rows: list[dict], requests: int, concurrency: int, server_pid: int | None) -> dict:
    """`requests` POST /predict calls of one row each (cycling through `rows`), `concurrency` in flight.

    The client is aiohttp's (a dependency of MLflow): it costs ~0.4 ms of CPU a request where httpx's
    costs ~4 ms, and it runs on the same cores as the server."""
    bodies = [json.dumps({"features": row}).encode() for row in rows]
    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as client:

        async def worker():
            nonlocal errors
            for i in todo:
                started = time.perf_counter()
                try:
                    async with client.post("/predict", data=bodies[i % len(bodies)], headers=headers) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        async with client.post("/predict", data=bodies[0], headers=headers) as warm_up:  # not counted
            await warm_up.read()
        server = psutil.Process(server_pid) if server_pid else None
        cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
        client_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_cpu = sum(server.cpu_times()[:2]) - cpu_before if server else float("nan")
    return {
        "requests": requests,
        "concurrency": concurrency,
        **latency_summary(latencies, wall),
        "errors": errors,
        "server_cpu_ms_per_request": round(server_cpu / requests * 1000, 2),
        "client_cpu_ms_per_request": round(client_cpu / requests * 1000, 2),
    }


def bare_predict(folder: Path, rows: list[dict], requests: int) -> dict:
    """The same rows through the fitted model without HTTP, one row a call, one after another (one
    BLAS/OpenMP thread, as the service's prediction thread): the fitted scikit-learn pipelines' own
    `predict` (score only), and the whole HeadcastPredictor.predict (scores, intervals, OOD flag)."""
    import pandas as pd

    from headcast.predictor.predicting import resolve_model
    from headcast.predictor.registry import DEFAULT_MODEL

    cwd = Path.cwd()
    os.chdir(folder)
    try:
        predictor = resolve_model(DEFAULT_MODEL).predictor
    finally:
        os.chdir(cwd)
    frames = [pd.DataFrame([row])[predictor.feature_names_].astype(float) for row in rows]
    pipelines = {b: m.regressor_ for b, m in predictor.models_.items() if m.regressor_ is not None}

    def sklearn_only(frame: pd.DataFrame) -> None:
        for benchmark, pipeline in pipelines.items():
            pipeline.predict(frame[predictor.columns_[benchmark]])

    out = {}
    with threadpool_limits(limits=1):
        for name, call in (("sklearn_pipelines", sklearn_only), ("headcast_predictor", predictor.predict)):
            call(frames[0])  # warm-up
            seconds = []
            started = time.perf_counter()
            for i in range(requests):
                t = time.perf_counter()
                call(frames[i % len(frames)])
                seconds.append(time.perf_counter() - t)
            out[name] = latency_summary(seconds, time.perf_counter() - started)
    return out


def battery(root: Path, row: dict) -> list[tuple[str, str, str, bytes | None]]:
    """(name, method, path, body) of requests a client should never be able to turn into a 5xx."""
    (root / "loop").symlink_to(root / "loop")
    (root / "out").symlink_to("/")
    (root / "ckpt").mkdir()
    (root / "ckpt" / "config.json").write_text('{"model_type": "llava"}')
    (root / "escape.jsonl").write_text(json.dumps({"id": "a", "image": "../../etc/passwd", "question": "q"}))
    (root / "garbage.jsonl").write_bytes(b"\xff\xfe not json\n{]\n")

    def jobs(checkpoint, probes="garbage.jsonl"):
        return json.dumps({"checkpoint": checkpoint, "probes": probes}).encode()

    def predict(value):
        return json.dumps({"features": row | {"all.visual_mass.mean": value}}).encode()

    cases = [
        ("empty body", "POST", "/predict", b""),
        ("truncated JSON", "POST", "/predict", b'{"features": {"a": 1'),
        ("not JSON", "POST", "/predict", b"hello"),
        ("invalid UTF-8", "POST", "/predict", b'{"features": "\xff\xfe"}'),
        ("JSON null", "POST", "/predict", b"null"),
        ("JSON list", "POST", "/predict", b"[1, 2, 3]"),
        ("deeply nested", "POST", "/predict", b"[" * 100_000 + b"]" * 100_000),
        ("unknown field", "POST", "/predict", b'{"feature": {}}'),
        ("both sources", "POST", "/predict", json.dumps({"features": row, "rows": [row]}).encode()),
        ("features a list", "POST", "/predict", b'{"features": [1, 2]}'),
        ("rows a dict", "POST", "/predict", b'{"rows": {"a": 1}}'),
        ("rows of numbers", "POST", "/predict", b'{"rows": [1, 2]}'),
        ("empty rows", "POST", "/predict", b'{"rows": []}'),
        ("too many rows", "POST", "/predict", json.dumps({"rows": [{"x": 1}] * 5000}).encode()),
        ("string feature", "POST", "/predict", predict("high")),
        ("bool feature", "POST", "/predict", predict(True)),
        ("list feature", "POST", "/predict", predict([1, 2])),
        ("object feature", "POST", "/predict", predict({"a": 1})),
        (
            "NaN",
            "POST",
            "/predict",
            json.dumps({"features": row | {"all.visual_mass.mean": float("nan")}}).encode(),
        ),
        (
            "Infinity",
            "POST",
            "/predict",
            json.dumps({"features": row | {"all.visual_mass.mean": float("inf")}}).encode(),
        ),
        ("1e308 feature", "POST", "/predict", predict(1e308)),
        (
            "10**400 feature",
            "POST",
            "/predict",
            b'{"features": {"all.visual_mass.mean": 1' + b"0" * 400 + b"}}",
        ),
        (
            "wrong schema",
            "POST",
            "/predict",
            json.dumps({"features": row | {"schema_version": "v0"}}).encode(),
        ),
        (
            "schema a number",
            "POST",
            "/predict",
            json.dumps({"features": row | {"schema_version": 1}}).encode(),
        ),
        ("missing columns", "POST", "/predict", b'{"features": {"all.visual_mass.mean": 0.5}}'),
        ("unknown column", "POST", "/predict", json.dumps({"features": row | {"zzz": 1.0}}).encode()),
        ("all null", "POST", "/predict", json.dumps({"features": dict.fromkeys(row)}).encode()),
        ("2 MiB body", "POST", "/predict", b'{"features": {"x": "' + b"a" * (2 << 20) + b'"}}'),
        ("16 MiB body", "POST", "/predict", b" " * (16 << 20)),
        ("jobs: absolute escape", "POST", "/jobs", jobs("/etc")),
        ("jobs: dot-dot escape", "POST", "/jobs", jobs("../../../../etc")),
        ("jobs: symlink escape", "POST", "/jobs", jobs("out/etc")),
        ("jobs: symlink loop", "POST", "/jobs", jobs("loop")),
        ("jobs: probe image escape", "POST", "/jobs", jobs("ckpt", "escape.jsonl")),
        ("jobs: probes outside", "POST", "/jobs", jobs("ckpt", "/etc/passwd")),
        ("jobs: NUL byte", "POST", "/jobs", jobs("ckpt\x00x")),
        ("jobs: name too long", "POST", "/jobs", jobs("a" * 4000)),
        ("jobs: path too long", "POST", "/jobs", jobs("a/" * 2040)),
        ("jobs: missing checkpoint", "POST", "/jobs", jobs("nothing")),
        ("jobs: probes a folder", "POST", "/jobs", jobs("ckpt", "ckpt")),
        ("jobs: wrong types", "POST", "/jobs", b'{"checkpoint": 1, "probes": ["a"]}'),
        ("jobs: unknown field", "POST", "/jobs", b'{"checkpoint": "ckpt", "probes": "x", "gpu": 1}'),
        ("jobs: bad query", "POST", "/jobs", b'{"checkpoint": "ckpt", "probes": "x", "query": "all"}'),
        ("jobs: unknown id", "GET", "/jobs/does-not-exist", None),
        ("jobs: odd id", "GET", "/jobs/%00%ff..%2F..", None),
        ("wrong method", "GET", "/predict", None),
        ("unknown route", "GET", "/../../etc/passwd", None),
    ]
    return cases


def run_battery(url: str, cases) -> dict:
    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, method, path, body in cases:
            try:
                answer = client.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                status = answer.status_code
            except httpx.HTTPError as err:  # a dropped connection counts as a failure too
                status = f"{type(err).__name__}"
            results.append({"case": name, "status": status})
    statuses = [r["status"] for r in results]
    return {
        "cases": len(results),
        "4xx": sum(isinstance(s, int) and 400 <= s < 500 for s in statuses),
        "5xx": sum(isinstance(s, int) and s >= 500 for s in statuses),
        "no_answer": sum(not isinstance(s, int) for s in statuses),
        "other": sum(isinstance(s, int) and s < 400 for s in statuses),
        "results": results,
    }


def feature_rows() -> list[dict]:
    table = synthetic_rows()[0].drop(columns=["checkpoint", "schema_version"])
    return [{"schema_version": FEATURE_SCHEMA_VERSION} | row for row in table.to_dict("records")]


def print_report(report: dict) -> None:
    load_report, bare, bad = report["load"], report.get("bare"), report["bad_input"]
    print(
        f"{load_report['requests']} one-row requests, {load_report['concurrency']} concurrent "
        f"({load_report['errors']} errors); bare predict: the same rows, one a call, in one thread"
    )
    print(f"  {'':<44}{'p50 ms':>9}{'p99 ms':>9}{'requests/s':>12}")
    lines = [("POST /predict (uvicorn on 127.0.0.1)", load_report)]
    if bare:
        lines += [
            ("bare sklearn Pipeline.predict (scores)", bare["sklearn_pipelines"]),
            ("bare HeadcastPredictor.predict (+bounds, OOD)", bare["headcast_predictor"]),
        ]
    for name, numbers in lines:
        print(f"  {name:<44}{numbers['p50_ms']:>9}{numbers['p99_ms']:>9}{numbers['requests_per_s']:>12}")
    print(
        f"  CPU per request: server {load_report['server_cpu_ms_per_request']} ms, "
        f"client {load_report['client_cpu_ms_per_request']} ms"
    )
    print(f"bad input: {bad['cases']} cases, {bad['4xx']} got a 4xx, {bad['5xx']} a 5xx")
    for result in bad["results"]:
        print(f"  {result['status']!s:>5}  {result['case']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--url", help="an already running service (its --root must hold the battery's files)")
    parser.add_argument("--root", type=Path, help="with --url: the service's --root, for the path battery")
    args = parser.parse_args()
    rows = feature_rows()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = Path(args.root) if args.root else folder / "root"
        root.mkdir(exist_ok=True)
        if args.url:
            server = contextlib.nullcontext((args.url, None))
        else:
            register_champion(folder)
            server = local_server(folder, root)
        with server as (url, pid):
            report = {"load": asyncio.run(load(url, rows, args.requests, args.concurrency, pid))}
            report["bad_input"] = run_battery(url, battery(root, rows[0]))
        if not args.url:
            report["bare"] = bare_predict(folder, rows, args.requests)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 1 if report["bad_input"]["5xx"] or report["bad_input"]["no_answer"] else 0


if __name__ == "__main__":
    sys.exit(main())
