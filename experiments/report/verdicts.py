"""The paper's claims, each judged by a pure function: measured tables + settings -> verdict + numbers.

A claim returns the numbers its verdict rests on, not sentences: `wording` words them, so a
verdict can be tested on a hand-made table and the text cannot drift from what was decided.
Every threshold comes from `ReportSettings`; `claims.CLAIMS` says which findings each judge reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from headcast.experiments.report.measures import probe_curve_summary
from headcast.experiments.report.settings import ReportSettings

HOLDS, FAILS, MIXED = "holds", "does not hold", "mixed"
UNTESTABLE, NOT_MEASURED = "not testable here", "not measured"
FALLS, RISES, FLAT = "falls with more probes", "rises with more probes", "flat (within the spread over draws)"


@dataclasses.dataclass(frozen=True)
class Claim:
    """A verdict and the numbers behind it (named, for the render and for tests)."""

    verdict: str
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)


def share_verdict(supporting: int, total: int, settings: ReportSettings) -> str:
    """'holds' when at least `holds_share` of the cases support the claim, 'does not hold' at
    `fails_share` or less, 'mixed' in between; no case at all cannot test it."""
    if total == 0:
        return UNTESTABLE
    share = supporting / total
    return HOLDS if share >= settings.holds_share else FAILS if share <= settings.fails_share else MIXED


def _finals(profile: pd.DataFrame, finals: Collection[str]) -> pd.DataFrame:
    return profile[profile["checkpoint"].isin(list(finals))]


def claim_sparse(profile: pd.DataFrame, finals: Collection[str], settings: ReportSettings) -> Claim:
    """Visual heads are sparse: per run, at most `sparse_fraction` of the final checkpoint's heads."""
    per_run = _finals(profile, finals).groupby("run").agg(visual=("visual", "sum"), heads=("heads", "sum"))
    fraction = per_run["visual"] / per_run["heads"]
    sparse = int((fraction <= settings.sparse_fraction).sum())
    numbers = {
        "mean": float(fraction.mean()),
        "min": float(fraction.min()),
        "max": float(fraction.max()),
        "visual": int(per_run["visual"].sum()),
        "heads": int(per_run["heads"].sum()),
        "sparse_runs": sparse,
        "runs": len(per_run),
    }
    verdict = share_verdict(sparse, len(per_run), settings) if numbers["visual"] else UNTESTABLE
    return Claim(verdict, numbers)


def claim_depth(profile: pd.DataFrame, finals: Collection[str], settings: ReportSettings) -> Claim:
    """Visual heads sit early: per run with visual heads, denser in the early+middle thirds than the late."""
    final = _finals(profile, finals)
    per_run = final.groupby("run")[["visual", "heads"]].sum()
    early = final[final["third"] != "late"].groupby("run")[["visual", "heads"]].sum()
    late = final[final["third"] == "late"].groupby("run")[["visual", "heads"]].sum()
    has_visual = per_run.index[per_run["visual"] > 0]
    early_density = (early["visual"] / early["heads"])[has_visual]
    late_density = (late["visual"] / late["heads"])[has_visual]
    support = int((early_density > late_density).sum())
    first = profile[profile["step"] == profile.groupby("run")["step"].transform("min")]
    numbers = {
        "runs_with_visual": len(has_visual),
        "early_density": float(early_density.mean()),
        "late_density": float(late_density.mean()),
        "support": support,
        "late_share_of_visual": float(late["visual"].sum() / max(per_run["visual"].sum(), 1)),
        "late_share_of_heads": float(late["heads"].sum() / per_run["heads"].sum()),
        "first_visual": int(first["visual"].sum()),
        "first_late": int(first.loc[first["third"] == "late", "visual"].sum()),
        "final_visual": int(per_run["visual"].sum()),
        "final_late": int(late["visual"].sum()),
    }
    return Claim(share_verdict(support, len(has_visual), settings), numbers)


def claim_training(training: pd.DataFrame, settings: ReportSettings) -> Claim:
    """Visual heads form in training and settle: per run with visual heads at the end, more of them
    than at its first checkpoint, and the checkpoint before the last shares at least
    `settled_overlap` of its set with the last (Jaccard)."""
    per_run = training.groupby("run", sort=False).agg(
        first=("visual", "first"),
        final=("visual", "last"),
        heads=("heads", "last"),
        before_last=("overlap", lambda x: x.iloc[-2] if len(x) > 1 else np.nan),
    )
    ends_visual = per_run[per_run["final"] > 0]
    formed = ends_visual["final"] > ends_visual["first"]
    settled = ends_visual["before_last"] >= settings.settled_overlap
    support = int((formed & settled).sum())
    numbers = {
        "runs": len(per_run),
        "runs_with_visual": len(ends_visual),
        "formed": int(formed.sum()),
        "settled": int(settled.sum()),
        "support": support,
        "first_fraction": float((per_run["first"] / per_run["heads"]).mean()),
        "final_fraction": float((per_run["final"] / per_run["heads"]).mean()),
        "overlap_before_last": float(ends_visual["before_last"].mean()) if len(ends_visual) else np.nan,
    }
    if not len(ends_visual):
        return Claim(UNTESTABLE, numbers)
    return Claim(share_verdict(support, len(ends_visual), settings), numbers)


