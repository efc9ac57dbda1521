"""The report's measurements as pure functions on tables: per-head tables, features and scores in,
tables out. Running models (extraction, ablations, refits) lives in `experiments.report.collect`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import pandas as pd

from headcast.experiments.report.settings import ReportSettings
from headcast.extract import depth_bins
from headcast.predictor import run_of, step_of

THIRDS = ("early", "middle", "late")
Head = tuple[int, int]


def _top_share(metric: str, quantile: int) -> tuple[str, str]:
    """(label, feature column) of a metric's upper quantile over heads; the label says which share."""
    return f"{metric} (top {100 - quantile}% heads)", f"all.{metric.replace(' ', '_')}.q{quantile}"


CORRELATED = {
    "concentration": "all.concentration.mean",
    "visual mass": "all.visual_mass.mean",
    **dict([_top_share("concentration", 90), _top_share("visual mass", 90)]),
}


# ---------------------------------------------------------------- 1. where visual heads sit


def depth_profile(per_head: pd.DataFrame, visual_rate: float) -> pd.DataFrame:
    """Per checkpoint and relative-depth third: heads, visual heads, fraction, share of all visual."""

    rows = []
    for checkpoint, table in per_head.groupby("checkpoint", sort=False):
        n_layers = int(table["layer"].max()) + 1
        third = depth_bins(n_layers, len(THIRDS))[table["layer"].to_numpy()]
        visual = table["visual_head_rate"].to_numpy() >= visual_rate
        for b, name in enumerate(THIRDS):
            inside = third == b
            rows.append(
                {
                    "checkpoint": checkpoint,
                    "run": run_of(checkpoint),
                    "step": step_of(checkpoint),
                    "third": name,
                    "heads": int(inside.sum()),
                    "visual": int((visual & inside).sum()),
                    "total_visual": int(visual.sum()),
                    "total_heads": len(table),
                    "layers": n_layers,
                    "third_layers": len(set(table["layer"].to_numpy()[inside].tolist())),
                }
            )
    profile = pd.DataFrame(rows)
    profile["fraction"] = profile["visual"] / profile["heads"].where(profile["heads"] > 0)
    profile["share"] = profile["visual"] / profile["total_visual"].where(profile["total_visual"] > 0)
    return profile


def visual_sets_along_training(per_head: pd.DataFrame, visual_rate: float) -> pd.DataFrame:
    """Per run and checkpoint: its visual heads, and how far that set is the final checkpoint's.

    `overlap` is the Jaccard index of the two sets (NaN when both are empty): a set of visual heads
    that forms and then settles rises in count and reaches an overlap near 1 before the last step.
    """

    visual = per_head[per_head["visual_head_rate"] >= visual_rate]
    heads_of = {
        checkpoint: set(zip(part["layer"], part["head"], strict=True))
        for checkpoint, part in visual.groupby("checkpoint", sort=False)
    }
    sizes = per_head.groupby("checkpoint", sort=False).size()
    rows = [
        {
            "checkpoint": c,
            "run": run_of(c),
            "step": step_of(c),
            "heads": int(n),
            "set": heads_of.get(c, set()),
        }
        for c, n in sizes.items()
    ]
    table = pd.DataFrame(rows).sort_values(["run", "step"], kind="stable")
    final = table.groupby("run")["set"].transform("last")
    table["visual"] = table["set"].map(len)
    table["overlap"] = [
        len(ours & theirs) / len(ours | theirs) if ours | theirs else np.nan
        for ours, theirs in zip(table["set"], final, strict=True)
    ]
    return table.drop(columns="set").reset_index(drop=True)


# ---------------------------------------------------------------- 2. do the metrics track the scores


