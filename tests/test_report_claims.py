"""Each claim of `headcast report` on small hand-made tables: the verdict flips when its input flips,
and the thresholds come from `ReportSettings` (no model, no zoo)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.experiments.report.claims import CLAIMS
from headcast.experiments.report.cli import add_report_parser, settings_from_args
from headcast.experiments.report.measures import depth_profile, visual_sets_along_training
from headcast.experiments.report.settings import ReportSettings, settings_from_yaml
from headcast.experiments.report.verdicts import (
    FAILS,
    FALLS,
    FLAT,
    HOLDS,
    MIXED,
    NOT_MEASURED,
    RISES,
    UNTESTABLE,
    claim_correlation,
    claim_data,
    claim_depth,
    claim_late,
    claim_matter,
    claim_probes,
    claim_sparse,
    claim_training,
    share_verdict,
)
from headcast.experiments.report.wording import late_text, sparse_text, thresholds_text

S = ReportSettings()
RUNS = ("a", "b", "c", "d")


# ---------------------------------------------------------------- hand-made tables


def profile_of(visual_layers: dict[str, list[int]], n_layers: int = 6, n_heads: int = 2) -> pd.DataFrame:
    """Depth profile of one final checkpoint per run: head 0 of each listed layer is visual."""
    rows = [
        {
            "checkpoint": f"{run}/000100",
            "layer": layer,
            "head": head,
            "visual_head_rate": float(head == 0 and layer in layers),
        }
        for run, layers in visual_layers.items()
        for layer in range(n_layers)
        for head in range(n_heads)
    ]
    return depth_profile(pd.DataFrame(rows), S.visual_rate)


def training_of(visual_by_step: list[set[tuple[int, int]]], n_layers: int = 2, n_heads: int = 4):
    """Visual sets along training: every run of RUNS has the heads `visual_by_step[i]` visual at step i+1."""
    rows = [
        {
            "checkpoint": f"{run}/{step + 1:06d}",
            "layer": layer,
            "head": head,
            "visual_head_rate": float((layer, head) in visual),
        }
        for run in RUNS
        for step, visual in enumerate(visual_by_step)
        for layer in range(n_layers)
        for head in range(n_heads)
    ]
    return visual_sets_along_training(pd.DataFrame(rows), S.visual_rate)


def finals(profile: pd.DataFrame) -> list[str]:
    return profile["checkpoint"].unique().tolist()


def corr_of(
    concentration: list[tuple[float, float]], mean: tuple[float, float] = (0.5, 0.01)
) -> pd.DataFrame:
    """Correlation table: (rho, p) of concentration per benchmark; visual mass is unrelated noise."""
    rows = []
    for metric, pairs in (
        ("concentration", concentration),
        ("visual mass", [(0.1, 0.6)] * len(concentration)),
    ):
        for i, (rho, p) in enumerate([*pairs, mean]):
            benchmark = f"b{i}" if i < len(pairs) else "mean"
            rows.append(
                {"metric": metric, "benchmark": benchmark, "rho": rho, "p": p, "within_run": rho, "n": 20}
            )
    return pd.DataFrame(rows)


def by_data_of(less: float, more: list[float]) -> pd.DataFrame:
    """Within-run Spearman of visual mass: one run with less data, the others with the most."""
    rows = [{"run": "small", "data": 512, "checkpoints": 5, "visual mass": less, "concentration": 0.0}]
    rows += [
        {"run": f"r{i}", "data": 8192, "checkpoints": 5, "visual mass": v, "concentration": 0.0}
        for i, v in enumerate(more)
    ]
    return pd.DataFrame(rows)


def summary_of(top: float, same: float, std: float = 1.0, late: float = -1.0, early: float = -20.0):
    """Ablation summary over RUNS at k = 1, 2: top-k change, controls' change (mean ± std), late/early."""
    rows = []
    for run in RUNS:
        for k in (1, 2):
            rows.append({"run": run, "kind": "top-k visual", "k": k, "mean": top, "std": 0.0})
            rows.append({"run": run, "kind": "random, same layers", "k": k, "mean": same, "std": std})
            rows.append({"run": run, "kind": "random", "k": k, "mean": same, "std": std})
        rows.append({"run": run, "kind": "late layers", "k": 4, "mean": late, "std": 0.0})
        rows.append({"run": run, "kind": "early layers", "k": 4, "mean": early, "std": 0.0})
    return pd.DataFrame(rows).assign(total_heads=16, sets=1)


def curve_of(maes: dict[int, list[float]]) -> pd.DataFrame:
    """Probe curve: size -> MAE per draw (the same on two benchmarks)."""
    return pd.DataFrame(
        [
            {"probes": size, "draw": draw, "benchmark": b, "mae": mae}
            for size, draws in maes.items()
            for draw, mae in enumerate(draws)
            for b in ("x", "y")
        ]
    )


