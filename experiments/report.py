"""`headcast report`: check the paper's claims about visual heads on a zoo, as a generated Markdown report.

Four measurements, each written from computed values only (no number in the text is typed):
1. where visual heads sit: share of visual heads per relative-depth third, per run, along training;
2. whether concentration / visual mass track the benchmarks: Spearman across checkpoints;
3. whether they matter: accuracy after removing the top-k visual heads vs k random heads, and after
   removing the last layers' heads vs as many first-layer heads (proper output ablation, not the
   paper's leaky score masking);
4. how many probes the predictor needs: held-out error against probe-set size.
Figures go to REPORT_DIR as PNG and, with the Markdown, to one MLflow run in `headcast-report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from extract.errors import HeadcastError

EXPERIMENT = "headcast-report"
ESTIMATORS_CHOICES = ("ridge", "lightgbm", "knn")  # predictor.models.ESTIMATORS, without importing LightGBM
THIRDS = ("early", "middle", "late")
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
Head = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """What the report measures, and the thresholds its verdicts use (printed in the report)."""

    ks: tuple[int, ...] = (1, 2, 4, 8)  # top-k visual heads removed (k up to half the model's heads)
    seeds: int = 3  # random head sets per k
    probe_sizes: tuple[int, ...] = (8, 32, 128, 512)
    probe_draws: int = 3  # random nested subsets per probe-set size
    estimator: str = "ridge"
    mode: str = "zero"
    batch_size: int = 64
    visual_rate: float = 0.5  # a head is visual when it is visual on at least this share of probes
    sparse_fraction: float = 0.2  # "sparse": at most this share of heads is visual
    little_loss: float = 3.0  # points of mean accuracy that count as "little loss"
    alpha: float = 0.05  # significance level of the Spearman tests


@dataclasses.dataclass
class Zoo:
    """A built zoo, as the report reads it."""

    root: Path
    folders: list[Path]
    names: list[str]
    scores: pd.DataFrame  # long: checkpoint, benchmark, score, ...
    stamp: dict

    @property
    def wide(self) -> pd.DataFrame:
        return self.scores.pivot_table(index="checkpoint", columns="benchmark", values="score")

    def finals(self) -> dict[str, str]:
        """Run -> name of its last checkpoint."""
        from predictor.dataset import run_of, step_of

        last: dict[str, str] = {}
        for name in self.names:
            run = run_of(name)
            if run not in last or step_of(name) > step_of(last[run]):
                last[run] = name
        return last

    def folder(self, name: str) -> Path:
        return self.folders[self.names.index(name)]


def read_zoo(root: str | Path) -> Zoo:
    """Checkpoints, scores and stamp of a zoo folder; errors name the command that makes what is missing."""
    from experiments.zoo import checkpoint_dirs
    from predictor.scores import read_scores

    root = Path(root)
    for needed in ("scores.csv", "zoo.json", "probes/probes.jsonl", "benchmarks"):
        if not (root / needed).exists():
            raise HeadcastError(f"{root} has no {needed}; build it first (headcast zoo build --out {root})")
    folders = checkpoint_dirs(root)
    names = [f.relative_to(root / "checkpoints").as_posix() for f in folders]
    scores = read_scores(root / "scores.csv")
    scores = scores[scores["checkpoint"].isin(names)]
    return Zoo(root, folders, names, scores, json.loads((root / "zoo.json").read_text()))


# ---------------------------------------------------------------- 1. where visual heads sit


def depth_profile(per_head: pd.DataFrame, visual_rate: float) -> pd.DataFrame:
    """Per checkpoint and relative-depth third: heads, visual heads, fraction, share of all visual."""
    from extract.features import depth_bins
    from predictor.dataset import run_of, step_of

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
                }
            )
    profile = pd.DataFrame(rows)
    profile["fraction"] = profile["visual"] / profile["heads"].where(profile["heads"] > 0)
    profile["share"] = profile["visual"] / profile["total_visual"].where(profile["total_visual"] > 0)
    return profile


# ---------------------------------------------------------------- 2. do the metrics track the scores


CORRELATED = {
    "concentration": "all.concentration.mean",
    "visual mass": "all.visual_mass.mean",
    "concentration (top 10% heads)": "all.concentration.q90",
    "visual mass (top 10% heads)": "all.visual_mass.q90",
}


def correlations(features: pd.DataFrame, wide: pd.DataFrame) -> pd.DataFrame:
    """Spearman (pooled over checkpoints, with p) and mean within-run Spearman, per metric and benchmark."""
    from scipy import stats

    from predictor.dataset import run_of

    scores = wide.assign(mean=wide.mean(axis=1))
    features = features.set_index("checkpoint").loc[scores.index]
    runs = pd.Series([run_of(c) for c in scores.index], index=scores.index)
    rows = []
    for label, column in CORRELATED.items():
        x = features[column]
        for benchmark in scores.columns:
            y = scores[benchmark]
            rho, p = stats.spearmanr(x, y) if x.nunique() > 1 and y.nunique() > 1 else (np.nan, np.nan)
            within = [
                stats.spearmanr(x[i], y[i]).statistic
                for i in runs.groupby(runs).groups.values()
                if len(i) >= 3 and x[i].nunique() > 1 and y[i].nunique() > 1
            ]
            rows.append(
                {
                    "metric": label,
                    "benchmark": benchmark,
                    "rho": float(rho),
                    "p": float(p),
                    "within_run": float(np.mean(within)) if within else np.nan,
                    "n": len(x),
                }
            )
    return pd.DataFrame(rows)


def within_run_by_data(zoo: Zoo, features: pd.DataFrame) -> pd.DataFrame:
    """Per run: its instruction data size and the within-run Spearman of visual mass / concentration
    with mean accuracy (the paper: more visual attention helps only with enough training data)."""
    from scipy import stats

    from predictor.dataset import run_of

    wide = zoo.wide
    mean = wide.mean(axis=1)
    features = features.set_index("checkpoint")
    rows = []
    for run, final in zoo.finals().items():
        members = [c for c in wide.index if run_of(c) == run]
        meta_file = zoo.folder(final) / "zoo_run.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        row = {"run": run, "data": meta.get("data", np.nan), "checkpoints": len(members)}
        for label in ("visual mass", "concentration"):
            x, y = features.loc[members, CORRELATED[label]], mean[members]
            ok = len(members) >= 3 and x.nunique() > 1 and y.nunique() > 1
            row[label] = float(stats.spearmanr(x, y).statistic) if ok else np.nan
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
    from extract.ablation import random_heads

    n_layers, n_heads = int(per_head["layer"].max()) + 1, int(per_head["head"].max()) + 1
    everything = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    ranked = rank_heads(per_head)
    sets = [{"kind": "none", "k": 0, "seed": -1, "heads": []}]
    for k in (k for k in settings.ks if k <= len(everything) // 2):
        top = ranked[:k]
        sets.append({"kind": "top-k visual", "k": k, "seed": -1, "heads": top})
        for seed in range(settings.seeds):
            sets.append(
                {"kind": "random", "k": k, "seed": seed, "heads": random.Random(seed).sample(everything, k)}
            )
            sets.append(
                {
                    "kind": "random, same layers",
                    "k": k,
                    "seed": seed,
                    "heads": random_heads(top, n_heads, seed),
                }
            )
    n_late = max(1, round(n_layers / 4))
    for kind, layers in (
        ("late layers", range(n_layers - n_late, n_layers)),
        ("early layers", range(n_late)),
    ):
        heads = [(layer, head) for layer in layers for head in range(n_heads)]
        sets.append({"kind": kind, "k": len(heads), "seed": -1, "heads": heads, "layers": len(layers)})
    return sets


def ablation_results(
    zoo: Zoo, per_head: pd.DataFrame, settings: ReportSettings, progress: bool = True
) -> pd.DataFrame:
    """Accuracy per run's final checkpoint, head set and benchmark, scored with the evaluator's rules."""
    from tqdm.auto import tqdm

    from experiments.ablate import ablated_accuracy, model_shape
    from experiments.evaluate import load_suite
    from extract.loading import load_checkpoint

    suite = load_suite(zoo.root / "benchmarks")
    rows = []
    for run, final in tqdm(list(zoo.finals().items()), desc="ablate", unit="run", disable=not progress):
        checkpoint = load_checkpoint(zoo.folder(final), device="cpu")
        n_layers, n_heads = model_shape(checkpoint)
        for entry in head_sets(per_head[per_head["checkpoint"] == final], settings):
            accuracy = ablated_accuracy(
                checkpoint, suite, entry["heads"], settings.mode, None, settings.batch_size
            )
            for benchmark, value in accuracy.items():
                rows.append(
                    {
                        "run": run,
                        "checkpoint": final,
                        "kind": entry["kind"],
                        "k": entry["k"],
                        "seed": entry["seed"],
                        "layers": entry.get("layers", 0),
                        "total_heads": n_layers * n_heads,
                        "heads": ",".join(f"{layer}:{head}" for layer, head in entry["heads"]),
                        "benchmark": benchmark,
                        "accuracy": value,
                    }
                )
    table = pd.DataFrame(rows)
    baseline = table[table["kind"] == "none"].set_index(["run", "benchmark"])["accuracy"]
    keys = pd.MultiIndex.from_arrays([table["run"], table["benchmark"]])
    table["change"] = table["accuracy"] - baseline.reindex(keys).to_numpy()
    return table


def ablation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per run, kind and k: change of mean accuracy over benchmarks (mean and std over random seeds)."""
    per_set = table.groupby(["run", "kind", "k", "seed", "total_heads"], as_index=False)["change"].mean()
    return (
        per_set.groupby(["run", "kind", "k", "total_heads"], as_index=False)["change"]
        .agg(mean="mean", std="std", sets="count")
        .fillna({"std": 0.0})
    )


