"""Each finished job as one MLflow run: params say what was asked, metrics what was predicted.

Metric names come from `predictor.metric_names`, as the training callback's do (without its prefix:
the run is the job's own).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from headcast.predictor.metric_names import prediction_metrics
from headcast.predictor.registry import configure_tracking

if TYPE_CHECKING:  # the queue imports this module; the types only name its records
    from headcast.predictor.predicting import FittedModel
    from headcast.predictor.service.jobs import Job


def log_job_run(job: Job, model: FittedModel | None, outcome: str, device: str, experiment: str) -> str:
    """Log `job` (done or failed) as a finished or failed run of `experiment`; returns the run id."""
    import mlflow  # noqa: F401  (configures the client's default store)
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor.tracking import use_experiment

    configure_tracking()
    client = MlflowClient()
    run = client.create_run(use_experiment(experiment), run_name=f"job-{job.id[:8]}")
    now = int(time.time() * 1000)
    params = {"checkpoint": job.checkpoint, "probes": job.probes, "query": job.query, "device": device}
    if model is not None:
        params |= {"model_uri": model.info["uri"], "model_version": str(model.info["version"])}
    seconds = (job.finished or time.time()) - (job.started or job.submitted)
    result = job.result or {}
    metrics = prediction_metrics(result.get("prediction", {}), result.get("features"), seconds)
    tags = {"headcast.job_id": job.id, "headcast.status": outcome}
    if job.error:
        tags["headcast.error"] = job.error[:5000]
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED" if outcome == "done" else "FAILED")
    return run.info.run_id
