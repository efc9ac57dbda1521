"""Does the printed link open a training-runs experiment on its runs' charts? Checked in a real browser.

    python benchmarks/check_chart_link.py [--browser chromium] [--budget-ms 60000]

A throwaway MLflow store gets an experiment tagged for model training with two runs logging
`headcast/est/count` along five steps; `mlflow server` serves it, and headless Chromium renders
the experiment's plain page and the link `chart_view_link` prints, side by side. Reported per page:
the page title MLflow sets, and whether the metric's chart and both runs are on it. Exits 1 when the
link does not show them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
METRIC = "headcast/est/count"
RUNS = ("scheduled-run-a", "scheduled-run-b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"mlflow server did not answer {url} within {timeout:.0f} s")


def render(browser: str, url: str, budget_ms: int) -> str:
    """The page's DOM after `budget_ms` of virtual time (the UI's requests and rendering)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}"]
    return subprocess.run(
        [*command, "--dump-dom", url], capture_output=True, text=True, timeout=600, check=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", default="chromium")
    parser.add_argument("--budget-ms", type=int, default=60000)
    args = parser.parse_args()
    browser = shutil.which(args.browser)
    if browser is None:
        raise SystemExit(f"no browser {args.browser!r} on PATH; pass --browser with a Chromium binary")

    import mlflow

    from headcast.predictor.runs import chart_view_link

    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        mlflow.set_tracking_uri(store)
        tags = {"mlflow.experimentKind": "custom_model_development"}
        experiment = mlflow.create_experiment("training", Path(folder).joinpath("artifacts").as_uri(), tags)
        for offset, name in enumerate(RUNS):
            with mlflow.start_run(experiment_id=experiment, run_name=name):
                for step in range(1, 6):
                    mlflow.log_metric(METRIC, 10.0 * step + offset, step=step)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the server's workers stop with it
        )
        try:
            wait_until_up(base)
            pages = {"plain": f"{base}/#/experiments/{experiment}", "link": chart_view_link(experiment, base)}
            found = {}
            for page, url in pages.items():
                dom = render(browser, url, args.budget_ms)
                title = re.search(r"<title>([^<]*)</title>", dom)
                found[page] = {
                    "title": title.group(1) if title else "",
                    "metric chart": METRIC in dom,
                    "both runs": all(name in dom for name in RUNS),
                }
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    print(f"{'page':<6} {'title':<36} {'metric chart':<13} both runs")
    for page, seen in found.items():
        print(f"{page:<6} {seen['title']:<36} {seen['metric chart']!s:<13} {seen['both runs']}")
    return 0 if found["link"]["metric chart"] and found["link"]["both runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