# ---------------------------------------------------------------- 4. how many probes


def probe_pool(zoo: Zoo, size: int) -> tuple[Path, str]:
    """A probe set of at least `size` items: the zoo's own, else a larger one written on other images."""
    from experiments.benchmarks import write_probes
    from extract.probes import read_probes
    from extract.storage import cache_root

    own = zoo.root / "probes" / "probes.jsonl"
    if len(read_probes(own)) >= size:
        return own, "the zoo's own probe set"
    config, seed = zoo.stamp["config"], int(zoo.stamp["seed"]) + 1  # another seed: other images
    folder = cache_root() / "report-probes" / f"seed{seed}-n{size}-r{config['resolution']}-g{config['grid']}"
    if not (folder / "probes.jsonl").exists():
        write_probes(folder, seed, size, config["resolution"], config["grid"])
    return (
        folder / "probes.jsonl",
        f"{size} extra unlabeled probes written by the zoo's probe writer (seed {seed})",
    )


def probe_size_curve(
    zoo: Zoo, settings: ReportSettings, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Held-out MAE (runs held out) of the predictor fitted on features from nested probe subsets.

    Per-sample metrics do not depend on which other probes share the set, so the features of a
    subset are the features of its samples: one extraction on the largest set serves every size.
    Returns (MAE per size, draw and benchmark; mean-score baseline MAE per benchmark; probe source).
    """
    from extract.features import FEATURE_SCHEMA_VERSION, feature_row
    from extract.pipeline import ExtractionSettings, extract_features
    from extract.probes import read_probes
    from predictor.dataset import MIN_GROUPS, build_dataset
    from predictor.evaluation import held_out_predictions, mean_baseline, run_folds, score_predictions

    runs = len(zoo.finals())
    if runs < MIN_GROUPS:
        raise HeadcastError(f"the zoo has {runs} runs; held-out error needs at least {MIN_GROUPS}")
    largest = max(settings.probe_sizes)
    path, source = probe_pool(zoo, largest)
    probes = read_probes(path)[:largest]
    extraction = ExtractionSettings(batch_size=32)
    _, metrics = extract_features(zoo.folders, probes, extraction, zoo.names, progress)
    meta = {m.checkpoint: m.settings for m in metrics}
    rows, baseline = [], None
    for size in sorted(s for s in settings.probe_sizes if s <= len(probes)):
        for draw in range(settings.probe_draws):
            order = np.random.default_rng(draw).permutation(len(probes))[:size]
            table = pd.DataFrame(
                [
                    {"checkpoint": m.checkpoint, "schema_version": FEATURE_SCHEMA_VERSION}
                    | feature_row(m.samples[order], extraction.thresholds)
                    for m in metrics
                ]
            )
            dataset = build_dataset(table, zoo.scores, meta)
            folds = run_folds(dataset)
            if baseline is None:
                baseline = score_predictions(dataset, mean_baseline(dataset, folds))["mae"]
            mae = score_predictions(dataset, held_out_predictions(dataset, settings.estimator, folds))["mae"]
            rows += [{"probes": size, "draw": draw, "benchmark": b, "mae": float(v)} for b, v in mae.items()]
    return pd.DataFrame(rows), baseline.rename("mae").to_frame(), source


# ---------------------------------------------------------------- figures


def _figures():
    import matplotlib

    matplotlib.use("Agg")
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
        ax.set(title=run, xscale="log", ylim=(-0.05, 1.05), xlabel="step", ylabel="visual / heads")
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=7)
    figures["depth_training.png"] = figure
    return figures


def correlation_figure(corr: pd.DataFrame, features: pd.DataFrame, wide: pd.DataFrame) -> dict:
    """Spearman heatmap (metric x benchmark) and concentration against mean accuracy, coloured by run."""
    from predictor.dataset import run_of

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
    overall = curve.groupby(["probes", "draw"])["mae"].mean().groupby("probes").agg(["mean", "std"])
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


# ---------------------------------------------------------------- verdicts and Markdown


def _f(value: float, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _verdict(supporting: int, total: int, most: float = 0.75) -> str:
    """'holds' when nearly every case supports the claim, 'does not hold' when none (or almost none) does."""
    if total == 0:
        return "not testable here"
    share = supporting / total
    return "holds" if share >= most else "does not hold" if share <= 1 - most else "mixed"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


@dataclasses.dataclass
class Findings:
    """Everything the report measured, and the settings it measured with."""

    zoo: Zoo
    settings: ReportSettings
    profile: pd.DataFrame
    corr: pd.DataFrame
    by_data: pd.DataFrame
    ablation: pd.DataFrame
    curve: pd.DataFrame | None
    curve_baseline: pd.DataFrame | None
    curve_source: str
    n_probes: int
    seconds: dict[str, float]


def claim_depth(f: Findings) -> tuple[str, str, str, str]:
    """(sparsity verdict, its text, early/middle verdict, its text) from the final checkpoints."""
    s = f.settings
    final = f.profile[f.profile["checkpoint"].isin(f.zoo.finals().values())]
    per_run = final.groupby("run").agg(visual=("visual", "sum"), heads=("heads", "sum"))
    per_run["fraction"] = per_run["visual"] / per_run["heads"]
    sparse = int((per_run["fraction"] <= s.sparse_fraction).sum())
    sparse_text = (
        f"At the final checkpoints {_f(100 * per_run['fraction'].mean())}% of heads are visual on average "
        f"(per run {_f(100 * per_run['fraction'].min())}-{_f(100 * per_run['fraction'].max())}%; "
        f"{int(per_run['visual'].sum())} of {int(per_run['heads'].sum())} heads); "
        f"{sparse} of {len(per_run)} runs have at most {_f(100 * s.sparse_fraction, 0)}% visual heads."
    )
    early = final[final["third"] != "late"].groupby("run")[["visual", "heads"]].sum()
    late = final[final["third"] == "late"].groupby("run")[["visual", "heads"]].sum()
    has_visual = per_run.index[per_run["visual"] > 0]
    em = early["visual"] / early["heads"]
    lt = late["visual"] / late["heads"]
    support = int((em[has_visual] > lt[has_visual]).sum())
    late_share = late["visual"].sum() / max(per_run["visual"].sum(), 1)
    heads_share = late["heads"].sum() / per_run["heads"].sum()
    first = f.profile[f.profile["step"] == f.profile.groupby("run")["step"].transform("min")]
    first_visual = int(first["visual"].sum())
    first_late = int(first.loc[first["third"] == "late", "visual"].sum())
    if len(has_visual) == 0:
        depth_text = "No run has a visual head at its final checkpoint, so there is no placement to compare."
    else:
        depth_text = (
            f"Visual-head density in the early and middle thirds is {_f(100 * em[has_visual].mean())}% of "
            f"heads against {_f(100 * lt[has_visual].mean())}% in the late third (mean over the "
            f"{len(has_visual)} runs with visual heads); it is higher in early/middle layers in {support} of "
            f"{len(has_visual)} runs. The late third holds {_f(100 * late_share)}% of all visual heads while "
            f"it holds {_f(100 * heads_share)}% of all heads."
        )
    depth_text += (
        f" Along training: the runs' first checkpoints have {first_visual} visual heads, {first_late} of "
        f"them in the late third; their final checkpoints have {int(per_run['visual'].sum())}, "
        f"{int(late['visual'].sum())} in the late third."
    )
    sparse_verdict = _verdict(sparse, len(per_run)) if per_run["visual"].sum() else "not testable here"
    return sparse_verdict, sparse_text, _verdict(support, len(has_visual)), depth_text


def claim_correlation(f: Findings) -> tuple[str, str]:
    s = f.settings
    text, verdict = [], "not testable here"
    for label in ("concentration", "visual mass"):
        part = f.corr[(f.corr["metric"] == label) & (f.corr["benchmark"] != "mean")]
        positive = part[(part["rho"] > 0) & (part["p"] < s.alpha)]
        negative = part[(part["rho"] < 0) & (part["p"] < s.alpha)]
        mean_row = f.corr[(f.corr["metric"] == label) & (f.corr["benchmark"] == "mean")].iloc[0]
        text.append(
            f"{label}: Spearman with the mean accuracy {_f(mean_row['rho'], 2)} (p = {mean_row['p']:.2g}, "
            f"n = {int(mean_row['n'])} checkpoints; within runs {_f(mean_row['within_run'], 2)}); "
            "per benchmark "
            f"{_f(part['rho'].min(), 2)} to {_f(part['rho'].max(), 2)}, significantly positive on "
            f"{len(positive)} of {len(part)} benchmarks and significantly negative on {len(negative)}."
        )
        if label == "concentration":
            verdict = _verdict(len(positive), len(part)) if len(negative) == 0 else "mixed"
            if len(negative) > len(positive):
                verdict = "does not hold"
    return verdict, " ".join(text)


def claim_data(f: Findings) -> tuple[str, str]:
    table = f.by_data.dropna(subset=["data"])
    if table["data"].nunique() < 2:
        return "not testable here", "Every run of this zoo trains on the same amount of instruction data."
    small = table[table["data"] < table["data"].max()]
    large = table[table["data"] == table["data"].max()]
    low, high = small["visual mass"].mean(), large["visual mass"].median()
    verdict = "holds" if low < high - 0.2 and high > 0 else "does not hold" if low >= high else "mixed"
    text = (
        f"Within-run Spearman of visual mass with mean accuracy: {_f(low, 2)} in the run(s) with less data "
        f"({', '.join(f'{r} ({int(d)} items)' for r, d in zip(small['run'], small['data'], strict=True))}) "
        f"against a median of {_f(high, 2)} in the {len(large)} runs with {int(table['data'].max())} items."
    )
    return verdict, text


def claim_ablation(f: Findings, summary: pd.DataFrame) -> tuple[str, str, str, str]:
    """(visual heads matter: verdict, text; late heads removable: verdict, text); changes are signed."""
    s = f.settings
    top = summary[summary["kind"] == "top-k visual"].set_index(["run", "k"])
    same = summary[summary["kind"] == "random, same layers"].set_index(["run", "k"]).loc[top.index]
    anywhere = summary[summary["kind"] == "random"].set_index(["run", "k"]).loc[top.index]
    beats_same = top["mean"] < same["mean"] - same["std"]
    beats_anywhere = top["mean"] < anywhere["mean"] - anywhere["std"]
    by_k = (
        pd.DataFrame({"top": top["mean"], "same": same["mean"], "any": anywhere["mean"]}).groupby("k").mean()
    )
    matter_text = (
        "Removing the top-k visual heads costs more accuracy (by more than one standard deviation over "
        f"{s.seeds} seeds) than removing k random heads of the same layers in {int(beats_same.sum())} of "
        f"{len(top)} (run, k) cases, and more than k random heads from anywhere in "
        f"{int(beats_anywhere.sum())} of them. Mean change of mean accuracy over runs, "
        "top-k / random same layers / random anywhere: "
        + "; ".join(
            f"k={k}: {_f(r['top'], 1, True)} / {_f(r['same'], 1, True)} / {_f(r['any'], 1, True)} points"
            for k, r in by_k.iterrows()
        )
        + "."
    )
    late = summary[summary["kind"] == "late layers"].set_index("run")
    early = summary[summary["kind"] == "early layers"].set_index("run").loc[late.index]
    little = int(((-late["mean"] <= s.little_loss) & (late["mean"] > early["mean"])).sum())
    share = (late["k"] / late["total_heads"]).map(lambda v: f"{100 * v:.0f}%")
    shares = "/".join(dict.fromkeys(share.sort_values()))
    late_text = (
        f"Removing the heads of the last quarter of layers ({shares} of all heads) changes mean accuracy by "
        f"{_f(late['mean'].mean(), 1, True)} points on average (per run {_f(late['mean'].min(), 1, True)} to "
        f"{_f(late['mean'].max(), 1, True)}); removing as many first-layer heads changes it by "
        f"{_f(early['mean'].mean(), 1, True)} ({_f(early['mean'].min(), 1, True)} to "
        f"{_f(early['mean'].max(), 1, True)}). The late loss is at most {_f(s.little_loss)} points and "
        f"smaller than the early loss in {little} of {len(late)} runs."
    )
    return _verdict(int(beats_same.sum()), len(top)), matter_text, _verdict(little, len(late)), late_text


def claim_probes(f: Findings) -> tuple[str, str]:
    if f.curve is None or f.curve.empty:
        return "not measured", f"Skipped: {f.curve_source}."
    overall = f.curve.groupby(["probes", "draw"])["mae"].mean().groupby("probes").agg(["mean", "std"])
    base = float(f.curve_baseline["mae"].mean())
    first, last = overall.iloc[0], overall.iloc[-1]
    beats = int((overall["mean"] < base).sum())
    text = (
        "Held-out MAE (whole runs held out, mean over benchmarks and "
        f"{f.settings.probe_draws} nested draws): "
        + ", ".join(f"{n} probes {_f(r['mean'], 2)} ± {_f(r['std'], 2)}" for n, r in overall.iterrows())
        + f"; the mean-score baseline is {_f(base, 2)}, beaten at {beats} of {len(overall)} sizes."
    )
    spread = 0.0 if np.isnan(first["std"]) else float(first["std"])
    if last["mean"] < first["mean"] - spread:
        verdict = "falls with more probes"
    elif last["mean"] > first["mean"] + spread:
        verdict = "rises with more probes"
    else:
        verdict = "flat (within the spread over draws)"
    return verdict, text


def render(f: Findings, figure_dir: str) -> str:
    """The report's Markdown; `figure_dir` is the figures' folder relative to the Markdown file."""
    from experiments.scenes import CHANCE
    from experiments.zoo import markdown_table

    s = f.settings
    fig = (lambda name: f"{figure_dir}/{name}") if figure_dir not in ("", ".") else (lambda name: name)
    summary = ablation_summary(f.ablation)
    sparse_v, sparse_t, depth_v, depth_t = claim_depth(f)
    corr_v, corr_t = claim_correlation(f)
    data_v, data_t = claim_data(f)
    matter_v, matter_t, late_v, late_t = claim_ablation(f, summary)
    probe_v, probe_t = claim_probes(f)
    finals = f.zoo.finals()
    stamp = f.zoo.stamp
    baselines = f.ablation[f.ablation["kind"] == "none"].groupby("run")["accuracy"].mean()
    chance = 100 * float(np.mean([CHANCE.get(b, np.nan) for b in f.zoo.wide.columns]))
    out = [
        f"# Visual heads on the `{stamp.get('preset')}` zoo: do the paper's claims hold?",
        "",
        "*Generated by `headcast report`; every number below is computed from the zoo, none is typed.*",
        "",
        f"Zoo: `{f.zoo.root.name}` (preset `{stamp.get('preset')}`, seed {stamp.get('seed')}), "
        f"{len(finals)} runs, {len(f.zoo.names)} checkpoints, {f.zoo.wide.shape[1]} benchmarks, "
        f"{f.n_probes} probes. A head is *visual* when its visual mass and concentration clear the "
        "extraction thresholds on at least "
        f"{_f(100 * s.visual_rate, 0)}% of the probes (the feature `visual_head_fraction`). "
        "Depth thirds are by each layer's relative depth. Ablations remove heads at their output, before the "
        f"output projection (`{s.mode}` mode), on each run's final checkpoint, and score every benchmark "
        "with the evaluator's greedy exact match; changes are in points of mean accuracy over benchmarks "
        "(negative: a loss).",
        "",
        "## Verdicts",
        "",
        _table(
            ["paper's claim", "on this zoo"],
            [
                ["visual heads are sparse", f"**{sparse_v}**"],
                ["visual heads sit in early and middle layers", f"**{depth_v}**"],
                ["concentration on visual tokens tracks performance", f"**{corr_v}**"],
                ["more visual attention helps only with enough training data", f"**{data_v}**"],
                [
                    "removing visual heads costs more than removing random heads of their layers",
                    f"**{matter_v}**",
                ],
                ["many late heads can be removed with little loss", f"**{late_v}**"],
                ["(headcast) prediction error falls with probe-set size", f"**{probe_v}**"],
            ],
        ),
        "",
        "## Scores of the zoo (each run's final checkpoint)",
        "",
        markdown_table(f.zoo.root / "scores.csv"),
        "",
        "## 1. Where visual heads sit",
        "",
        f"**Sparse: {sparse_v}.** {sparse_t}",
        "",
        f"**Early and middle layers: {depth_v}.** {depth_t}",
        "",
        f"![visual heads per depth third]({fig('depth_final.png')})",
        "",
        _table(
            ["run", "heads", "visual", *[f"{t} (visual/heads)" for t in THIRDS]],
            [
                [run, str(int(part["heads"].sum())), str(int(part["visual"].sum()))]
                + [f"{int(r.visual)}/{int(r.heads)}" for r in part.itertuples()]
                for run, final in finals.items()
                for part in [f.profile[f.profile["checkpoint"] == final].set_index("third").loc[list(THIRDS)]]
            ],
        ),
        "",
        "Along training (visual heads / heads per third at each checkpoint):",
        "",
        f"![visual heads along training]({fig('depth_training.png')})",
        "",
        _table(
            ["run", "step", *THIRDS],
            [
                [run, str(int(step))]
                + [_f(v, 2) for v in part.set_index("third").loc[list(THIRDS), "fraction"]]
                for (run, step), part in f.profile.groupby(["run", "step"])
            ],
        ),
        "",
        "## 2. Does concentration track the benchmarks?",
        "",
        f"**Concentration tracks performance: {corr_v}.** {corr_t}",
        "",
        f"![Spearman across checkpoints]({fig('correlations.png')})",
        "",
        "Spearman across all checkpoints (`*`: p < "
        f"{s.alpha}); the last column is the mean within-run Spearman with the mean accuracy:",
        "",
        _table(
            ["metric", *[b for b in f.zoo.wide.columns], "mean", "within runs"],
            [
                [label]
                + [
                    f"{_f(r.rho, 2)}{'*' if r.p < s.alpha else ''}"
                    for r in part.set_index("benchmark").loc[[*f.zoo.wide.columns, "mean"]].itertuples()
                ]
                + [_f(part.set_index("benchmark").loc["mean", "within_run"], 2)]
                for label, part in f.corr.groupby("metric", sort=False)
            ],
        ),
        "",
        f"**More visual attention helps only with enough data: {data_v}.** {data_t}",
        "",
        _table(
            ["run", "instruction items", "checkpoints", "visual mass ~ accuracy", "concentration ~ accuracy"],
            [
                [
                    r["run"],
                    _f(r["data"], 0),
                    str(r["checkpoints"]),
                    _f(r["visual mass"], 2),
                    _f(r["concentration"], 2),
                ]
                for _, r in f.by_data.iterrows()
            ],
        ),
        "",
        "## 3. Do visual heads matter? Ablations",
        "",
        f"Baseline mean accuracy of the final checkpoints: {_f(baselines.mean())}% on average, "
        f"{_f(baselines.mean() - chance)} points above the {_f(chance)}% of chance on these benchmarks. "
        "A badly damaged model can fall below chance: it stops giving answers of the right form.",
        "",
        f"**Removing visual heads costs more than removing random heads of their layers: {matter_v}.** "
        f"{matter_t}",
        "",
        f"![top-k visual vs random heads]({fig('ablation_topk.png')})",
        "",
        _table(
            [
                "run",
                "baseline accuracy",
                "k",
                "top-k visual: change",
                "random, same layers",
                f"random, anywhere (mean ± std, {s.seeds} seeds)",
            ],
            [
                [r.run, _f(baselines[r.run]), str(r.k), _f(r.mean, 1, True)]
                + [
                    f"{_f(c['mean'], 1, True)} ± {_f(c['std'])}"
                    for kind in ("random, same layers", "random")
                    for c in [summary.set_index(["run", "kind", "k"]).loc[(r.run, kind, r.k)]]
                ]
                for r in summary[summary["kind"] == "top-k visual"].itertuples()
            ],
        ),
        "",
        f"**Many late heads can be removed with little loss: {late_v}.** {late_t}",
        "",
        f"![late vs early layers]({fig('ablation_layers.png')})",
        "",
        _table(
            ["run", "heads removed", "late layers: change", "early layers: change"],
            [
                [
                    run,
                    f"{int(r['k'])} of {int(r['total_heads'])}",
                    _f(r["mean"], 1, True),
                    _f(
                        summary[(summary["run"] == run) & (summary["kind"] == "early layers")]["mean"].iloc[
                            0
                        ],
                        1,
                        True,
                    ),
                ]
                for run, r in summary[summary["kind"] == "late layers"].set_index("run").iterrows()
            ],
        ),
        "",
        "## 4. How many probes does the predictor need?",
        "",
        f"**Error {probe_v}.** {probe_t}",
        "",
    ]
    if f.curve is not None and not f.curve.empty:
        out += [
            f"Probes: {f.curve_source}; the features of each nested subset come from its samples' metrics; "
            f"estimator `{s.estimator}`, grouped cross-validation with whole runs held out.",
            "",
            f"![error vs probe-set size]({fig('probe_size.png')})",
            "",
        ]
    out += [
        "## Closing note",
        "",
        f"- Sparse visual heads: **{sparse_v}**. {sparse_t}",
        f"- Early/middle placement: **{depth_v}**. {depth_t}",
        f"- Concentration tracks performance: **{corr_v}**. {corr_t}",
        f"- Visual attention helps only with enough data: **{data_v}**. {data_t}",
        f"- Visual heads matter under ablation: **{matter_v}**. {matter_t}",
        f"- Late heads removable with little loss: **{late_v}**. {late_t}",
        f"- Probe-set size: **{probe_v}**. {probe_t}",
        "",
        "Thresholds behind the verdicts: a claim *holds* when at least 75% of the cases (runs, benchmarks or "
        "(run, k) pairs) support it, *does not hold* at 25% or less, *mixed* in between; sparse means at "
        f"most {_f(100 * s.sparse_fraction, 0)}% visual heads; little loss means at most "
        f"{_f(s.little_loss)} points. "
        "These are tiny synthetic models (2-6 layers), so a depth third is one or two layers; the paper's "
        "models have 32-40.",
        "",
        "Runtime: " + ", ".join(f"{k} {v:.0f} s" for k, v in f.seconds.items()) + ".",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------- the whole report


def measure(zoo: Zoo, settings: ReportSettings, progress: bool = True) -> tuple[Findings, pd.DataFrame]:
    """Run every measurement of the report (extraction is cached by content in HEADCAST_CACHE)."""
    from extract.pipeline import ExtractionSettings, extract_features, per_head_tables
    from extract.probes import read_probes

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    probes = read_probes(zoo.root / "probes" / "probes.jsonl")
    extraction = ExtractionSettings(batch_size=32)
    features, metrics = extract_features(zoo.folders, probes, extraction, zoo.names, progress)
    per_head = per_head_tables(metrics, extraction.thresholds)
    seconds["extraction"] = time.perf_counter() - t
    profile = depth_profile(per_head, settings.visual_rate)
    wide = zoo.wide.loc[zoo.names]
    corr = correlations(features, wide)
    by_data = within_run_by_data(zoo, features)
    t = time.perf_counter()
    ablation = ablation_results(zoo, per_head, settings, progress)
    seconds["ablations"] = time.perf_counter() - t
    t = time.perf_counter()
    curve = baseline = None
    try:
        curve, baseline, source = probe_size_curve(zoo, settings, progress)
    except HeadcastError as err:  # e.g. fewer than three runs: no grouped cross-validation
        source = str(err)
    seconds["probe-size curve"] = time.perf_counter() - t
    findings = Findings(
        zoo, settings, profile, corr, by_data, ablation, curve, baseline, source, len(probes), seconds
    )
    return findings, features


def write_report(
    zoo_dir: str | Path,
    out: str | Path,
    settings: ReportSettings = ReportSettings(),
    markdown: str | Path | None = None,
    experiment: str | None = EXPERIMENT,
    progress: bool = True,
) -> Path:
    """Measure, draw, write `out/` (figures, CSVs) and the Markdown (default out/report.md); log to MLflow."""
    import os

    from extract.plots import save_figure
    from extract.storage import atomic_output

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


def log_to_mlflow(
    findings: Findings, out: Path, markdown: Path, files: Sequence[str], experiment: str
) -> str:
    """One run in `experiment`: the Markdown, figures and tables as artifacts, headline numbers as metrics."""
    import mlflow

    from predictor.tracking import configure_tracking, metric_key, use_experiment

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
        concentration = findings.corr[findings.corr["metric"] == "concentration"].set_index("benchmark")[
            "rho"
        ]
        for benchmark, rho in concentration.dropna().items():
            mlflow.log_metric(metric_key("spearman_concentration", benchmark), float(rho))
        if findings.curve is not None:
            for size, mae in findings.curve.groupby("probes")["mae"].mean().items():
                mlflow.log_metric("probe_size_mae", float(mae), step=int(size))
        return run.info.run_id


def run_report(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    settings = ReportSettings(
        ks=tuple(args.k),
        seeds=args.seeds,
        probe_sizes=tuple(args.probe_sizes),
        probe_draws=args.probe_draws,
        estimator=args.estimator,
    )
    if settings.seeds < 1 or not settings.ks or min(settings.ks) < 1 or min(settings.probe_sizes) < 1:
        raise HeadcastError("--k, --seeds and --probe-sizes take positive numbers")
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # tiny models: more threads only fight over shared cores
    try:
        experiment = None if args.no_mlflow else args.experiment
        markdown = write_report(args.zoo, args.out, settings, args.markdown, experiment, not args.quiet)
    finally:
        torch.set_num_threads(previous)
    print(f"wrote {markdown} (figures and tables in {args.out})")
    return 0


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast report --zoo DIR --out REPORT_DIR`: the paper's claims checked on a zoo, as Markdown."""
    parser = subparsers.add_parser(
        "report",
        help="check the paper's visual-head claims on a zoo; writes a Markdown report with figures",
        description="Where visual heads sit, whether they track the benchmarks, what removing them costs, "
        "and how prediction error falls with probe-set size, on a built zoo.",
    )
    parser.add_argument("--zoo", required=True, type=Path, help="a zoo folder (headcast zoo build)")
    parser.add_argument("--out", required=True, type=Path, help="folder for figures, tables and report.md")
    parser.add_argument("--markdown", type=Path, help="write the Markdown here instead (links stay relative)")
    parser.add_argument(
        "--k", type=int, nargs="+", default=list(ReportSettings.ks), help="top-k heads ablated"
    )
    parser.add_argument("--seeds", type=int, default=ReportSettings.seeds, help="random head sets per k")
    parser.add_argument(
        "--probe-sizes", type=int, nargs="+", default=list(ReportSettings.probe_sizes), help="probe-set sizes"
    )
    parser.add_argument(
        "--probe-draws", type=int, default=ReportSettings.probe_draws, help="subsets per size"
    )
    parser.add_argument(
        "--estimator",
        choices=ESTIMATORS_CHOICES,
        default=ReportSettings.estimator,
        help="predictor for the probe curve",
    )
    parser.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment (default {EXPERIMENT})")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (default: 1, as zoo build)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_report)
    return parser


def settings_from_config(raw: dict | None) -> ReportSettings:
    """`ReportSettings` from a zoo config's `report:` mapping (lists become tuples, unknown keys fail)."""
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(ReportSettings)}
    unknown = set(raw) - known
    if unknown:
        raise HeadcastError(
            f"unknown report setting(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(known))}"
        )
    return ReportSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