def claim_correlation(corr: pd.DataFrame, settings: ReportSettings) -> Claim:
    """Concentration tracks performance: significantly positive Spearman on most benchmarks, no negative.

    Numbers are given for visual mass as well (the paper's other metric); only concentration decides.
    """
    numbers: dict[str, Any] = {}
    for label in ("concentration", "visual mass"):
        part = corr[(corr["metric"] == label) & (corr["benchmark"] != "mean")]
        significant = part["p"] < settings.alpha
        mean_row = corr[(corr["metric"] == label) & (corr["benchmark"] == "mean")].iloc[0]
        numbers[label] = {
            "rho": float(mean_row["rho"]),
            "p": float(mean_row["p"]),
            "n": int(mean_row["n"]),
            "within_run": float(mean_row["within_run"]),
            "min": float(part["rho"].min()),
            "max": float(part["rho"].max()),
            "positive": int((significant & (part["rho"] > 0)).sum()),
            "negative": int((significant & (part["rho"] < 0)).sum()),
            "benchmarks": len(part),
            "defined": int(part["rho"].notna().sum()),
        }
    c = numbers["concentration"]
    if c["negative"] > c["positive"]:
        verdict = FAILS
    elif c["negative"]:
        verdict = MIXED
    else:
        verdict = share_verdict(c["positive"], c["defined"], settings)
    return Claim(verdict, numbers)


def claim_data(by_data: pd.DataFrame, settings: ReportSettings) -> Claim:
    """More visual attention helps only with enough data: the within-run Spearman of visual mass with
    accuracy is higher, by `data_margin`, in the runs with the most data than in those with less."""
    table = by_data.dropna(subset=["data"])
    if table["data"].nunique() < 2:
        return Claim(UNTESTABLE, {"runs": len(table)})
    most = table["data"].max()
    small, large = table[table["data"] < most], table[table["data"] == most]
    low, high = float(small["visual mass"].mean()), float(large["visual mass"].median())
    numbers = {
        "low": low,
        "high": high,
        "less_data": list(zip(small["run"], small["data"].astype(int), strict=True)),
        "large_runs": len(large),
        "most_data": int(most),
    }
    if np.isnan(low) or np.isnan(high):
        return Claim(UNTESTABLE, numbers)
    verdict = HOLDS if low < high - settings.data_margin and high > 0 else FAILS if low >= high else MIXED
    return Claim(verdict, numbers)


def _by_run_k(summary: pd.DataFrame, kind: str, index: pd.Index | None = None) -> pd.DataFrame:
    part = summary[summary["kind"] == kind].set_index(["run", "k"])
    return part if index is None else part.loc[index]


def claim_matter(summary: pd.DataFrame, settings: ReportSettings) -> Claim:
    """Visual heads matter: removing the top-k costs more than k random heads of the same layers, by
    more than `ablation_sds` standard deviations over seeds, in most (run, k) cases."""
    top = _by_run_k(summary, "top-k visual")
    same = _by_run_k(summary, "random, same layers", top.index)
    anywhere = _by_run_k(summary, "random", top.index)
    beats_same = int((top["mean"] < same["mean"] - settings.ablation_sds * same["std"]).sum())
    beats_anywhere = int((top["mean"] < anywhere["mean"] - settings.ablation_sds * anywhere["std"]).sum())
    by_k = (
        pd.DataFrame({"top": top["mean"], "same": same["mean"], "any": anywhere["mean"]}).groupby("k").mean()
    )
    numbers = {"beats_same": beats_same, "beats_anywhere": beats_anywhere, "cases": len(top), "by_k": by_k}
    return Claim(share_verdict(beats_same, len(top), settings), numbers)


def claim_late(summary: pd.DataFrame, settings: ReportSettings) -> Claim:
    """Many late heads can go: removing the last layers' heads loses at most `little_loss` points, and
    less than removing as many first-layer heads, in most runs."""
    late = summary[summary["kind"] == "late layers"].set_index("run")
    early = summary[summary["kind"] == "early layers"].set_index("run").loc[late.index]
    little = int(((-late["mean"] <= settings.little_loss) & (late["mean"] > early["mean"])).sum())
    numbers = {
        "head_shares": sorted(set((late["k"] / late["total_heads"]).round(4).tolist())),
        **{f"late_{stat}": float(getattr(late["mean"], stat)()) for stat in ("mean", "min", "max")},
        **{f"early_{stat}": float(getattr(early["mean"], stat)()) for stat in ("mean", "min", "max")},
        "little": little,
        "runs": len(late),
    }
    return Claim(share_verdict(little, len(late), settings), numbers)


def claim_probes(
    curve: pd.DataFrame | None, baseline: pd.DataFrame | None, settings: ReportSettings
) -> Claim:
    """Prediction error falls with probe-set size: the largest set's error is below the smallest's by more
    than `probe_sds` standard deviations over draws (rises when above, else flat)."""
    if curve is None or curve.empty or baseline is None:
        return Claim(NOT_MEASURED)
    overall = probe_curve_summary(curve)
    base = float(baseline["mae"].mean())
    first, last = overall.iloc[0], overall.iloc[-1]
    spread = settings.probe_sds * (0.0 if np.isnan(first["std"]) else float(first["std"]))
    if last["mean"] < first["mean"] - spread:
        verdict = FALLS
    elif last["mean"] > first["mean"] + spread:
        verdict = RISES
    else:
        verdict = FLAT
    numbers = {"overall": overall, "baseline": base, "beats": int((overall["mean"] < base).sum())}
    return Claim(verdict, numbers)
