"""Real server processes for tests: a free loopback port, a patient wait, and `headcast serve` started the
way a user starts it (its own process, the store it is run in, no inherited tracking URI)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    """`check()`'s first truthy result, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_healthy(process: subprocess.Popen, url: str, timeout: float, what: str) -> None:
    """Wait until `url`/health answers 200; fail with the process's last words if it exits first."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, timeout, f"{what} to answer /health")


def start_serve(
    store: Path, root: Path, *flags: str, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """`python -m headcast serve --root ROOT FLAGS` run in `store` (its mlruns/), healthy; killed if not."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "headcast", "serve", "--port", str(port), "--root", str(root)]
    process = subprocess.Popen(
        [*command, "--device", "cpu", "--log-level", "warning", *flags],
        cwd=store,
        env=env,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, 180, "the server")  # generous: the machine may be busy
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


def finished_job(url: str, job_id: str, timeout: float = 120) -> dict:
    """`GET /jobs/{id}` of a real server, once the job is done or failed."""

    def done():
        body = httpx.get(f"{url}/jobs/{job_id}", timeout=60.0).json()
        return body if body["status"] in ("done", "failed") else None

    return wait_for(done, timeout, f"job {job_id}")
