"""The report's figures, drawn from the measured tables (matplotlib, headless); name -> Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from headcast.experiments.report.measures import CORRELATED, THIRDS, probe_curve_summary
from headcast.predictor import run_of

COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
)


def _figures():
    # here, not at the top: loads matplotlib only when this runs
    import matplotlib

    matplotlib.use("Agg")
    # here, not at the top: loads matplotlib only when this runs
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, width: float = 3.0, height: float = 2.6):
    plt = _figures()
    cols = min(4, n)
    rows = -(-n // cols)
    figure, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return figure, axes.ravel()


def depth_figures(profile: pd.DataFrame, finals: dict[str, str]) -> dict:
    """Visual-head fraction per depth third: final checkpoints side by side, then along training per run."""
    plt = _figures()
    final = profile[profile["checkpoint"].isin(finals.values())]
    runs = list(finals)
    figure, ax = plt.subplots(figsize=(1.2 + 1.1 * len(runs), 3.2), layout="constrained")
    width = 0.8 / len(THIRDS)
    for b, third in enumerate(THIRDS):
        values = final[final["third"] == third].set_index("run").loc[runs, "fraction"]
        ax.bar(
            np.arange(len(runs)) + (b - 1) * width, values.to_numpy(), width, label=third, color=COLOURS[b]
        )
    ax.set_xticks(np.arange(len(runs)), runs, rotation=30, ha="right", fontsize=7)
    ax.set(
        ylabel="visual heads / heads", ylim=(0, 1), title="visual heads per depth third, final checkpoints"
    )
    ax.legend(fontsize=7)
    figures = {"depth_final.png": figure}
    figure, axes = _grid(len(runs))
    for ax, run in zip(axes, runs, strict=False):
        part = profile[profile["run"] == run]
        for b, third in enumerate(THIRDS):
            line = part[part["third"] == third].sort_values("step")
            ax.plot(line["step"], line["fraction"], marker="o", label=third, color=COLOURS[b])
        ax.set(title=run, ylim=(-0.05, 1.05), xlabel="step", ylabel="visual / heads")
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=7)
    figures["depth_training.png"] = figure
    return figures


def correlation_figure(corr: pd.DataFrame, features: pd.DataFrame, wide: pd.DataFrame) -> dict:
    """Spearman heatmap (metric x benchmark) and concentration against mean accuracy, coloured by run."""

    plt = _figures()
    grid = corr.pivot(index="metric", columns="benchmark", values="rho")
    grid = grid.loc[list(CORRELATED), [*wide.columns, "mean"]]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, 3.6), layout="constrained", gridspec_kw={"width_ratios": [2.2, 1]}
    )
    image = left.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    left.set_xticks(range(grid.shape[1]), grid.columns, rotation=35, ha="right", fontsize=7)
    left.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        left.text(j, i, "" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=6)
    left.set_title("Spearman across checkpoints", fontsize=9)
    figure.colorbar(image, ax=left, shrink=0.8)
    mean = wide.mean(axis=1)
    x = features.set_index("checkpoint").loc[mean.index, CORRELATED["concentration"]]
    runs = sorted({run_of(c) for c in mean.index})
    for i, run in enumerate(runs):
        members = [c for c in mean.index if run_of(c) == run]
        right.plot(x[members], mean[members], marker="o", color=COLOURS[i % len(COLOURS)], label=run, lw=0.8)
    right.set(xlabel="mean concentration", ylabel="mean accuracy (%)", title="along each run (step ->)")
    right.title.set_fontsize(9)
    right.legend(fontsize=6)
    return {"correlations.png": figure}


def ablation_figures(summary: pd.DataFrame) -> dict:
    """Drop in mean accuracy vs k: top-k visual heads against k random heads (mean ± std over seeds)."""
    plt = _figures()
    runs = list(dict.fromkeys(summary["run"]))
    figure, axes = _grid(len(runs))
    for ax, run in zip(axes, runs, strict=False):
        part = summary[summary["run"] == run]
        top = part[part["kind"] == "top-k visual"].sort_values("k")
        rnd = part[part["kind"] == "random"].sort_values("k")
        same = part[part["kind"] == "random, same layers"].sort_values("k")
        ax.plot(top["k"], top["mean"], marker="o", color="tab:red", label="top-k visual")
        ax.errorbar(
            rnd["k"], rnd["mean"], yerr=rnd["std"], marker="s", color="tab:gray", capsize=3, label="random"
        )
        ax.errorbar(
            same["k"],
            same["mean"],
            yerr=same["std"],
            marker="^",
            color="tab:blue",
            capsize=3,
            label="random, same layers",
        )
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set(title=run, xscale="log", xlabel="heads removed (k)", ylabel="accuracy change (points)")
        ax.set_xticks(top["k"].tolist(), [str(k) for k in top["k"]])
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=7)
    figures = {"ablation_topk.png": figure}
    layers = summary[summary["kind"].isin(["late layers", "early layers"])]
    figure, ax = plt.subplots(figsize=(1.2 + 1.1 * len(runs), 3.2), layout="constrained")
    for b, kind in enumerate(("late layers", "early layers")):
        values = layers[layers["kind"] == kind].set_index("run").loc[runs, "mean"]
        ax.bar(
            np.arange(len(runs)) + (b - 0.5) * 0.4, values.to_numpy(), 0.4, label=kind, color=COLOURS[b + 2]
        )
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xticks(np.arange(len(runs)), runs, rotation=30, ha="right", fontsize=7)
    ax.set(
        ylabel="accuracy change (points)",
        title="removing the last layers' heads vs as many first-layer heads",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    figures["ablation_layers.png"] = figure
    return figures


def probe_size_figure(curve: pd.DataFrame, baseline: pd.DataFrame) -> dict:
    """Held-out MAE against probe-set size: per benchmark, and their mean ± std over draws."""
    plt = _figures()
    figure, ax = plt.subplots(figsize=(5, 3.4), layout="constrained")
    for i, (benchmark, part) in enumerate(curve.groupby("benchmark")):
        line = part.groupby("probes")["mae"].mean()
        ax.plot(
            line.index, line.to_numpy(), lw=0.7, alpha=0.6, color=COLOURS[i % len(COLOURS)], label=benchmark
        )
    overall = probe_curve_summary(curve)
    ax.errorbar(
        overall.index,
        overall["mean"],
        yerr=overall["std"].fillna(0),
        color="black",
        lw=2,
        capsize=3,
        marker="o",
        label="mean over benchmarks",
    )
    ax.axhline(float(baseline["mae"].mean()), color="black", ls="--", lw=1, label="mean-score baseline")
    ax.set(
        xscale="log",
        xlabel="probes",
        ylabel="held-out MAE (points)",
        title="prediction error vs probe-set size",
    )
    ax.set_xticks(overall.index.tolist(), [str(n) for n in overall.index])
    ax.legend(fontsize=6, ncol=2)
    return {"probe_size.png": figure}
