"""The report's Markdown, worded from the claims' verdicts and numbers and from the settings.

No number is typed here: each one is formatted from a measured table, a claim's numbers or a
`ReportSettings` field, so the text states the thresholds the verdicts actually used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from headcast.experiments.report.claims import Claim, judge
from headcast.experiments.report.measures import THIRDS, ablation_summary
from headcast.experiments.report.settings import ReportSettings
from headcast.experiments.report.tables import Findings


def _f(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pct(share: float, digits: int = 1) -> str:
    """A measured share as a percentage."""
    return f"{_f(100 * share, digits)}%"


def _setting(share: float) -> str:
    """A share from the settings as a percentage, as compact as it was written (0.75 -> 75%)."""
    return f"{100 * share:g}%"


def _plural(count: float, noun: str) -> str:
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _span(low: float, high: float, digits: int = 1, signed: bool = True) -> str:
    return f"{_f(low, digits, signed)} to {_f(high, digits, signed)}"


def sparse_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    return (
        f"At the final checkpoints {_pct(n['mean'])} of heads are visual on average "
        f"(per run {_f(100 * n['min'])}-{_pct(n['max'])}; {n['visual']} of {n['heads']} heads); "
        f"{n['sparse_runs']} of {n['runs']} runs have at most {_setting(s.sparse_fraction)} visual heads."
    )


def depth_text(c: Claim) -> str:
    n = c.numbers
    if n["runs_with_visual"] == 0:
        text = "No run has a visual head at its final checkpoint, so there is no placement to compare."
    else:
        text = (
            f"Visual-head density in the early and middle thirds is {_pct(n['early_density'])} of heads "
            f"against {_pct(n['late_density'])} in the late third (mean over the {n['runs_with_visual']} "
            f"runs with visual heads); it is higher in early/middle layers in {n['support']} of "
            f"{n['runs_with_visual']} runs. The late third holds {_pct(n['late_share_of_visual'])} of all "
            f"visual heads while it holds {_pct(n['late_share_of_heads'])} of all heads."
        )
    return text + (
        f" Along training: the runs' first checkpoints have {n['first_visual']} visual heads, "
        f"{n['first_late']} of them in the late third; their final checkpoints have {n['final_visual']}, "
        f"{n['final_late']} in the late third."
    )


def training_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    text = (
        f"On average {_pct(n['first_fraction'])} of heads are visual at a run's first checkpoint and "
        f"{_pct(n['final_fraction'])} at its last."
    )
    if not n["runs_with_visual"]:
        return text + " No run ends with a visual head, so there is no set to follow."
    return text + (
        f" Of the {n['runs_with_visual']} runs that end with visual heads, {n['formed']} have more of them "
        f"than at their first checkpoint, and in {n['settled']} the checkpoint before the last shares at "
        f"least {_setting(s.settled_overlap)} of its set with the last (mean overlap "
        f"{_f(n['overlap_before_last'], 2)}, Jaccard); {n['support']} do both."
    )


def correlation_text(c: Claim) -> str:
    return " ".join(
        f"{label}: Spearman with the mean accuracy {_f(n['rho'], 2)} (p = {n['p']:.2g}, n = {n['n']} "
        f"checkpoints; within runs {_f(n['within_run'], 2)}); per benchmark "
        f"{_span(n['min'], n['max'], 2, False)}, significantly positive on {n['positive']} of "
        f"{n['benchmarks']} benchmarks and significantly negative on {n['negative']}."
        for label, n in c.numbers.items()
    )


def data_text(c: Claim) -> str:
    n = c.numbers
    if "low" not in n:
        return "Every run of this zoo trains on the same amount of instruction data."
    runs = ", ".join(f"{run} ({items} items)" for run, items in n["less_data"])
    return (
        f"Within-run Spearman of visual mass with mean accuracy: {_f(n['low'], 2)} in the run(s) with less "
        f"data ({runs}) against a median of {_f(n['high'], 2)} in the {n['large_runs']} runs with "
        f"{n['most_data']} items."
    )


def matter_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    by_k = "; ".join(
        f"k={k}: {_f(r['top'], 1, True)} / {_f(r['same'], 1, True)} / {_f(r['any'], 1, True)} points"
        for k, r in n["by_k"].iterrows()
    )
    sds = _plural(s.ablation_sds, "standard deviation")
    return (
        f"Removing the top-k visual heads costs more accuracy (by more than {sds} over {s.seeds} seeds) "
        f"than removing k random heads of the same layers in {n['beats_same']} of {n['cases']} (run, k) "
        f"cases, and more than k random heads from anywhere in {n['beats_anywhere']} of them. Mean change "
        f"of mean accuracy over runs, top-k / random same layers / random anywhere: {by_k}."
    )


def late_text(c: Claim, s: ReportSettings) -> str:
    n = c.numbers
    shares = "/".join(_pct(v, 0) for v in n["head_shares"])
    return (
        f"Removing the heads of the last {_setting(s.late_share)} of layers ({shares} of all heads) changes "
        f"mean accuracy by {_f(n['late_mean'], 1, True)} points on average (per run "
        f"{_span(n['late_min'], n['late_max'])}); removing as many first-layer heads changes it by "
        f"{_f(n['early_mean'], 1, True)} ({_span(n['early_min'], n['early_max'])}). The late loss is at most "
        f"{_f(s.little_loss)} points and smaller than the early loss in {n['little']} of {n['runs']} runs."
    )


def probes_text(c: Claim, s: ReportSettings, source: str) -> str:
    if "overall" not in c.numbers:
        return f"Skipped: {source}."
    n = c.numbers
    sizes = ", ".join(
        f"{size} probes {_f(r['mean'], 2)} ± {_f(r['std'], 2)}" for size, r in n["overall"].iterrows()
    )
    return (
        f"Held-out MAE (whole runs held out, mean over benchmarks and {s.probe_draws} nested draws): "
        f"{sizes}; the mean-score baseline is {_f(n['baseline'], 2)}, beaten at {n['beats']} of "
        f"{len(n['overall'])} sizes."
    )


def thresholds_text(s: ReportSettings) -> str:
    """The settings every verdict used, in words."""
    ablation_sds, probe_sds = (_plural(x, "standard deviation") for x in (s.ablation_sds, s.probe_sds))
    return (
        f"Thresholds behind the verdicts: a claim *holds* when at least {_setting(s.holds_share)} of the "
        "cases (runs, benchmarks or (run, k) pairs) support it, *does not hold* at "
        f"{_setting(s.fails_share)} or less, *mixed* in between; sparse means at most "
        f"{_setting(s.sparse_fraction)} visual heads; a set has settled when the one before the last "
        f"checkpoint shares at least {_setting(s.settled_overlap)} of it; correlations count at "
        f"p < {s.alpha:g}; more data "
        f"helps when the within-run Spearman of the runs with the most data exceeds the others' by more "
        f"than {s.data_margin:g}; visual heads beat a control by more than {ablation_sds} over seeds; "
        f"little loss means at most {_f(s.little_loss)} points; the error falls or rises when it moves by "
        f"more than {probe_sds} over draws."
    )


def _mode_text(s: ReportSettings) -> str:
    what = "set to zero" if s.mode == "zero" else "replaced by its mean output over the zoo's probes"
    scored = f"the first {s.ablation_items} items of each benchmark" if s.ablation_items else "every item"
    return f"`{s.mode}` mode: each removed head's output is {what}; accuracy is scored on {scored}"


def _scale_text(f: Findings) -> str:
    """How deep the zoo's models are, next to the paper's, from the depth profile and the settings."""
    final = f.profile[f.profile["checkpoint"].isin(list(f.zoo.finals().values()))]
    low, high = int(final["layers"].min()), int(final["layers"].max())
    depth = f"{low}-{high} layers" if low < high else _plural(low, "layer")
    paper = "-".join(str(n) for n in f.settings.paper_layers)
    return (
        f"These are tiny synthetic models ({depth}), so a depth third holds at most "
        f"{_plural(int(final['third_layers'].max()), 'layer')}; the paper's models have {paper}."
    )


def render(f: Findings, figure_dir: str) -> str:
    """The report's Markdown; `figure_dir` is the figures' folder relative to the Markdown file."""
    from headcast.experiments.scenes import CHANCE
    from headcast.experiments.zoo import markdown_table

    s = f.settings
    fig = (lambda name: f"{figure_dir}/{name}") if figure_dir not in ("", ".") else (lambda name: name)
    summary = ablation_summary(f.ablation)
    claims = judge(f)
    v = {name: claim.verdict for name, claim in claims.items()}
    t = {
        "sparse": sparse_text(claims["sparse"], s),
        "depth": depth_text(claims["depth"]),
        "training": training_text(claims["training"], s),
        "correlation": correlation_text(claims["correlation"]),
        "data": data_text(claims["data"]),
        "matter": matter_text(claims["matter"], s),
        "late": late_text(claims["late"], s),
        "probes": probes_text(claims["probes"], s, f.curve_source),
    }
    finals = f.zoo.finals()
    stamp = f.zoo.stamp
    baselines = f.ablation[f.ablation["kind"] == "none"].groupby("run")["accuracy"].mean()
    chance = 100 * float(np.mean([CHANCE.get(b, np.nan) for b in f.zoo.wide.columns]))
    by_kind = summary.set_index(["run", "kind", "k"]).sort_index()
    out = [
        f"# Visual heads on the `{stamp.get('preset')}` zoo: do the paper's claims hold?",
        "",
        "*Generated by `headcast report`; every number below is computed from the zoo or quoted from the "
        "report settings, none is typed.*",
        "",
        f"Zoo: `{f.zoo.root.name}` (preset `{stamp.get('preset')}`, seed {stamp.get('seed')}), "
        f"{len(finals)} runs, {len(f.zoo.names)} checkpoints, {f.zoo.wide.shape[1]} benchmarks, "
        f"{f.n_probes} probes. A head is *visual* when its visual mass and concentration clear the "
        f"extraction thresholds on at least {_setting(s.visual_rate)} of the probes (the feature "
        "`visual_head_fraction`). Depth thirds are by each layer's relative depth. Ablations remove heads "
        f"at their output, before the output projection ({_mode_text(s)}), on each run's final checkpoint, "
        "and score every benchmark with the evaluator's greedy exact match; changes are in points of mean "
        "accuracy over benchmarks (negative: a loss).",
        "",
        "## Verdicts",
        "",
        _table(
            ["paper's claim", "on this zoo"],
            [
                ["visual heads are sparse", f"**{v['sparse']}**"],
                ["visual heads sit in early and middle layers", f"**{v['depth']}**"],
                ["(headcast) a set of visual heads forms in training and settles", f"**{v['training']}**"],
                ["concentration on visual tokens tracks performance", f"**{v['correlation']}**"],
                ["more visual attention helps only with enough training data", f"**{v['data']}**"],
                [
                    "removing visual heads costs more than removing random heads of their layers",
                    f"**{v['matter']}**",
                ],
                ["many late heads can be removed with little loss", f"**{v['late']}**"],
                ["(headcast) prediction error falls with probe-set size", f"**{v['probes']}**"],
            ],
        ),
        "",
        "## Scores of the zoo (each run's final checkpoint)",
        "",
        markdown_table(f.zoo.layout.scores),
        "",
        "## 1. Where visual heads sit",
        "",
        f"**Sparse: {v['sparse']}.** {t['sparse']}",
        "",
        f"**Early and middle layers: {v['depth']}.** {t['depth']}",
        "",
        f"![visual heads per depth third]({fig('depth_final.png')})",
        "",
        _table(
            ["run", "heads", "visual", *[f"{third} (visual/heads)" for third in THIRDS]],
            [
                [run, str(int(part["heads"].sum())), str(int(part["visual"].sum()))]
                + [f"{int(r.visual)}/{int(r.heads)}" for r in part.itertuples()]
                for run, final in finals.items()
                for part in [f.profile[f.profile["checkpoint"] == final].set_index("third").loc[list(THIRDS)]]
            ],
        ),
        "",
        f"**Forms in training and settles: {v['training']}.** {t['training']}",
        "",
        f"![visual heads along training]({fig('depth_training.png')})",
        "",
        "Per run, at each checkpoint in order: its visual heads, and their overlap with the last "
        "checkpoint's set (Jaccard; - where both are empty).",
        "",
        _table(
            ["run", "heads", "visual heads", "overlap with the last set"],
            [
                [
                    run,
                    str(int(part["heads"].iloc[-1])),
                    ", ".join(str(int(x)) for x in part["visual"]),
                    ", ".join("-" if np.isnan(x) else _f(x, 2, signed=False) for x in part["overlap"]),
                ]
                for run, part in f.training.groupby("run", sort=False)
            ],
        ),
        "",
        "## 2. Does concentration track the benchmarks?",
        "",
        f"**Concentration tracks performance: {v['correlation']}.** {t['correlation']}",
        "",
        f"![Spearman across checkpoints]({fig('correlations.png')})",
        "",
        f"Spearman across all checkpoints (`*`: p < {s.alpha:g}); the last column is the mean within-run "
        "Spearman with the mean accuracy:",
        "",
        _table(
            ["metric", *f.zoo.wide.columns, "mean", "within runs"],
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
        f"**More visual attention helps only with enough data: {v['data']}.** {t['data']}",
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
        f"**Removing visual heads costs more than removing random heads of their layers: {v['matter']}.** "
        f"{t['matter']}",
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
                    for c in [by_kind.loc[(r.run, kind, r.k)]]
                ]
                for r in summary[summary["kind"] == "top-k visual"].itertuples()
            ],
        ),
        "",
        f"**Many late heads can be removed with little loss: {v['late']}.** {t['late']}",
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
                    _f(by_kind.loc[(run, "early layers"), "mean"].iloc[0], 1, True),
                ]
                for run, r in summary[summary["kind"] == "late layers"].set_index("run").iterrows()
            ],
        ),
        "",
        "## 4. How many probes does the predictor need?",
        "",
        f"**Error {v['probes']}.** {t['probes']}",
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
        f"- Sparse visual heads: **{v['sparse']}**. {t['sparse']}",
        f"- Early/middle placement: **{v['depth']}**. {t['depth']}",
        f"- Forms in training and settles: **{v['training']}**. {t['training']}",
        f"- Concentration tracks performance: **{v['correlation']}**. {t['correlation']}",
        f"- Visual attention helps only with enough data: **{v['data']}**. {t['data']}",
        f"- Visual heads matter under ablation: **{v['matter']}**. {t['matter']}",
        f"- Late heads removable with little loss: **{v['late']}**. {t['late']}",
        f"- Probe-set size: **{v['probes']}**. {t['probes']}",
        "",
        f"{thresholds_text(s)} {_scale_text(f)}",
        "",
        "Runtime: " + ", ".join(f"{k} {x:.0f} s" for k, x in f.seconds.items()) + ".",
        "",
    ]
    return "\n".join(out)
