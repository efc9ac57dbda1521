"""Predicted scores on training runs already in MLflow: for the user who trained without the callback.

A training run names its checkpoints folder in a param (`output_dir`, as transformers' MLflow callback
and headcast's zoo log it); every checkpoint under it (`checkpoint-500/`, `000500/`) is predicted and
the scores, with their intervals, are logged into the run at the checkpoint's step under the callback's
names (`pred/<benchmark>`, `_lower`, `_upper`), so the MLflow UI charts them beside measured ones.
Steps a run already has predictions for are skipped, so running it again only adds new checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from headcast.errors import HeadcastError
from headcast.predictor.dataset import step_of
from headcast.predictor.metric_names import prediction_metrics
from headcast.predictor.predicting import PredictionPipeline
from headcast.predictor.pyfunc import benchmarks_of, prediction_json

CHECKPOINTS_PARAM = "output_dir"
MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def chart_view_link(experiment_id: str, tracking_uri: str | None = None) -> str:
    """The MLflow UI page comparing an experiment's runs as charts. Opened plainly, MLflow 3's UI may land
    on the experiment's GenAI overview instead; this link goes straight to the training runs' charts."""
    uri = tracking_uri if tracking_uri is not None else mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else MLFLOW_UI
    return f"{base}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART"


def log_run_predictions(run_id: str, steps: Sequence[int], predictions: pd.DataFrame) -> int:
    """Log one prediction row per step into `run_id` (MLflow's client: any run, open or finished)."""

    now = int(time.time() * 1000)
    rows = prediction_json(predictions, benchmarks_of(predictions))
    metrics = [
        Metric(key, value, now, int(step))
        for step, row in zip(steps, rows, strict=True)
        for key, value in prediction_metrics(row).items()
    ]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        MlflowClient().log_batch(run_id, metrics=metrics[start : start + 1000])
    return len(rows)


def run_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint directly under a run's output folder, by step."""
    folder = Path(folder)
    found = []
    for config in folder.glob("*/config.json"):
        step = step_of(config.parent.name)
        if step == step and not config.parent.name.endswith(".tmp"):  # NaN: not a step folder
            found.append((int(step), config.parent))
    return sorted(found)


def predicted_steps(run_id: str) -> set[int]:
    """Steps at which a run already has predictions (any `pred/` metric logged there)."""

    client = MlflowClient()
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith("pred/") and k != "pred/ood"]
    return {m.step for m in client.get_metric_history(run_id, keys[0])} if keys else set()


def runs_to_predict(experiment: str, param: str = CHECKPOINTS_PARAM) -> dict[str, list[tuple[int, Path]]]:
    """Run id -> checkpoints not yet predicted, for every run of `experiment` whose `param` is a folder."""

    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise HeadcastError(
            f"no MLflow experiment named {experiment!r}; list them with 'mlflow experiments search'"
        )
    todo = {}
    for run in client.search_runs([found.experiment_id], max_results=5000):
        folder = run.data.params.get(param)
        if folder and Path(folder).is_dir():
            done = predicted_steps(run.info.run_id)
            todo[run.info.run_id] = [(s, p) for s, p in run_checkpoints(folder) if s not in done]
    if not todo:
        raise HeadcastError(
            f"no run in {experiment!r} has a param {param!r} naming a folder on this machine; "
            "log the checkpoints folder as that param (transformers' MLflow callback logs output_dir)"
        )
    return todo


def predict_runs(
    experiment: str, pipeline: PredictionPipeline, param: str = CHECKPOINTS_PARAM, progress: bool = True
) -> dict[str, int]:
    """Predict every not-yet-predicted checkpoint of `experiment`'s runs and log the scores into each run.

    Returns run id -> checkpoints predicted.
    """
    todo = runs_to_predict(experiment, param)
    paths = [path for checkpoints in todo.values() for _, path in checkpoints]
    if not paths:
        return dict.fromkeys(todo, 0)
    table = pipeline.features(paths, progress=progress)
    predictions = pipeline.model.predict(table).set_axis(table["checkpoint"])
    return {
        run_id: log_run_predictions(
            run_id, [step for step, _ in checkpoints], predictions.loc[[str(p) for _, p in checkpoints]]
        )
        if checkpoints
        else 0
        for run_id, checkpoints in todo.items()
    }
