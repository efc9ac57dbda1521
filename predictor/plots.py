"""Figures people look at: predicted vs actual per benchmark, residuals, feature importance, schedules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def predicted_vs_actual(actual: pd.DataFrame, predicted: pd.DataFrame, title: str) -> Figure:
    """One panel per benchmark: held-out prediction (with interval) against the measured score."""
    benchmarks = list(actual.columns)
    cols = min(4, len(benchmarks))
    rows = -(-len(benchmarks) // cols)
    figure, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    for ax, benchmark in zip(axes.ravel(), benchmarks, strict=False):
        y, p = actual[benchmark], predicted.loc[actual.index, benchmark]
        if f"{benchmark}_lower" in predicted:
            low = p - predicted.loc[actual.index, f"{benchmark}_lower"]
            high = predicted.loc[actual.index, f"{benchmark}_upper"] - p
            ax.errorbar(y, p, yerr=[low, high], fmt="none", ecolor="0.75", elinewidth=0.8)
        ax.scatter(y, p, s=14)
        ax.plot([0, 100], [0, 100], color="0.5", linewidth=0.8, linestyle="--")
        ax.set(title=benchmark, xlabel="actual (%)", ylabel="predicted (%)", xlim=(0, 100), ylim=(0, 100))
    for ax in axes.ravel()[len(benchmarks) :]:
        ax.axis("off")
    figure.suptitle(title, fontsize=10)
    return figure


def feature_importance(importance: pd.DataFrame, title: str, top: int = 20) -> Figure:
    """The features that matter most, averaged over benchmarks (each benchmark scaled to sum 1)."""
    shares = (importance / importance.sum().where(importance.sum() > 0, 1)).mean(axis=1).nlargest(top)[::-1]
    figure, ax = plt.subplots(figsize=(7, 0.25 * len(shares) + 1.2), layout="constrained")
    ax.barh(shares.index, shares.to_numpy())
    ax.set(title=title, xlabel="mean share of importance")
    ax.tick_params(axis="y", labelsize=7)
    return figure


FRONTIER_STYLE = {  # estimator -> (colour, line style, width): answers solid, label-free dashed
    "subset": ("0.45", "-", 1.5),
    "subset_regression": ("black", "-.", 1.5),
    "irt_static": ("tab:cyan", ":", 1.5),
    "adaptive": ("tab:brown", "-", 1.5),
    "anchors": ("tab:blue", "-", 1.5),
    "hybrid_without_heads": ("tab:orange", "-", 4.0),  # wide and under `hybrid`: visible where they agree
    "hybrid": ("tab:red", "-", 1.5),
    "heads": ("tab:green", "--", 1.0),
    "confidence": ("tab:purple", "--", 1.0),
}


def frontier_plot(mae: pd.DataFrame, title: str) -> Figure:
    """Held-out MAE against answered items per benchmark: one panel per benchmark, then their mean.

    `mae`: index (benchmark, estimator), columns the budgets k. Label-free estimators (k = 0 only)
    are drawn as horizontal dashed lines across the panel: what no answers buy.
    """
    panels = [*mae.index.get_level_values("benchmark").unique(), "mean"]
    mean = mae.groupby(level="estimator", sort=False).mean()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    figure, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False, layout="constrained"
    )
    budgets = [k for k in mae.columns if k > 0]
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        table = mean if panel == "mean" else mae.xs(panel, level="benchmark")
        for estimator, row in table.iterrows():
            colour, style, width = FRONTIER_STYLE.get(estimator, ("black", "-", 1.5))
            line = {"color": colour, "linestyle": style, "linewidth": width}
            answered = row[budgets].astype(float)
            if answered.notna().any():
                ax.plot(budgets, answered.to_numpy(), marker="o", markersize=3, label=estimator, **line)
            elif pd.notna(row.get(0)):
                ax.axhline(float(row[0]), label=f"{estimator} (k=0)", **line)
        ax.set(title=panel, xscale="log", xlabel="answered items per benchmark", ylabel="MAE (points)")
        ax.set_xticks(budgets, [str(k) for k in budgets])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    figure.suptitle(title, fontsize=10)
    return figure


def schedule_plot(decisions: Sequence[Any], scores: Mapping[int, Mapping[str, float]], title: str) -> Figure:
    """A training run's schedule, one panel per benchmark: the estimate in use at each step with its
    interval, the real scores where they were measured, and a marker where a full evaluation was asked for.

    `decisions`: the run's `Decision`s in step order; `scores`: step -> benchmark -> real score.
    """
    benchmarks = list(decisions[0].estimate) if decisions else []
    cols = min(4, max(1, len(benchmarks)))
    rows = max(1, -(-len(benchmarks) // cols))
    figure, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False, layout="constrained"
    )
    steps = [d.step for d in decisions]
    asked = [d.step for d in decisions if d.evaluate]
    for ax, benchmark in zip(axes.ravel(), benchmarks, strict=False):
        estimate = [d.estimate[benchmark] for d in decisions]
        ax.fill_between(
            steps,
            [e["lower"] for e in estimate],
            [e["upper"] for e in estimate],
            color="tab:blue",
            alpha=0.15,
        )
        ax.plot(steps, [e["score"] for e in estimate], color="tab:blue", marker=".", label="estimate")
        real = sorted((step, values[benchmark]) for step, values in scores.items() if benchmark in values)
        if real:
            ax.scatter(*zip(*real, strict=True), color="black", zorder=3, s=18, label="real score")
        if asked:
            ax.scatter(
                asked, [100] * len(asked), marker="v", color="tab:red", s=30, label="evaluation asked for"
            )
        ax.set(title=benchmark, xlabel="step", ylabel="score (%)", ylim=(0, 104))
    for ax in axes.ravel()[len(benchmarks) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    figure.suptitle(title, fontsize=10)
    return figure
