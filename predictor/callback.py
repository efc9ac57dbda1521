"""Predicted benchmark scores during training, from the live model, as MLflow metrics.

The full benchmark suite is far too slow to run every few hundred steps; a probe set through the
live model is not. `log_predicted_scores` runs the probes on the model in memory (eval mode, no
grad, train mode restored; no copy, nothing saved), turns the head metrics into a feature row,
predicts the scores with intervals and logs both at the training step, named as service jobs name
them (`predictor.metric_names`), under the prefix `headcast/`:

    headcast/pred/<benchmark>          predicted score (percent)
    headcast/pred/<benchmark>_lower    interval bounds
    headcast/pred/<benchmark>_upper
    headcast/pred/<benchmark>_answered 1 when its anchor items were answered (hybrid predictors)
    headcast/pred/ood                  1 when the row is out of the predictor's training distribution
    headcast/feature/<all.*>           the model-wide feature summaries
    headcast/seconds                   what the measurement cost

`HeadcastCallback` calls it from a transformers `Trainer` every N steps and/or on save, into the
run transformers' own MLflow logging uses; custom loops call the function directly.
The live model is measured under the predictor's extraction contract (its query position and
visual-head thresholds, on its probe set, in its dtype); anything else is refused, since the
predictor would answer such a row with confident nonsense.
Torch loads when the model is first measured, not when this module is imported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric

from headcast.errors import HeadcastError
from headcast.predictor.metric_names import prediction_metrics
from headcast.predictor.predicting import FittedModel, PredictionPipeline

try:  # a real TrainerCallback when transformers is there; the plain function needs no Trainer
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover
    TrainerCallback = object  # type: ignore[assignment,misc]


def log_predicted_scores(
    model: Any,
    processor: Any,
    probes: Sequence[Any] | str | Path | PredictionPipeline,
    predictor: FittedModel | str | Any | None = None,
    step: int = 0,
    *,
    query: str | None = None,
    batch_size: int = 8,
    prefix: str = "headcast",
    run_id: str | None = None,
    anchors: Sequence[Any] | str | Path | None = None,
) -> dict[str, float]:
    """Measure the live model on `probes`, predict its scores, log them at `step`; returns the metrics.

    `predictor`: a fitted HeadcastPredictor (or HybridPredictor), a pyfunc model, or a model URI
    (default: the champion). The measurement follows the predictor's extraction contract (`query`
    defaults to its own; another is an error). With `anchors` (the anchor probe file of a hybrid model)
    the model also answers those items and benchmarks get the anchored estimate. Calling repeatedly,
    pass a `PredictionPipeline` as `probes` (then `predictor`, `query`, `batch_size` and `anchors` are
    the pipeline's). Metrics go to `run_id`, else the active MLflow run (MLflow starts one if none).
    """
    started = time.perf_counter()
    pipeline = (
        probes
        if isinstance(probes, PredictionPipeline)
        else PredictionPipeline(predictor, probes, anchors, query=query, batch_size=batch_size)
    )
    table = pipeline.live_features(model, processor)
    prediction = next(iter(pipeline.model.predict_json(table).values()))
    summaries = {name: float(value) for name, value in table.iloc[0].items() if str(name).startswith("all.")}
    metrics = prediction_metrics(prediction, summaries, time.perf_counter() - started, prefix)
    if run_id is not None:
        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
    else:
        mlflow.log_metrics(metrics, step=step)
    return metrics


class HeadcastCallback(TrainerCallback):
    """Log predicted benchmark scores of the model being trained, every `every_n_steps` and/or on save.

    Runs on the main process only. With `report_to=["mlflow"]` the metrics join the run that
    transformers' MLflowCallback opened; otherwise this callback opens a run and closes it at the end.
    """

    def __init__(
        self,
        processor,
        probes: Sequence | str | Path,
        predictor: Any = None,
        every_n_steps: int | None = 50,
        on_save: bool = False,
        query: str | None = None,
        batch_size: int = 8,
        prefix: str = "headcast",
        anchors: Sequence | str | Path | None = None,
    ) -> None:
        if not every_n_steps and not on_save:
            raise HeadcastError("HeadcastCallback needs every_n_steps > 0, on_save=True, or both")
        self.processor = processor
        # prepared once: a bad probe file, query or probe set fails before training starts
        self.pipeline = PredictionPipeline(predictor, probes, anchors, query=query, batch_size=batch_size)
        self.every_n_steps, self.log_on_save, self.prefix = every_n_steps, on_save, prefix
        self.history: list[tuple[int, dict[str, float]]] = []
        self._own_run = False
        self._last_step: int | None = None

    def measure(self, model, step: int) -> dict[str, float]:
        """Log at `step` (once per step, however many events ask for it)."""
        if step == self._last_step:
            return self.history[-1][1]
        metrics = log_predicted_scores(model, self.processor, self.pipeline, step=step, prefix=self.prefix)
        self._last_step = step
        self.history.append((step, metrics))
        return metrics

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and mlflow.active_run() is None:
            mlflow.start_run(run_name=getattr(args, "run_name", None))
            self._own_run = True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.every_n_steps
        if every and state.is_world_process_zero and model is not None and state.global_step % every == 0:
            self.measure(model, state.global_step)

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.log_on_save and state.is_world_process_zero and model is not None:
            self.measure(model, state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self._own_run:
            mlflow.end_run()
            self._own_run = False
