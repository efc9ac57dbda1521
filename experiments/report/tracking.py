"""The report as one MLflow run: Markdown, figures and tables as artifacts, headline numbers as metrics,
settings as parameters (so a run says which thresholds its verdicts used)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from headcast.experiments.report.measures import ablation_summary
from headcast.experiments.report.tables import Findings

EXPERIMENT = "headcast-report"


def log_to_mlflow(
    findings: Findings, out: Path, markdown: Path, files: Sequence[str], experiment: str
) -> str:
    """One run in `experiment`: the Markdown, figures and tables as artifacts, headline numbers as metrics."""
    # here, not at the top: loads MLflow only when this runs
    import mlflow

    # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor import configure_tracking, metric_key, use_experiment

    configure_tracking()
    summary = ablation_summary(findings.ablation)
    with mlflow.start_run(
        experiment_id=use_experiment(experiment), run_name=f"report-{findings.zoo.root.name}"
    ) as run:
        mlflow.log_params(
            {"zoo": str(findings.zoo.root.resolve()), "preset": findings.zoo.stamp.get("preset")}
            | {k: str(v) for k, v in dataclasses.asdict(findings.settings).items()}
        )
        for name in files:
            mlflow.log_artifact(str(out / name), "figures" if name.endswith(".png") else "tables")
        mlflow.log_artifact(str(markdown))
        for (kind, k), value in summary.groupby(["kind", "k"])["mean"].mean().items():
            mlflow.log_metric(metric_key("ablation_change", kind.replace(" ", "_"), f"k{k}"), float(value))
        corr = findings.corr
        concentration = corr[corr["metric"] == "concentration"].set_index("benchmark")["rho"]
        for benchmark, rho in concentration.dropna().items():
            mlflow.log_metric(metric_key("spearman_concentration", benchmark), float(rho))
        if findings.curve is not None:
            for size, mae in findings.curve.groupby("probes")["mae"].mean().items():
                mlflow.log_metric("probe_size_mae", float(mae), step=int(size))
        return run.info.run_id
