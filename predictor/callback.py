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

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric

from headcast.errors import HeadcastError
from headcast.predictor.dataset import Dataset
from headcast.predictor.metric_names import metric_key, prediction_metrics
from headcast.predictor.predicting import FittedModel, PredictionPipeline
from headcast.predictor.runs import chart_view_link
from headcast.predictor.schedule import Decision, EvaluationScheduler, RunSchedule, resolve_scheduler
from headcast.schema import CONTRACT_COLUMN

try:  # a real TrainerCallback when transformers is there; the plain function needs no Trainer
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError:  # pragma: no cover
    TrainerCallback = object
    PREFIX_CHECKPOINT_DIR = "checkpoint"


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
    pipeline = (
        probes
        if isinstance(probes, PredictionPipeline)
        else PredictionPipeline(predictor, probes, anchors, query=query, batch_size=batch_size)
    )
    measured = measure_live(pipeline, model, processor)
    metrics = measured.metrics(prefix)
    log_at_step(metrics, step, run_id)
    return metrics


@dataclasses.dataclass(frozen=True)
class LiveMeasurement:
    """A live model's feature row, its predicted scores and what both cost."""

    features: dict[str, float]
    prediction: dict[str, dict[str, Any]]  # benchmark -> {score, lower, upper, ood[, answered]}
    seconds: float

    def metrics(self, prefix: str = "headcast") -> dict[str, float]:
        summaries = {name: value for name, value in self.features.items() if name.startswith("all.")}
        return prediction_metrics(self.prediction, summaries, self.seconds, prefix)


def measure_live(pipeline: PredictionPipeline, model: Any, processor: Any) -> LiveMeasurement:
    """Measure the live model through the pipeline and predict its scores."""
    started = time.perf_counter()
    table = pipeline.live_features(model, processor)
    prediction = next(iter(pipeline.model.predict_json(table).values()))
    numeric = table.drop(columns=["checkpoint", "schema_version", CONTRACT_COLUMN], errors="ignore").iloc[0]
    features = {str(name): float(value) for name, value in numeric.items() if isinstance(value, int | float)}
    return LiveMeasurement(features, prediction, time.perf_counter() - started)


def log_at_step(metrics: dict[str, float], step: int, run_id: str | None = None) -> None:
    """Metrics at `step`, into `run_id` (any run, open or finished) or else the active run."""
    if run_id is not None:
        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
    else:
        mlflow.log_metrics(metrics, step=step)


@dataclasses.dataclass(frozen=True)
class EvaluationRequest:
    """A full benchmark run the schedule asks for: at `step`, why, and the checkpoint saved there if any."""

    step: int
    reason: str
    checkpoint: Path | None  # the folder transformers saved at this step (on_save), else None
    run_id: str | None  # the MLflow run the scores belong in


EvaluationHook = Callable[[EvaluationRequest], Mapping[str, float] | None]


def decision_metrics(decision: Decision, prefix: str = "headcast") -> dict[str, float]:
    """A schedule decision as metrics: whether to evaluate, the expected error, the budget left, and the
    estimate in use (`est/<benchmark>`, `_lower`, `_upper`: label-free, or from the run's real scores)."""

    def key(*parts: str) -> str:
        return metric_key(*(p for p in (prefix, *parts) if p), sep="/")

    metrics = {
        key("schedule", "evaluate"): float(decision.evaluate),
        key("schedule", "need"): decision.need,
        key("schedule", "budget_left"): float(decision.budget_left),
    }
    for benchmark, entry in decision.estimate.items():
        for field, suffix in (("score", ""), ("lower", "_lower"), ("upper", "_upper")):
            metrics[key("est", f"{benchmark}{suffix}")] = entry[field]
    return metrics