BASELINE = pd.DataFrame({"mae": [10.0, 10.0]}, index=["x", "y"])


# ---------------------------------------------------------------- the shared rule


def test_share_verdict_uses_the_settings_shares():
    assert [share_verdict(n, 4, S) for n in (4, 3, 2, 1, 0)] == [HOLDS, HOLDS, MIXED, FAILS, FAILS]
    strict = ReportSettings(holds_share=1.0, fails_share=0.0)
    assert [share_verdict(n, 4, strict) for n in (4, 3, 1, 0)] == [HOLDS, MIXED, MIXED, FAILS]
    assert share_verdict(0, 0, S) == UNTESTABLE


# ---------------------------------------------------------------- one test per claim


def test_visual_heads_are_sparse_only_when_few_heads_are_visual():
    few = profile_of({run: [0] for run in RUNS})  # 1 of 12 heads
    many = profile_of({run: [0, 1, 2, 3] for run in RUNS})  # 4 of 12
    none = profile_of({run: [] for run in RUNS})
    assert claim_sparse(few, finals(few), S).verdict == HOLDS
    assert claim_sparse(many, finals(many), S).verdict == FAILS
    assert claim_sparse(many, finals(many), ReportSettings(sparse_fraction=0.4)).verdict == HOLDS
    assert claim_sparse(none, finals(none), S).verdict == UNTESTABLE
    numbers = claim_sparse(few, finals(few), S).numbers
    assert (numbers["visual"], numbers["heads"], numbers["sparse_runs"], numbers["runs"]) == (4, 48, 4, 4)


def test_visual_heads_sit_early_when_early_thirds_are_denser_than_the_late():
    early = profile_of({run: [0, 2] for run in RUNS})
    late = profile_of({run: [4, 5] for run in RUNS})
    assert claim_depth(early, finals(early), S).verdict == HOLDS
    claim = claim_depth(late, finals(late), S)
    assert claim.verdict == FAILS and claim.numbers["late_share_of_visual"] == 1.0
    none = profile_of({run: [] for run in RUNS})
    assert claim_depth(none, finals(none), S).verdict == UNTESTABLE


def test_visual_heads_form_in_training_when_they_grow_and_the_set_settles():
    grows = training_of([set(), {(0, 1)}, {(0, 1), (1, 2)}, {(0, 1), (1, 2)}])
    assert grows[grows["run"] == "a"]["overlap"].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert grows["overlap"].notna().all() and training_of([set()])["overlap"].isna().all()
    assert claim_training(grows, S).verdict == HOLDS
    moving = training_of([set(), {(0, 1)}, {(0, 1)}, {(1, 2), (1, 3)}])  # the set jumps at the end
    claim = claim_training(moving, S)
    assert claim.verdict == FAILS and (claim.numbers["formed"], claim.numbers["settled"]) == (4, 0)
    assert claim_training(moving, ReportSettings(settled_overlap=0.0)).verdict == HOLDS
    shrinks = training_of([{(0, 0), (0, 1)}, {(0, 0)}, {(0, 0)}])
    assert claim_training(shrinks, S).verdict == FAILS
    assert claim_training(training_of([set(), set()]), S).verdict == UNTESTABLE


def test_concentration_tracks_performance_when_significantly_positive_and_never_negative():
    assert claim_correlation(corr_of([(0.6, 0.01)] * 4), S).verdict == HOLDS
    assert claim_correlation(corr_of([(-0.6, 0.01)] * 3 + [(0.6, 0.01)]), S).verdict == FAILS
    assert claim_correlation(corr_of([(0.6, 0.01)] * 3 + [(-0.6, 0.01)]), S).verdict == MIXED
    not_significant = corr_of([(0.6, 0.03)] * 4)
    assert claim_correlation(not_significant, S).verdict == HOLDS
    assert claim_correlation(not_significant, ReportSettings(alpha=0.01)).verdict == FAILS


def test_more_data_helps_when_enough_data_runs_track_accuracy_by_the_margin():
    assert claim_data(by_data_of(0.0, [0.5, 0.6, 0.7]), S).verdict == HOLDS
    assert claim_data(by_data_of(0.7, [0.5, 0.6, 0.7]), S).verdict == FAILS
    narrow = by_data_of(0.5, [0.6, 0.65, 0.7])  # median 0.65: ahead by 0.15
    assert claim_data(narrow, S).verdict == MIXED
    assert claim_data(narrow, ReportSettings(data_margin=0.1)).verdict == HOLDS
    same_data = by_data_of(0.0, [0.5]).assign(data=8192)
    assert claim_data(same_data, S).verdict == UNTESTABLE
    assert claim_data(by_data_of(0.0, [np.nan]), S).verdict == UNTESTABLE


