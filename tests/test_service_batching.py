"""Concurrent /predict requests are predicted together, and each still gets its own answer or error."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.predicting import resolve_model
from headcast.predictor.service import create_app
from headcast.predictor.service.batching import RowBatcher
from headcast.predictor.service.prediction import predict_table
from headcast.schema import FEATURE_SCHEMA_VERSION
from tests.test_service import champion_store, feature_row


class HeldPredictions:
    """A predict_many whose first call waits for `release`, so later requests queue up behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[list[dict]]] = []

    def __call__(self, model, requests):
        self.batches.append(list(requests))
        if len(self.batches) == 1:
            self.release.wait(10)
        return [self._answer(rows) for rows in requests]

    @staticmethod
    def _answer(rows: list[dict]) -> list[dict] | HeadcastError:
        return HeadcastError("bad row") if rows[0]["x"] < 0 else [{"y": row["x"] * 2} for row in rows]


async def _gather_while_held(batcher: RowBatcher, held: HeldPredictions, values: list[float]):
    first = asyncio.create_task(batcher.predict("model", [{"x": 0.0}]))
    while not held.batches:  # the first request is being predicted
        await asyncio.sleep(0.001)
    others = [asyncio.create_task(batcher.predict("model", [{"x": v}])) for v in values]
    await asyncio.sleep(0.01)
    held.release.set()
    return await asyncio.gather(first, *others, return_exceptions=True)


def test_requests_that_arrive_during_a_batch_are_predicted_together_each_with_its_own_answer():
    held = HeldPredictions()
    batcher = RowBatcher(held, max_rows=256)
    answers = asyncio.run(_gather_while_held(batcher, held, [1.0, -1.0, 3.0]))
    batcher.close()
    assert [len(batch) for batch in held.batches] == [1, 3]  # the lone first request did not wait
    assert answers[0] == [{"y": 0.0}] and answers[1] == [{"y": 2.0}] and answers[3] == [{"y": 6.0}]
    assert isinstance(answers[2], HeadcastError)


def test_a_batch_holds_at_most_max_rows_rows():
    held = HeldPredictions()
    batcher = RowBatcher(held, max_rows=2)
    asyncio.run(_gather_while_held(batcher, held, [1.0, 2.0, 3.0, 4.0, 5.0]))
    batcher.close()
    assert [len(batch) for batch in held.batches] == [1, 2, 2, 1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return champion_store(tmp_path_factory)


async def _post_all(app, bodies: list[dict]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))


def test_concurrent_requests_get_what_each_row_alone_gets_and_a_bad_row_fails_only_its_own(
    store, tmp_path, monkeypatch
):
    monkeypatch.chdir(store)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    row = feature_row() | {"schema_version": FEATURE_SCHEMA_VERSION}
    rows = [row | {"all.visual_mass.mean": 0.1 + 0.05 * i} for i in range(15)]
    overflowing = row | dict.fromkeys(row.keys() - {"schema_version"}, 1e308)  # valid JSON, unusable
    bodies = [{"features": r} for r in rows[:7]] + [{"features": overflowing}] + [{"rows": rows[7:]}]
    answers = asyncio.run(_post_all(create_app(roots=[tmp_path]), bodies))
    model = resolve_model("models:/headcast-predictor@champion")
    assert [a.status_code for a in answers] == [200] * 7 + [422, 200]
    assert "the features could not be used" in answers[7].json()["error"]
    for body, answer in zip(bodies[:7], answers[:7], strict=True):
        assert answer.json()["prediction"] == predict_table(model, [body["features"]])[0]
    assert answers[8].json()["predictions"] == predict_table(model, rows[7:])
