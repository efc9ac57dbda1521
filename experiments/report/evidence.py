"""What the report shows under each claim's verdict: its figure and the table of its measured values.

Each function takes the findings and `link` (a figure's file name -> its link from the Markdown) and
returns Markdown lines, blank line included; the claims registry says which claim shows which.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from headcast.experiments.report.measures import THIRDS, ablation_summary
from headcast.experiments.report.tables import Findings
from headcast.experiments.report.wording import md_table, num
from headcast.experiments.scenes import CHANCE

Link = Callable[[str], str]


def figure_links(figure_dir: str) -> Link:
    """Links to the figures from the Markdown, which may sit beside them (`""` or `"."`)."""
    if figure_dir in ("", "."):
        return lambda name: name
    return lambda name: f"{figure_dir}/{name}"


def final_baselines(f: Findings) -> pd.Series:
    """Run -> mean accuracy of its final checkpoint with no head removed."""
    return f.ablation[f.ablation["kind"] == "none"].groupby("run")["accuracy"].mean()


def _by_kind(f: Findings) -> pd.DataFrame:
    return ablation_summary(f.ablation).set_index(["run", "kind", "k"]).sort_index()


def no_evidence(f: Findings, link: Link) -> list[str]:
    """A claim whose sentence says it all."""
    return []


def no_intro(f: Findings) -> list[str]:
    """A section that starts with its first claim."""
    return []


def depth_evidence(f: Findings, link: Link) -> list[str]:
    rows = [
        [run, str(int(part["heads"].sum())), str(int(part["visual"].sum()))]
        + [f"{int(r.visual)}/{int(r.heads)}" for r in part.itertuples()]
        for run, final in f.zoo.finals().items()
        for part in [f.profile[f.profile["checkpoint"] == final].set_index("third").loc[list(THIRDS)]]
    ]
    return [
        f"![visual heads per depth third]({link('depth_final.png')})",
        "",
        md_table(["run", "heads", "visual", *[f"{third} (visual/heads)" for third in THIRDS]], rows),
        "",
    ]


def training_evidence(f: Findings, link: Link) -> list[str]:
    rows = [
        [
            run,
            str(int(part["heads"].iloc[-1])),
            ", ".join(str(int(x)) for x in part["visual"]),
            ", ".join("-" if np.isnan(x) else num(x, 2, signed=False) for x in part["overlap"]),
        ]
        for run, part in f.training.groupby("run", sort=False)
    ]
    return [
        f"![visual heads along training]({link('depth_training.png')})",
        "",
        "Per run, at each checkpoint in order: its visual heads, and their overlap with the last "
        "checkpoint's set (Jaccard; - where both are empty).",
        "",
        md_table(["run", "heads", "visual heads", "overlap with the last set"], rows),
        "",
    ]


def correlation_evidence(f: Findings, link: Link) -> list[str]:
    alpha, benchmarks = f.settings.alpha, [*f.zoo.wide.columns, "mean"]
    rows = [
        [label]
        + [
            f"{num(r.rho, 2)}{'*' if r.p < alpha else ''}"
            for r in part.set_index("benchmark").loc[benchmarks].itertuples()
        ]
        + [num(part.set_index("benchmark").loc["mean", "within_run"], 2)]
        for label, part in f.corr.groupby("metric", sort=False)
    ]
    return [
        f"![Spearman across checkpoints]({link('correlations.png')})",
        "",
        f"Spearman across all checkpoints (`*`: p < {alpha:g}); the last column is the mean within-run "
        "Spearman with the mean accuracy:",
        "",
        md_table(["metric", *f.zoo.wide.columns, "mean", "within runs"], rows),
        "",
    ]


def data_evidence(f: Findings, link: Link) -> list[str]:
    header = ["run", "instruction items", "checkpoints", "visual mass ~ accuracy", "concentration ~ accuracy"]
    rows = [
        [
            r["run"],
            num(r["data"], 0),
            str(r["checkpoints"]),
            num(r["visual mass"], 2),
            num(r["concentration"], 2),
        ]
        for _, r in f.by_data.iterrows()
    ]
    return [md_table(header, rows), ""]


def ablation_intro(f: Findings) -> list[str]:
    """How far above chance the final checkpoints start, before any head is removed."""
    baselines = final_baselines(f)
    chance = 100 * float(np.mean([CHANCE.get(b, np.nan) for b in f.zoo.wide.columns]))
    return [
        f"Baseline mean accuracy of the final checkpoints: {num(baselines.mean())}% on average, "
        f"{num(baselines.mean() - chance)} points above the {num(chance)}% of chance on these benchmarks. "
        "A badly damaged model can fall below chance: it stops giving answers of the right form.",
        "",
    ]


def matter_evidence(f: Findings, link: Link) -> list[str]:
    summary, by_kind, baselines = ablation_summary(f.ablation), _by_kind(f), final_baselines(f)
    header = [
        "run",
        "baseline accuracy",
        "k",
        "top-k visual: change",
        "random, same layers",
        f"random, anywhere (mean ± std, {f.settings.seeds} seeds)",
    ]
    rows = [
        [r.run, num(baselines[r.run]), str(r.k), num(r.mean, 1, True)]
        + [
            f"{num(c['mean'], 1, True)} ± {num(c['std'])}"
            for kind in ("random, same layers", "random")
            for c in [by_kind.loc[(r.run, kind, r.k)]]
        ]
        for r in summary[summary["kind"] == "top-k visual"].itertuples()
    ]
    return [f"![top-k visual vs random heads]({link('ablation_topk.png')})", "", md_table(header, rows), ""]


def late_evidence(f: Findings, link: Link) -> list[str]:
    summary, by_kind = ablation_summary(f.ablation), _by_kind(f)
    rows = [
        [
            run,
            f"{int(r['k'])} of {int(r['total_heads'])}",
            num(r["mean"], 1, True),
            num(by_kind.loc[(run, "early layers"), "mean"].iloc[0], 1, True),
        ]
        for run, r in summary[summary["kind"] == "late layers"].set_index("run").iterrows()
    ]
    header = ["run", "heads removed", "late layers: change", "early layers: change"]
    return [f"![late vs early layers]({link('ablation_layers.png')})", "", md_table(header, rows), ""]


def probes_evidence(f: Findings, link: Link) -> list[str]:
    if f.curve is None or f.curve.empty:
        return []
    return [
        f"Probes: {f.curve_source}; the features of each nested subset come from its samples' metrics; "
        f"estimator `{f.settings.estimator}`, grouped cross-validation with whole runs held out.",
        "",
        f"![error vs probe-set size]({link('probe_size.png')})",
        "",
    ]
