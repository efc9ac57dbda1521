"""The zoo's training runs as MLflow runs, compared in the MLflow UI like any training a user runs.

One MLflow run per training run: its config as params (`output_dir` names its checkpoints folder, as
transformers' MLflow callback does, so `headcast predict-runs` finds the checkpoints of either) and
its measured scores as `score/<benchmark>` at every checkpoint step, beside which `predict-runs` puts
`pred/<benchmark>` with its interval. The experiment is tagged as model development, which makes the
MLflow UI open on its runs rather than on the GenAI overview. Logging is idempotent: a training run
already in the experiment is left as it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from headcast.errors import HeadcastError
from headcast.experiments.layout import RUN_META_FILE, ZooLayout
from headcast.predictor import metric_key, run_of, step_of

TRAINING_RUN_TAG = "headcast.training_run"
ZOO_TAG = "headcast.zoo"  # the zoo folder a training run was logged from
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
ZOO_EXPERIMENT = "headcast-zoo"


def _flat(prefix: str, value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {
            k: v
            for key, item in value.items()
            for k, v in _flat(f"{prefix}.{key}" if prefix else key, item).items()
        }
    return {prefix: str(value)}


def run_params(run_dir: Path) -> dict[str, str]:
    """A training run's settings, from the `zoo_run.json` its checkpoints carry, plus `output_dir`."""
    metas = sorted(run_dir.glob(f"*/{RUN_META_FILE}"))
    if not metas:
        raise HeadcastError(f"{run_dir} holds no zoo checkpoints (no */{RUN_META_FILE}); build the zoo first")
    meta = json.loads(metas[0].read_text(encoding="utf-8"))
    meta.pop("step", None)
    return _flat("", meta) | {"output_dir": str(run_dir.resolve())}


def log_training_runs(zoo: str | Path, experiment: str = ZOO_EXPERIMENT) -> dict[str, str]:
    """Log each of the zoo's training runs (not yet in `experiment`) as an MLflow run; name -> run id."""
    # here, not at the top: loads MLflow only when this runs
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor import configure_tracking, read_scores, use_experiment

    zoo = Path(zoo)
    layout = ZooLayout(zoo)
    scores = read_scores(layout.scores)
    configure_tracking()
    client = MlflowClient()
    experiment_id = use_experiment(experiment)
    for key, value in EXPERIMENT_KIND.items():
        client.set_experiment_tag(experiment_id, key, value)
    where = str(zoo.resolve())  # two zoos (another seed, another preset) may share run names
    logged = {
        run.data.tags[TRAINING_RUN_TAG]: run.info.run_id
        for run in client.search_runs([experiment_id], max_results=5000)
        if run.data.tags.get(ZOO_TAG) == where and TRAINING_RUN_TAG in run.data.tags
    }
    now = int(time.time() * 1000)
    for name, table in scores.groupby(scores["checkpoint"].map(run_of)):
        if name in logged:
            continue
        run = client.create_run(experiment_id, run_name=name, tags={TRAINING_RUN_TAG: name, ZOO_TAG: where})
        params = [Param(k, v[:6000]) for k, v in run_params(layout.run_dir(name)).items()]
        metrics = [
            Metric(
                metric_key("score", row.benchmark, sep="/"),
                float(row.score),
                now,
                int(step_of(row.checkpoint)),
            )
            for row in table.itertuples()
        ]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)
        logged[name] = run.info.run_id
    return logged
