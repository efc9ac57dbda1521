"""`write_report`: measure a zoo, draw the figures, write the tables and the Markdown, log to MLflow."""

from __future__ import annotations

import os
import time
from pathlib import Path

from headcast.experiments.report.collect import measure
from headcast.experiments.report.figures import (
    ablation_figures,
    correlation_figure,
    depth_figures,
    probe_size_figure,
)
from headcast.experiments.report.measures import ablation_summary
from headcast.experiments.report.render import render
from headcast.experiments.report.settings import ReportSettings
from headcast.experiments.report.tables import read_zoo
from headcast.experiments.report.tracking import EXPERIMENT, log_to_mlflow
from headcast.files import atomic_output

DEFAULTS = ReportSettings()


def write_report(
    zoo_dir: str | Path,
    out: str | Path,
    settings: ReportSettings = DEFAULTS,
    markdown: str | Path | None = None,
    experiment: str | None = EXPERIMENT,
    progress: bool = True,
) -> Path:
    """Measure, draw, write `out/` (figures, CSVs) and the Markdown (default out/report.md); log to MLflow."""
    # here, not at the top: loads matplotlib only when this runs
    from headcast.extract import save_figure

    started = time.perf_counter()
    zoo = read_zoo(zoo_dir)
    out = Path(out)
    markdown = Path(markdown) if markdown is not None else out / "report.md"
    findings, features = measure(zoo, settings, progress)
    figures = depth_figures(findings.profile, zoo.finals())
    figures |= correlation_figure(findings.corr, features, zoo.wide.loc[zoo.names])
    figures |= ablation_figures(ablation_summary(findings.ablation))
    if findings.curve is not None and not findings.curve.empty:
        figures |= probe_size_figure(findings.curve, findings.curve_baseline)
    out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        save_figure(figure, out / name)
    tables = {
        "depth_profile.csv": findings.profile,
        "visual_sets.csv": findings.training,
        "correlations.csv": findings.corr,
        "ablation.csv": findings.ablation,
    }
    if findings.curve is not None:
        tables["probe_size.csv"] = findings.curve
    for name, table in tables.items():
        with atomic_output(out / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4g")
    findings.seconds["total"] = time.perf_counter() - started
    relative = os.path.relpath(out.resolve(), markdown.resolve().parent)
    with atomic_output(markdown) as tmp:
        tmp.write_text(render(findings, Path(relative).as_posix()), encoding="utf-8")
    if experiment:
        log_to_mlflow(findings, out, markdown, [*figures, *tables], experiment)
    return markdown
