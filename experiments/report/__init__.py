"""`headcast report`: check the paper's claims about visual heads on a zoo, as a generated Markdown report.

Four measurements:
1. where visual heads sit: share of visual heads per relative-depth third, per run, along training;
2. whether concentration / visual mass track the benchmarks: Spearman across checkpoints;
3. whether they matter: accuracy after removing the top-k visual heads vs k random heads, and after
   removing the last layers' heads vs as many first-layer heads (proper output ablation, not the
   paper's leaky score masking);
4. how many probes the predictor needs: held-out error against probe-set size.

One room per job, so that each can be read and tested alone:
`settings` (what is measured, every verdict threshold), `tables` (reading the zoo), `measures` (pure
functions on tables), `collect` (the model work), `claims` (tables + settings -> verdict + numbers),
`figures`, `render` (Markdown worded from claims and settings, no typed number), `tracking` (MLflow)
and `cli` (`write_report` and the command).
"""

from experiments.report.claims import Claim, judge
from experiments.report.cli import add_report_parser, run_report, write_report
from experiments.report.collect import ablation_results, measure, probe_size_curve
from experiments.report.measures import (
    CORRELATED,
    THIRDS,
    ablation_summary,
    correlations,
    depth_profile,
    head_sets,
    rank_heads,
    within_run_by_data,
)
from experiments.report.render import render
from experiments.report.settings import ReportSettings, settings_from_config, settings_from_yaml
from experiments.report.tables import Findings, Zoo, read_zoo
from experiments.report.tracking import EXPERIMENT

__all__ = [
    "CORRELATED",
    "EXPERIMENT",
    "THIRDS",
    "Claim",
    "Findings",
    "ReportSettings",
    "Zoo",
    "ablation_results",
    "ablation_summary",
    "add_report_parser",
    "correlations",
    "depth_profile",
    "head_sets",
    "judge",
    "measure",
    "probe_size_curve",
    "rank_heads",
    "read_zoo",
    "render",
    "run_report",
    "settings_from_config",
    "settings_from_yaml",
    "within_run_by_data",
    "write_report",
]
