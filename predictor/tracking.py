"""Fit, evaluate and register predictors in MLflow: one parent run per fit, a nested run per estimator.

The store defaults to `mlruns/` (SQLite database plus artifacts, created on first use);
`MLFLOW_TRACKING_URI` points it anywhere else, e.g. a shared tracking server.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema

from headcast.contract import ExtractionContract
from headcast.extract import head_heatmap
from headcast.predictor import pyfunc_model
from headcast.predictor.dataset import Dataset, last_checkpoints
from headcast.predictor.evaluation import (
    held_out_predictions,
    mean_baseline,
    score_predictions,
    step_baseline,
    subset_baseline_mae,
)
from headcast.predictor.hybrid import HybridPredictor
from headcast.predictor.item_results import DEFAULT_ANCHORS, BenchmarkItems
from headcast.predictor.metric_names import metric_key
from headcast.predictor.models import COVERAGE, ESTIMATORS, HeadcastPredictor
from headcast.predictor.plots import feature_importance, frontier_plot, predicted_vs_actual
from headcast.predictor.registry import DEFAULT_STORE, REGISTERED_NAME, configure_tracking, crown
from headcast.predictor.splits import family_folds, run_folds
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION


def use_experiment(name: str) -> str:
    """The experiment's id, creating it (artifacts under `mlruns/artifacts` for the local store).

    Writers sharing a tracking server may create it at once: the one that loses takes the winner's.
    """
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        location = (DEFAULT_STORE / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException as err:
        made = mlflow.get_experiment_by_name(name) if err.error_code == "RESOURCE_ALREADY_EXISTS" else None
        if made is None:
            raise
        return made.experiment_id


def _log_figure(figure, path: str) -> None:
    mlflow.log_figure(figure, path)
    plt.close(figure)


@dataclasses.dataclass
class FitReport:
    """What a fit measured and chose; every number is held-out (whole runs left out)."""

    metrics: dict[str, pd.DataFrame]  # estimator -> per-benchmark metrics
    baselines: dict[str, pd.Series]  # baseline -> per-benchmark MAE
    predictions: pd.DataFrame  # held-out predictions of the chosen estimator
    chosen: str
    model_version: str | None
    run_id: str


def format_report(report: FitReport, benchmarks: list[str]) -> str:
    """Held-out MAE / Spearman per benchmark for each estimator, and the baselines' MAE."""
    lines = [
        f"{'benchmark':<22}"
        + "".join(f"{name:>20}" for name in report.metrics)
        + "".join(f"{name:>18}" for name in report.baselines)
    ]
    lines.append(
        f"{'':<22}"
        + "".join(f"{'MAE / Spearman':>20}" for _ in report.metrics)
        + "".join(f"{'MAE':>18}" for _ in report.baselines)
    )
    for b in benchmarks:
        cells = "".join(
            f"{m.loc[b, 'mae']:>12.2f} / {m.loc[b, 'spearman']:>5.2f}" for m in report.metrics.values()
        )
        lines.append(f"{b:<22}{cells}" + "".join(f"{s[b]:>18.2f}" for s in report.baselines.values()))
    return "\n".join(lines)


def _log_metrics(table: pd.DataFrame, prefix: str = "") -> None:
    for benchmark, row in table.iterrows():
        for name, value in row.items():
            if pd.notna(value):
                mlflow.log_metric(
                    metric_key(*(p for p in (prefix, str(benchmark), str(name)) if p)), float(value)
                )
    for name, value in table.mean(numeric_only=True).items():
        if pd.notna(value):
            mlflow.log_metric(metric_key(*(p for p in (prefix, "mean", str(name)) if p)), float(value))


def _signature(model, example: pd.DataFrame) -> ModelSignature:
    """Feature columns as required inputs; the row's contract and anchor answer columns (hybrid models) as
    optional ones (a row without a contract is taken as the caller vouches; one with another is refused)."""
    signature = infer_signature(example, model.predict(example[model.feature_names_]))
    inputs = [
        ColSpec(spec.type, spec.name, required=False) if spec.name == CONTRACT_COLUMN else spec
        for spec in signature.inputs.inputs
    ]
    optional = [
        ColSpec(DataType.double, name, required=False) for name in getattr(model, "answer_columns_", [])
    ]
    return ModelSignature(Schema([*inputs, *optional]), signature.outputs)


