"""Layer x head heatmaps of per-head metrics (for files and MLflow artifacts)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from headcast.files import atomic_output

HEATMAP_METRICS = ("visual_mass", "concentration", "region_mass", "visual_head_rate")


def head_heatmap(per_head: pd.DataFrame, title: str) -> Figure:
    """One panel per metric, layers down, heads across, for one checkpoint's per-head table."""
    shown = [m for m in HEATMAP_METRICS if per_head[m].notna().any()]
    n_layers, n_heads = int(per_head["layer"].max()) + 1, int(per_head["head"].max()) + 1
    figure, axes = plt.subplots(
        1,
        len(shown),
        figsize=(1.0 + 2.6 * len(shown) * max(n_heads, 8) / 16, 1.0 + 2.6 * max(n_layers, 8) / 16),
        squeeze=False,
        layout="constrained",
    )
    for ax, metric in zip(axes[0], shown, strict=True):
        grid = per_head.pivot(index="layer", columns="head", values=metric).to_numpy()
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, origin="upper")
        ax.set(title=metric, xlabel="head", ylabel="layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        figure.colorbar(image, ax=ax, shrink=0.8)
    figure.suptitle(title, fontsize=9)
    return figure


def save_figure(figure: Figure, path) -> None:

    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