class HeadcastCallback(TrainerCallback):
    """Log predicted benchmark scores of the model being trained, every `every_n_steps` and/or on save.

    Runs on the main process only. With `report_to=["mlflow"]` the metrics join the run that
    transformers' MLflowCallback opened; otherwise this callback opens a run and closes it at the end.

    With `budget` (full evaluations for the run: a count, or a share of its measured checkpoints) each
    measured checkpoint also gets a schedule decision (`predictor.schedule`), logged at its step
    (`<prefix>/schedule/evaluate`, `need`, `budget_left`, the estimate in use as `<prefix>/est/...`,
    and the reason as the tag `<prefix>/schedule/<step>`). An evaluation asked for calls `on_evaluate`
    with an `EvaluationRequest` (e.g. to queue an lmms-eval run); the hook may return the real scores
    at once, or they come later through `record_scores`. Either way later estimates start from them.
    Without a hook the requests wait in `requests`. `scheduler`: a fitted `EvaluationScheduler`, or the
    `Dataset` of benchmarked checkpoints to fit one on; `checkpoints`: how many checkpoints the run
    will measure (default: from the trainer's max_steps).
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
        budget: float | None = None,
        scheduler: EvaluationScheduler | Dataset | None = None,
        on_evaluate: EvaluationHook | None = None,
        checkpoints: int | None = None,
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
        self.scheduler = None
        if budget is not None or scheduler is not None or on_evaluate is not None:
            self.scheduler = resolve_scheduler(scheduler, budget)
            missing = set(self.scheduler.benchmarks_) - set(self.pipeline.model.benchmarks)
            if missing:
                raise HeadcastError(
                    f"the scheduler was fitted on benchmark(s) {sorted(missing)} the predictor does not "
                    "predict; fit it on the predictor's training checkpoints"
                )
        # not `self.on_evaluate`: that is the Trainer's own event, called after each evaluation loop
        self.evaluation_hook, self.checkpoints = on_evaluate, checkpoints
        self.schedule: RunSchedule | None = None
        self.requests: list[EvaluationRequest] = []
        self.run_id: str | None = None
        self._ended = False

    def measure(self, model, step: int, checkpoint: Path | None = None) -> dict[str, float]:
        """Log at `step` (once per step, however many events ask for it), and schedule when budgeted."""
        if step == self._last_step:
            return self.history[-1][1]
        measured = measure_live(self.pipeline, model, self.processor)
        metrics = measured.metrics(self.prefix)
        decision = None
        if self.scheduler is not None:
            if self.schedule is None:
                self.schedule = self.scheduler.start(self.checkpoints or 1)
            decision = self.schedule.decide(step, measured.features, measured.prediction)
            metrics |= decision_metrics(decision, self.prefix)
        log_at_step(metrics, step)
        self.run_id = mlflow.active_run().info.run_id
        self._last_step = step
        self.history.append((step, metrics))
        if decision is not None:
            verdict = "evaluate" if decision.evaluate else "skip"
            mlflow.set_tag(f"{self.prefix}/schedule/{step}", f"{verdict}: {decision.reason}")
            if decision.evaluate:
                self._request(EvaluationRequest(step, decision.reason, checkpoint, self.run_id))
        return metrics

    def _request(self, request: EvaluationRequest) -> None:
        self.requests.append(request)
        scores = self.evaluation_hook(request) if self.evaluation_hook is not None else None
        if scores is not None:
            self.record_scores(request.step, scores)

    def record_scores(self, step: int, scores: Mapping[str, float]) -> None:
        """The real scores of a checkpoint the schedule asked for: logged at its step as
        `<prefix>/score/<benchmark>`, and the start of every later estimate of this run."""
        if self.schedule is None:
            raise HeadcastError("no schedule to record scores in; pass budget= and train first")
        self.schedule.record(step, scores)
        metrics = {metric_key(self.prefix, "score", b, sep="/"): float(v) for b, v in scores.items()}
        log_at_step(metrics, step, self.run_id)
        if self._ended:  # scores that came back after training: the figure shows them too
            self.log_schedule_figure()

    def log_schedule_figure(self) -> str:
        """The run's schedule as `plots/schedule.png` in its MLflow run; returns the chart-view link of
        its experiment (where the `est/`, `score/` and `schedule/` metrics compare across runs)."""
        # here, not at the top: matplotlib only for a run that was scheduled
        import matplotlib.pyplot as plt

        from headcast.predictor.plots import schedule_plot

        if self.schedule is None or self.run_id is None or self.scheduler is None:
            raise HeadcastError("nothing was scheduled yet; pass budget= and train first")
        title = f"full evaluations: {len(self.requests)} of budget {self.scheduler.budget}"
        figure = schedule_plot(self.schedule.decisions, self.schedule.scores, title)
        client = mlflow.MlflowClient()
        client.log_figure(self.run_id, figure, "plots/schedule.png")
        plt.close(figure)
        return chart_view_link(client.get_run(self.run_id).info.experiment_id)

    @property
    def pending(self) -> list[EvaluationRequest]:
        """Requests whose real scores have not come back yet."""
        done = set(self.schedule.scores) if self.schedule is not None else set()
        return [r for r in self.requests if r.step not in done]

    def on_train_begin(self, args, state, control, **kwargs):
        if self.scheduler is not None and self.checkpoints is None:
            every = self.every_n_steps or (args.save_steps if self.log_on_save else None)
            if not every or not state.max_steps or state.max_steps < 0:
                raise HeadcastError(
                    "scheduling needs the run's number of checkpoints; pass checkpoints=N to HeadcastCallback"
                )
            self.checkpoints = max(1, int(state.max_steps // every))
        if state.is_world_process_zero and mlflow.active_run() is None:
            mlflow.start_run(run_name=getattr(args, "run_name", None))
            self._own_run = True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.every_n_steps
        if every and state.is_world_process_zero and model is not None and state.global_step % every == 0:
            self.measure(model, state.global_step)

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.log_on_save and state.is_world_process_zero and model is not None:
            saved = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            self.measure(model, state.global_step, saved if saved.is_dir() else None)

    def on_train_end(self, args, state, control, **kwargs):
        if self.schedule is not None and state.is_world_process_zero:
            self._ended = True
            link = self.log_schedule_figure()
            print(f"headcast: the evaluation schedule, charted beside the other runs: {link}")
        if self._own_run:
            mlflow.end_run()
            self._own_run = False
