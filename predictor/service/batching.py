"""Rows of concurrent `/predict` requests, predicted together on one thread.

A request that finds the predictor idle is predicted at once (no waiting window, so a lone client sees
no added latency); the requests that arrive while a batch is being predicted form the next batch.
One scikit-learn call on 16 rows costs little more than on one, so under load the per-request cost
falls to the HTTP handling, and the GIL is not fought over by a thread per request.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from threadpoolctl import threadpool_limits

from headcast.predictor.predicting import FittedModel

Rows = list[dict[str, Any]]
PredictMany = Callable[[FittedModel, Sequence[Rows]], list[Any]]


def _one_thread_each() -> None:
    """The prediction thread's BLAS and OpenMP on one thread: with a thread each they spin against the
    event loop on small machines and triple a batch's CPU time."""

    threadpool_limits(limits=1)


@dataclasses.dataclass
class _Waiting:
    model: FittedModel
    rows: Rows
    future: asyncio.Future


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class RowBatcher:
    """`await batcher.predict(model, rows)`: the rows' predictions, computed with other requests' rows."""

    def __init__(self, predict_many: PredictMany, max_rows: int) -> None:
        self._predict_many = predict_many
        self._max_rows = max_rows
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._draining = False
        self._executor = ThreadPoolExecutor(1, "headcast-predict", initializer=_one_thread_each)
        self._task: asyncio.Task | None = None  # held, so the running drain is not garbage-collected

    async def predict(self, model: FittedModel, rows: Rows) -> Rows:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(model, rows, loop.create_future())
        self._waiting.append(waiting)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await waiting.future

    def _next_batch(self) -> list[_Waiting]:
        """The oldest request, and those behind it for the same model, up to `max_rows` rows in all."""
        batch = [self._waiting.popleft()]
        size = len(batch[0].rows)
        while self._waiting and self._waiting[0].model is batch[0].model:
            if size + len(self._waiting[0].rows) > self._max_rows:
                break
            batch.append(self._waiting.popleft())
            size += len(batch[-1].rows)
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:  # no await between seeing it empty and `finally`: none slips in between
                batch = self._next_batch()
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._predict_many, batch[0].model, [w.rows for w in batch]
                    )
                except Exception as err:  # every request of the batch gets it (a HeadcastError: a 422)
                    results = [err] * len(batch)
                for waiting, result in zip(batch, results, strict=True):
                    _settle(waiting.future, result)
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