def _register(model, example: pd.DataFrame, contract: ExtractionContract | None = None) -> str:
    """Log `model` as a pyfunc with signature and example, register it, make it the champion.

    The extraction contract of its training rows goes with it three ways: inside the pickled predictor
    (`contract_`, what every prediction path checks), as the model artifact `contract.json` and as the
    version tag `extraction_contract` (for people and tools that look without loading the model).
    """
    packages = ("scikit-learn", "lightgbm", "pandas", "mlflow", "joblib")
    requirements = [f"{p}=={importlib.metadata.version(p)}" for p in packages]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictor.joblib"
        joblib.dump(model, path)
        artifacts = {"predictor": str(path)}
        if contract is not None:
            (Path(tmp) / "contract.json").write_text(json.dumps(contract.to_dict(), indent=1))
            artifacts["contract"] = str(Path(tmp) / "contract.json")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(pyfunc_model.__file__)),
            artifacts=artifacts,
            signature=_signature(model, example),
            input_example=example,
            registered_model_name=REGISTERED_NAME,
            pip_requirements=requirements,
        )
    version = str(info.registered_model_version)
    crown(
        version, model.benchmarks_, FEATURE_SCHEMA_VERSION, None if contract is None else contract.to_json()
    )
    return version


def fit_and_track(
    dataset: Dataset,
    experiment: str = "headcast",
    estimators: Sequence[str] = ESTIMATORS,
    probe_count: int | None = None,
    items: pd.DataFrame | None = None,
    per_head: pd.DataFrame | None = None,
    register: bool = True,
    run_name: str = "fit",
    item_results: dict[str, BenchmarkItems] | None = None,
    anchors_per_benchmark: int = DEFAULT_ANCHORS,
    jobs: int = 1,
    tags: dict[str, str] | None = None,
) -> FitReport:
    """Evaluate each estimator with whole runs held out, log everything, register the best.

    With `item_results` (per-item results of every checkpoint) the registered model is a
    `HybridPredictor`: anchors chosen on all checkpoints, answered estimates with the chosen
    label-free estimator as fallback; its anchors are logged as `anchors.json`. `tags` go on the run.
    """
    configure_tracking()
    experiment_id = use_experiment(experiment)
    folds = run_folds(dataset)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as parent:
        mlflow.log_params(
            {
                "checkpoints": len(dataset.features),
                "runs": dataset.groups.nunique(),
                "benchmarks": ",".join(dataset.benchmarks),
                "estimators": ",".join(estimators),
                "features": dataset.features.shape[1],
                "feature_schema_version": FEATURE_SCHEMA_VERSION,
                "folds": len(folds),
                "probe_count": probe_count,
            }
        )
        mlflow.set_tags(tags or {})
        if dataset.contract is not None:
            mlflow.log_dict(dataset.contract.to_dict(), "contract.json")
            mlflow.set_tag("extraction_contract", dataset.contract.to_json())
        baselines = _log_baselines(dataset, folds, items, probe_count)
        metrics, predictions = {}, {}
        for estimator in estimators:
            with mlflow.start_run(experiment_id=experiment_id, run_name=estimator, nested=True):
                predictions[estimator] = _evaluate_estimator(dataset, estimator, folds)
                metrics[estimator] = score_predictions(dataset, predictions[estimator])
                _log_metrics(metrics[estimator])

        # `auto` chooses inside each training fold, so its held-out numbers stay honest; picking the
        # best of several estimators on the held-out folds themselves would flatter the winner
        chosen = "auto" if "auto" in metrics else min(metrics, key=lambda name: metrics[name]["mae"].mean())
        mlflow.set_tag("chosen_estimator", chosen)
        if per_head is not None:
            _log_heatmaps(dataset, per_head)
        version = None
        if register or item_results is not None:  # the hybrid's anchors are logged even unregistered
            final = _final_model(dataset, chosen, item_results, anchors_per_benchmark, jobs)
        if register:
            example = dataset.features.head(3).reset_index(drop=True)
            example.insert(0, "schema_version", FEATURE_SCHEMA_VERSION)
            if dataset.contract is not None:
                example.insert(1, CONTRACT_COLUMN, dataset.contract.to_json())
            mlflow.set_tag("regressor_per_benchmark", json.dumps(final.chosen_))
            version = _register(final, example, dataset.contract)
            mlflow.set_tag("registered_version", version)
    return FitReport(metrics, baselines, predictions[chosen], chosen, version, parent.info.run_id)


def _log_baselines(
    dataset: Dataset, folds: list, items: pd.DataFrame | None, probe_count: int | None
) -> dict[str, pd.Series]:
    """Held-out MAE of the cheap baselines any estimator must beat, logged under their names."""
    baselines = {"mean_baseline": score_predictions(dataset, mean_baseline(dataset, folds))["mae"]}
    steps = step_baseline(dataset, folds)
    if steps is not None:
        baselines["step_baseline"] = score_predictions(dataset, steps)["mae"]
    if probe_count and items is not None:
        baselines["subset_baseline"] = subset_baseline_mae(dataset.scores, items, probe_count)
    for name, mae in baselines.items():
        _log_metrics(mae.to_frame("mae"), prefix=name)
    return baselines


