"""The report's sentences: each claim's numbers, and the settings its verdict used, in words.

No number is typed here: each one is formatted from a claim's numbers or a `ReportSettings` field,
so the text states the thresholds the verdicts actually used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from headcast.experiments.report.settings import ReportSettings
from headcast.experiments.report.verdicts import Claim


def num(value: float | None, digits: int = 1, signed: bool = False) -> str:
    """A measured number, or n/a where there is none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def pct(share: float, digits: int = 1) -> str:
    """A measured share as a percentage."""
    return f"{num(100 * share, digits)}%"


def setting_pct(share: float) -> str:
    """A share from the settings as a percentage, as compact as it was written (0.75 -> 75%)."""
    return f"{100 * share:g}%"


def plural(count: float, noun: str) -> str:
    """`count noun`, the noun in the plural unless the count is one."""
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def span(low: float, high: float, digits: int = 1, signed: bool = True) -> str:
    """A range of measured numbers, `low to high`."""
    return f"{num(low, digits, signed)} to {num(high, digits, signed)}"


def sparse_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    return (
        f"At the final checkpoints {pct(n['mean'])} of heads are visual on average "
        f"(per run {num(100 * n['min'])}-{pct(n['max'])}; {n['visual']} of {n['heads']} heads); "
        f"{n['sparse_runs']} of {n['runs']} runs have at most {setting_pct(s.sparse_fraction)} visual heads."
    )


def depth_text(c: Claim) -> str:
    n = c.numbers
    if n["runs_with_visual"] == 0:
        text = "No run has a visual head at its final checkpoint, so there is no placement to compare."
    else:
        text = (
            f"Visual-head density in the early and middle thirds is {pct(n['early_density'])} of heads "
            f"against {pct(n['late_density'])} in the late third (mean over the {n['runs_with_visual']} "
            f"runs with visual heads); it is higher in early/middle layers in {n['support']} of "
            f"{n['runs_with_visual']} runs. The late third holds {pct(n['late_share_of_visual'])} of all "
            f"visual heads while it holds {pct(n['late_share_of_heads'])} of all heads."
        )
    return text + (
        f" Along training: the runs' first checkpoints have {n['first_visual']} visual heads, "
        f"{n['first_late']} of them in the late third; their final checkpoints have {n['final_visual']}, "
        f"{n['final_late']} in the late third."
    )


def training_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    text = (
        f"On average {pct(n['first_fraction'])} of heads are visual at a run's first checkpoint and "
        f"{pct(n['final_fraction'])} at its last."
    )
    if not n["runs_with_visual"]:
        return text + " No run ends with a visual head, so there is no set to follow."
    return text + (
        f" Of the {n['runs_with_visual']} runs that end with visual heads, {n['formed']} have more of them "
        f"than at their first checkpoint, and in {n['settled']} the checkpoint before the last shares at "
        f"least {setting_pct(s.settled_overlap)} of its set with the last (mean overlap "
        f"{num(n['overlap_before_last'], 2)}, Jaccard); {n['support']} do both."
    )


def correlation_text(c: Claim) -> str:
    return " ".join(
        f"{label}: Spearman with the mean accuracy {num(n['rho'], 2)} (p = {n['p']:.2g}, n = {n['n']} "
        f"checkpoints; within runs {num(n['within_run'], 2)}); per benchmark "
        f"{span(n['min'], n['max'], 2, False)}, significantly positive on {n['positive']} of "
        f"{n['benchmarks']} benchmarks and significantly negative on {n['negative']}."
        for label, n in c.numbers.items()
    )


def data_text(c: Claim) -> str:
    n = c.numbers
    if "low" not in n:
        return "Every run of this zoo trains on the same amount of instruction data."
    runs = ", ".join(f"{run} ({items} items)" for run, items in n["less_data"])
    return (
        f"Within-run Spearman of visual mass with mean accuracy: {num(n['low'], 2)} in the run(s) with less "
        f"data ({runs}) against a median of {num(n['high'], 2)} in the {n['large_runs']} runs with "
        f"{n['most_data']} items."
    )


def matter_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    by_k = "; ".join(
        f"k={k}: {num(r['top'], 1, True)} / {num(r['same'], 1, True)} / {num(r['any'], 1, True)} points"
        for k, r in n["by_k"].iterrows()
    )
    sds = plural(s.ablation_sds, "standard deviation")
    return (
        f"Removing the top-k visual heads costs more accuracy (by more than {sds} over {s.seeds} seeds) "
        f"than removing k random heads of the same layers in {n['beats_same']} of {n['cases']} (run, k) "
        f"cases, and more than k random heads from anywhere in {n['beats_anywhere']} of them. Mean change "
        f"of mean accuracy over runs, top-k / random same layers / random anywhere: {by_k}."
    )


def late_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    shares = "/".join(pct(v, 0) for v in n["head_shares"])
    return (
        f"Removing the heads of the last {setting_pct(s.late_share)} of layers ({shares} of all heads) "
        f"changes mean accuracy by {num(n['late_mean'], 1, True)} points on average (per run "
        f"{span(n['late_min'], n['late_max'])}); removing as many first-layer heads changes it by "
        f"{num(n['early_mean'], 1, True)} ({span(n['early_min'], n['early_max'])}). The late loss is at most "
        f"{num(s.little_loss)} points and smaller than the early loss in {n['little']} of {n['runs']} runs."
    )


def probes_text(c: Claim, s: ReportSettings, source: str) -> str:
    if "overall" not in c.numbers:
        return f"Skipped: {source}."
    n = c.numbers
    sizes = ", ".join(
        f"{size} probes {num(r['mean'], 2)} ± {num(r['std'], 2)}" for size, r in n["overall"].iterrows()
    )
    return (
        f"Held-out MAE (whole runs held out, mean over benchmarks and {s.probe_draws} nested draws): "
        f"{sizes}; the mean-score baseline is {num(n['baseline'], 2)}, beaten at {n['beats']} of "
        f"{len(n['overall'])} sizes."
    )


def thresholds_text(s: ReportSettings) -> str:
    """The settings every verdict used, in words."""
    ablation_sds, probe_sds = (plural(x, "standard deviation") for x in (s.ablation_sds, s.probe_sds))
    return (
        f"Thresholds behind the verdicts: a claim *holds* when at least {setting_pct(s.holds_share)} of the "
        "cases (runs, benchmarks or (run, k) pairs) support it, *does not hold* at "
        f"{setting_pct(s.fails_share)} or less, *mixed* in between; sparse means at most "
        f"{setting_pct(s.sparse_fraction)} visual heads; a set has settled when the one before the last "
        f"checkpoint shares at least {setting_pct(s.settled_overlap)} of it; correlations count at "
        f"p < {s.alpha:g}; more data "
        f"helps when the within-run Spearman of the runs with the most data exceeds the others' by more "
        f"than {s.data_margin:g}; visual heads beat a control by more than {ablation_sds} over seeds; "
        f"little loss means at most {num(s.little_loss)} points; the error falls or rises when it moves by "
        f"more than {probe_sds} over draws."
    )
