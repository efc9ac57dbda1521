"""`headcast fit --anchors-out --tasks`: the anchors as lmms-eval documents, with the truth's provenance."""

from __future__ import annotations

import os
from pathlib import Path

from headcast.extract import load_tasks, task_names
from headcast.predictor.lmms_provenance import task_provenance
from headcast.predictor.task_anchors import write_task_anchors


def write_fitted_task_anchors(
    run_id: str, tasks: str, include_path: Path | None, items: Path, out: Path
) -> Path:
    """The fit's anchors (its MLflow run's `anchors.json`) as an lmms-eval anchor file at `out`.

    The provenance of lmms-eval `--log_samples` truth is logged to the run as `harness.json` and kept
    in the file, so that the fitted model's anchors say which task configuration they mean.
    """
    # here, not at the top: loads MLflow only when this runs
    import mlflow

    anchors = mlflow.artifacts.load_dict(f"runs:/{run_id}/anchors.json")
    provenance = task_provenance(items) if os.path.isdir(items) else {}
    loaded = load_tasks(task_names(tasks), include_path)
    record = {"tasks": provenance, "task_config": {n: t.config_hash() for n, t in loaded.items()}}
    # the client logs into the finished run by id, whatever experiment the process has active
    mlflow.MlflowClient().log_dict(run_id, record, "harness.json")
    write_task_anchors(anchors, loaded, include_path, provenance, out)
    print(f"anchor file: {out} ({sum(map(len, anchors.values()))} lmms-eval documents)")
    return out