def _spearman(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """(rho, p); NaN when either side is constant, where Spearman is undefined."""
    # here, not at the top: loads SciPy only when this runs
    from scipy import stats

    if x.nunique() < 2 or y.nunique() < 2:
        return np.nan, np.nan
    rho, p = stats.spearmanr(x, y)
    return float(rho), float(p)


def correlations(features: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """Spearman (pooled over checkpoints, with p) and mean within-run Spearman, per metric and benchmark."""
    # here, not at the top: loads scikit-learn, SciPy only when this runs
    from headcast.predictor import run_of, within_run_spearman

    scores = wide.assign(mean=wide.mean(axis=1))
    features = features.set_index("checkpoint").loc[scores.index]
    runs = pd.Series([run_of(c) for c in scores.index], index=scores.index)
    rows = []
    for label, column in CORRELATED.items():
        x = features[column]
        for benchmark in scores.columns:
            y = scores[benchmark]
            rho, p = _spearman(x, y)
            rows.append(
                {
                    "metric": label,
                    "benchmark": benchmark,
                    "rho": rho,
                    "p": p,
                    "within_run": within_run_spearman(y, x, runs),
                    "n": len(x),
                }
            )
    return pd.DataFrame(rows)


def within_run_by_data(features: pd.DataFrame, wide: pd.DataFrame, data: Mapping[str, float]) -> pd.DataFrame:
    """Per run: its instruction data size and the within-run Spearman of visual mass / concentration
    with mean accuracy (the paper: more visual attention helps only with enough training data)."""

    mean = wide.mean(axis=1)
    features = features.set_index("checkpoint")
    rows = []
    for run, items in data.items():
        members = [c for c in wide.index if run_of(c) == run]
        row = {"run": run, "data": items, "checkpoints": len(members)}
        for label in ("visual mass", "concentration"):
            x, y = features.loc[members, CORRELATED[label]], mean[members]
            row[label] = _spearman(x, y)[0] if len(members) >= 3 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- 3. do they matter


def rank_heads(per_head: pd.DataFrame) -> list[Head]:
    """Heads by visual-head rate, ties broken by visual mass x concentration, most visual first."""
    table = per_head.assign(strength=per_head["visual_mass"] * per_head["concentration"])
    table = table.sort_values(["visual_head_rate", "strength"], ascending=False, kind="stable")
    return [(int(layer), int(head)) for layer, head in zip(table["layer"], table["head"], strict=True)]


def head_sets(per_head: pd.DataFrame, settings: ReportSettings) -> list[dict]:
    """The head sets ablated in one checkpoint: top-k visual, two random controls, late/early layers.

    Controls per k and seed: k heads drawn from the whole model, and k heads from the top-k's own
    layers (other heads where the layer has them): removing early heads hurts far more than late
    ones, so only the second control separates "visual" from "where it sits".
    """
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract import random_heads

    n_layers, n_heads = int(per_head["layer"].max()) + 1, int(per_head["head"].max()) + 1
    everything = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    ranked = rank_heads(per_head)
    sets = [{"kind": "none", "k": 0, "seed": -1, "heads": []}]
    for k in (k for k in settings.ks if k <= len(everything) // 2):
        top = ranked[:k]
        sets.append({"kind": "top-k visual", "k": k, "seed": -1, "heads": top})
        for seed in range(settings.seeds):
            anywhere = random.Random(seed).sample(everything, k)
            sets.append({"kind": "random", "k": k, "seed": seed, "heads": anywhere})
            same = random_heads(top, n_heads, seed)
            sets.append({"kind": "random, same layers", "k": k, "seed": seed, "heads": same})
    n_late = max(1, round(n_layers * settings.late_share))
    for kind, layers in (
        ("late layers", range(n_layers - n_late, n_layers)),
        ("early layers", range(n_late)),
    ):
        heads = [(layer, head) for layer in layers for head in range(n_heads)]
        sets.append({"kind": kind, "k": len(heads), "seed": -1, "heads": heads, "layers": len(layers)})
    return sets


def ablation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per run, kind and k: change of mean accuracy over benchmarks (mean and std over random seeds)."""
    per_set = table.groupby(["run", "kind", "k", "seed", "total_heads"], as_index=False)["change"].mean()
    return (
        per_set.groupby(["run", "kind", "k", "total_heads"], as_index=False)["change"]
        .agg(mean="mean", std="std", sets="count")
        .fillna({"std": 0.0})
    )


def probe_curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per probe-set size: mean and std over draws of the held-out MAE averaged over benchmarks."""
    return curve.groupby(["probes", "draw"])["mae"].mean().groupby("probes").agg(["mean", "std"])
