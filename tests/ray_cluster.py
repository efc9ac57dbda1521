"""A real Ray cluster on loopback for tests: a head node and worker nodes, one CPU each, as users start them.

Every node is a `ray start --block` process in a session of its own, so that killing one (`kill_worker`)
takes its raylet and its workers down as a lost machine would, and the head notices the node is gone.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import free_port

RAY = str(Path(sys.executable).with_name("ray"))


def _session_token() -> Path:
    """One auth token for every test cluster of this process, set in its environment on import.

    Ray turns on token authentication by default, and a process reads its token settings once, when Ray
    is imported: so this module is imported before Ray is (the tests import Ray only through it or
    headcast), and the token never changes afterwards.
    """
    folder = Path(tempfile.mkdtemp(prefix="hc-ray-token-"))
    atexit.register(shutil.rmtree, folder, True)
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    return token


if "ray" in sys.modules:
    raise RuntimeError("tests.ray_cluster must be imported before ray: Ray reads its auth token on import")
TOKEN = _session_token()


class RayCluster:
    """`ray start --head` plus `workers` worker nodes on 127.0.0.1; `address` is what a driver joins."""

    def __init__(self, workers: int = 1, env: dict[str, str] | None = None) -> None:
        # Ray's socket paths live under its temp dir and must stay short (a Unix socket path is < 108 bytes)
        self.temp = Path(tempfile.mkdtemp(prefix="hc-ray-"))
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.head = self._start(
            "--head",
            f"--port={port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-port={free_port()}",
            "--include-dashboard=false",
        )
        self.workers: list[subprocess.Popen] = []
        self._wait_for_head(port)
        self.workers = [self._start(f"--address={self.address}") for _ in range(workers)]

    def _wait_for_head(self, port: int, timeout: float = 120) -> None:
        """Until the head takes connections, as a user waits for `ray start --head` to return."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.head.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the Ray head did not listen on port {port} in {timeout:.0f} s"
                    ) from None
                time.sleep(0.2)

    def _start(self, *flags: str) -> subprocess.Popen:
        command = [RAY, "start", "--block", "--num-cpus=1", "--num-gpus=0"]
        if "--head" in flags:
            command.append(f"--temp-dir={self.temp}")
        return subprocess.Popen(
            [*command, *flags],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def driver_env(self) -> dict[str, str]:
        """What another driver process needs in its environment to join: the address and the token."""
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(TOKEN)}

    @staticmethod
    def alive_nodes() -> int:
        """Live nodes, as this process (a driver already joined) sees them."""
        import ray

        return sum(node["Alive"] for node in ray.nodes())

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        """Wait (in a driver already joined) until `n` nodes are alive."""
        deadline = time.monotonic() + timeout
        while self.alive_nodes() != n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster did not reach {n} live node(s) in {timeout:.0f} s")
            time.sleep(0.5)

    def kill_worker(self, i: int = 0) -> None:
        """SIGKILL a worker node's whole session: its raylet, object store and workers, as a lost machine."""
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait()

    def stop(self) -> None:
        """Kill every node's session (nothing of the cluster is kept) and remove its files."""
        for process in [*self.workers, self.head]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