def _evaluate_estimator(dataset: Dataset, estimator: str, folds: list) -> pd.DataFrame:
    """Held-out predictions of one estimator, with its family protocol, plots, residuals and feature
    importances logged into the active (nested) run."""
    mlflow.log_params({"estimator": estimator, "coverage": COVERAGE})
    predictions = held_out_predictions(dataset, estimator, folds)
    family = family_folds(dataset)
    if family:
        by_family = score_predictions(dataset, held_out_predictions(dataset, estimator, family))
        _log_metrics(by_family[["mae", "spearman"]], prefix="leave_family_out")
    title = f"{estimator}, runs held out"
    _log_figure(predicted_vs_actual(dataset.scores, predictions, title), "plots/predicted_vs_actual.png")
    mlflow.log_text((dataset.scores - predictions[dataset.benchmarks]).to_csv(), "residuals.csv")
    full = HeadcastPredictor(estimator).fit(dataset.features, dataset.scores, dataset.groups)
    importance = full.feature_importance()
    if not importance.empty:
        mlflow.log_text(importance.to_csv(), "feature_importance.csv")
        _log_figure(feature_importance(importance, estimator), "plots/feature_importance.png")
    return predictions


def _final_model(
    dataset: Dataset,
    chosen: str,
    item_results: dict[str, BenchmarkItems] | None,
    anchors_per_benchmark: int,
    jobs: int,
) -> HeadcastPredictor | HybridPredictor:
    """The model to register, fitted on every checkpoint: the hybrid when per-item results are given
    (its anchors logged as `anchors.json`), else the chosen estimator."""
    if item_results is None:
        return HeadcastPredictor(chosen).fit(
            dataset.features, dataset.scores, dataset.groups, contract=dataset.contract
        )
    final = HybridPredictor(anchors_per_benchmark, jobs=jobs).fit(
        dataset.features, dataset.scores, dataset.groups, item_results, contract=dataset.contract
    )
    mlflow.log_dict(final.anchors_, "anchors.json")
    mlflow.log_param("anchors_per_benchmark", anchors_per_benchmark)
    return final


def _log_heatmaps(dataset: Dataset, per_head: pd.DataFrame, limit: int = 12) -> None:
    """Layer x head heatmaps of each run's last checkpoint (the one whose scores matter most)."""
    for checkpoint in list(last_checkpoints(dataset.features.index).values())[:limit]:
        table = per_head[per_head["checkpoint"] == checkpoint]
        if not table.empty:
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", checkpoint)
            _log_figure(head_heatmap(table, checkpoint), f"heatmaps/{name}.png")


def log_frontier(result, run_id: str) -> None:
    """The cost–error frontier into an existing run: a figure, its tables, and metrics per estimator and k
    (mean MAE, pairs ordered right per gap, the budget allocation's MAE).

    Through the client, not `start_run`: the run may belong to another experiment than the active one.
    """

    client, name = MlflowClient(), metric_key(result.protocol, sep="-")
    figure = frontier_plot(result.mae, f"held-out MAE vs answered items ({result.protocol})")
    client.log_figure(run_id, figure, f"plots/frontier_{name}.png")
    plt.close(figure)
    client.log_text(run_id, result.mae.to_csv(), f"frontier_{name}.csv")
    client.log_text(run_id, result.ordering.to_csv(), f"frontier_{name}_ordering.csv")
    client.log_text(run_id, result.allocation.to_csv(), f"frontier_{name}_allocation.csv")
    values = {
        metric_key("frontier", name, "mean", str(estimator), f"k{k}"): value
        for estimator, row in result.mean().iterrows()
        for k, value in row.items()
    }
    values |= {
        metric_key("frontier", name, "ordering", str(estimator), f"gap{gap:g}", f"k{k}"): value
        for (estimator, gap), row in result.ordering.iterrows()
        for k, value in row.items()
    }
    values |= {
        metric_key("frontier", name, "allocation", f"total{total}", str(column)): value
        for total, row in result.allocation.iterrows()
        for column, value in row.items()
    }
    values |= {metric_key("frontier", name, "adaptive_rounds", f"k{k}"): n for k, n in result.rounds.items()}
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, 0) for key, value in values.items() if pd.notna(value)]
    client.log_batch(run_id, metrics=metrics)
