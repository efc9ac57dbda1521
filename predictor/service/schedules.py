"""The schedules of the training runs clients post checkpoints of: one `RunSchedule` per run, in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from headcast.predictor.predicting import FittedModel
from headcast.predictor.schedule import EvaluationScheduler, RunSchedule
from headcast.predictor.service.errors import ServiceError
from headcast.predictor.service.prediction import predict_table
from headcast.predictor.service.schemas import ScheduleRequest


class RunSchedules:
    """Decide on posted checkpoints run by run; the `keep` most recently posted runs are remembered."""

    def __init__(self, scheduler: EvaluationScheduler | None, keep: int) -> None:
        self.scheduler, self.keep = scheduler, keep
        self._runs: OrderedDict[str, RunSchedule] = OrderedDict()
        self._lock = threading.Lock()

    def decide(self, model: FittedModel, body: ScheduleRequest) -> dict[str, Any]:
        """Record the real scores sent, then decide on the checkpoint; its label-free prediction beside."""
        if self.scheduler is None:
            raise ServiceError(
                409,
                "this service schedules no evaluations; start it with --schedule-budget, "
                "--schedule-features and --schedule-scores (or create_app(scheduler=a fitted one))",
            )
        prediction = predict_table(model, [body.features])[0]
        with self._lock:
            run = self._runs.get(body.run)
            if run is None:
                run = self._runs[body.run] = self.scheduler.start(body.checkpoints)
                while len(self._runs) > self.keep:
                    self._runs.popitem(last=False)
            self._runs.move_to_end(body.run)
            if run.checkpoints != body.checkpoints:
                started = run.checkpoints
                raise ServiceError(
                    409, f"run {body.run!r} was started with checkpoints={started}, not {body.checkpoints}"
                )
            if run.features and body.step <= max(run.features):
                raise ServiceError(
                    409, f"run {body.run!r} is past step {body.step} (last decided: {max(run.features)})"
                )
            for step, scores in sorted(body.scores.items()):
                if step not in run.scores:
                    run.record(step, scores)
            decision = run.decide(body.step, body.features, prediction)
        return decision.as_json() | {"prediction": prediction, "model_version": model.info["version"]}