def test_visual_heads_matter_when_removing_them_costs_more_than_random_same_layer_heads():
    assert claim_matter(summary_of(top=-10.0, same=-2.0), S).verdict == HOLDS
    assert claim_matter(summary_of(top=-2.0, same=-2.0), S).verdict == FAILS
    close = summary_of(top=-4.0, same=-2.0, std=1.0)  # two standard deviations apart
    assert claim_matter(close, S).verdict == HOLDS
    assert claim_matter(close, ReportSettings(ablation_sds=3.0)).verdict == FAILS
    assert claim_matter(close, S).numbers["cases"] == len(RUNS) * 2


def test_late_heads_are_removable_when_their_loss_is_little_and_below_the_early_loss():
    assert claim_late(summary_of(0, 0, late=-1.0, early=-20.0), S).verdict == HOLDS
    assert claim_late(summary_of(0, 0, late=-10.0, early=-20.0), S).verdict == FAILS
    assert (
        claim_late(summary_of(0, 0, late=-10.0, early=-20.0), ReportSettings(little_loss=12.0)).verdict
        == HOLDS
    )
    assert claim_late(summary_of(0, 0, late=-1.0, early=0.0), S).verdict == FAILS  # early costs less


def test_probe_error_falls_only_when_it_drops_beyond_the_spread_over_draws():
    assert claim_probes(curve_of({8: [12.0, 14.0], 64: [9.0, 9.0]}), BASELINE, S).verdict == FALLS
    assert claim_probes(curve_of({8: [9.0, 9.0], 64: [12.0, 14.0]}), BASELINE, S).verdict == RISES
    within = curve_of({8: [12.0, 14.0], 64: [12.0, 12.0]})  # mean 13 ± 1.4 -> 12
    assert claim_probes(within, BASELINE, S).verdict == FLAT
    assert claim_probes(within, BASELINE, ReportSettings(probe_sds=0.5)).verdict == FALLS
    assert claim_probes(None, None, S).verdict == NOT_MEASURED


# ---------------------------------------------------------------- the text quotes the settings


def test_text_quotes_the_thresholds_the_verdicts_used():
    settings = ReportSettings(
        holds_share=0.9, fails_share=0.1, data_margin=0.35, late_share=0.5, little_loss=2.5
    )
    text = thresholds_text(settings)
    assert "at least 90% of the" in text and "at 10% or less" in text and "more than 0.35" in text
    assert "75%" not in thresholds_text(settings) and "75%" in thresholds_text(S)
    late = late_text(claim_late(summary_of(0, 0), settings), settings)
    assert "last 50% of layers" in late and "at most 2.5 points" in late
    few = profile_of({run: [0] for run in RUNS})
    sparse = ReportSettings(sparse_fraction=0.15)
    assert "at most 15% visual heads" in sparse_text(claim_sparse(few, finals(few), sparse), sparse)


# ---------------------------------------------------------------- settings


def test_settings_load_from_yaml_including_mean_ablation_and_thresholds(tmp_path):
    path = tmp_path / "report.yaml"
    path.write_text("mode: mean\nks: [1, 3]\ndata_margin: 0.3\nholds_share: 0.8\n")
    settings = settings_from_yaml(path)
    assert settings == dataclasses.replace(S, mode="mean", ks=(1, 3), data_margin=0.3, holds_share=0.8)
    config = tmp_path / "zoo.yaml"
    config.write_text("name: x\nruns: []\nreport: {seeds: 5}\n")
    assert settings_from_yaml(config).seeds == 5


@pytest.mark.parametrize(
    "text",
    ["typo: 1\n", "mode: median\n", "fails_share: 0.8\n", "ks: [0]\n", "visual_rate: 1.5\n", "- 1\n"],
)
def test_bad_settings_are_one_line_errors(tmp_path, text):
    path = tmp_path / "report.yaml"
    path.write_text(text)
    with pytest.raises(HeadcastError):
        settings_from_yaml(path)


def test_command_line_options_override_the_settings_file(tmp_path):
    import argparse

    path = tmp_path / "report.yaml"
    path.write_text("mode: mean\nseeds: 7\nlittle_loss: 1.5\n")
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--zoo", "z", "--out", "o", "--settings", str(path), "--seeds", "2"])
    settings = settings_from_args(args)
    assert (settings.mode, settings.seeds, settings.little_loss, settings.ks) == ("mean", 2, 1.5, S.ks)
    args = parser.parse_args(["report", "--zoo", "z", "--out", "o"])
    assert settings_from_args(args) == S


def test_each_claim_is_registered_once_and_each_section_gathers_its_claims_in_one_run():
    """The render groups consecutive claims by section: a claim filed apart from its section's others
    would open that section a second time."""
    names = [record.name for record in CLAIMS]
    assert len(names) == len(set(names)) == 8
    sections = [section.title for section, _ in itertools.groupby(CLAIMS, key=lambda record: record.section)]
    assert len(sections) == len(set(sections)) == 4
