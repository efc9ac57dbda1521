"""Many checkpoints on many machines: one Ray task per item, gathered in order on the driver.

Ray is an optional extra (`headcast[ray]`), imported only when a run asks for it. `RAY_ADDRESS` or
`--ray-address` joins a running cluster; without either, `ray.init()` starts a local one. Every task
declares what it holds (`num_cpus`, `num_gpus`: fractional for small models, 0 on a CPU cluster so no
task waits for a GPU that does not exist). A task whose worker or node is lost is run again, up to
`max_retries` times; an exception raised by the task itself is the input's fault (a bad checkpoint), the
same on any node, and is raised at once instead.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

from headcast.errors import HeadcastError

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where the tasks run and what each one holds."""

    address: str | None = None  # None: $RAY_ADDRESS, else a local cluster
    gpus_per_task: float = 0.0
    cpus_per_task: float = 1.0
    max_retries: int = 3  # reruns of a task whose worker died (a preempted node)

    def __post_init__(self) -> None:
        for name in ("gpus_per_task", "cpus_per_task", "max_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise HeadcastError(f"{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.max_retries, int):
            raise HeadcastError(f"max_retries must be a whole number, got {self.max_retries!r}")


def import_ray() -> Any:
    """The `ray` module, or a one-line error saying how to get it."""
    try:
        # here, not at the top: an optional extra that takes seconds to import
        import ray
    except ImportError:
        raise HeadcastError(
            "--ray needs Ray, which is not installed; install headcast[ray] (pip install 'headcast[ray]')"
        ) from None
    return ray


def connect(options: RayOptions) -> Any:
    """Join the cluster at `options.address`, else `$RAY_ADDRESS`, else a new local one; the `ray` module."""
    ray = import_ray()
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        check_reachable(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except ConnectionError as err:
            raise HeadcastError(
                f"cannot reach the Ray cluster at {address} ({str(err).splitlines()[0]}); start it with "
                "`ray start --head` or pass the head's --ray-address"
            ) from None
    return ray


def check_reachable(address: str | None, patience: float = 10.0) -> None:
    """A head at HOST:PORT that takes no connection within `patience` seconds (a head still starting
    gets that long) is one line: `ray.init` would keep retrying it for minutes. Other addresses (None,
    "auto", "local", ray://) are Ray's to resolve."""
    if address is None or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    deadline = time.monotonic() + patience
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=patience).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                reason = err.strerror or type(err).__name__
                raise HeadcastError(
                    f"cannot reach the Ray cluster at {address} ({reason}); start it with `ray start "
                    "--head` or pass the head's --ray-address"
                ) from None
            time.sleep(0.5)


def _call(fn: Callable[[Item], Result], item: Item) -> Result:
    """The task: Ray remotes functions, not partials or callables of other kinds."""
    return fn(item)


def map_on_ray(
    fn: Callable[[Item], Result],
    items: Sequence[Item],
    options: RayOptions,
    progress: bool = True,
    desc: str = "ray",
) -> list[Result]:
    """`[fn(item) for item in items]`, one Ray task per item; results in the order of `items`.

    One progress bar on the driver counts finished tasks. The first failing task stops the run: the others
    are cancelled and its error is raised (a HeadcastError keeps its one line).
    """
    if not items:
        return []
    ray = connect(options)
    task = ray.remote(_call).options(
        num_cpus=options.cpus_per_task,
        num_gpus=options.gpus_per_task,
        max_retries=options.max_retries,
        retry_exceptions=False,  # lost workers are retried; the task's own error would only repeat
    )
    shared = ray.put(fn)  # sent to the object store once, not with every task
    refs = [task.remote(shared, item) for item in items]
    where = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(items)
    pending = list(refs)
    with tqdm(total=len(items), desc=desc, unit="task", disable=not progress) as bar:
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    results[where[ref]] = ray.get(ref)
                    bar.update(1)
        except ray.exceptions.RayTaskError as err:
            for ref in pending:
                ray.cancel(ref, force=True)
            if isinstance(err.cause, HeadcastError):
                raise HeadcastError(str(err.cause)) from None
            raise
    return results
