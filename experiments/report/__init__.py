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
functions on tables), `collect` (the model work), `verdicts` (tables + settings -> verdict + numbers),
`wording` (a claim's numbers in words), `evidence` (the figure and table under each claim), `claims`
(one record per claim tying those together, in report order), `figures`, `render` (the Markdown, one
loop over the claims, no typed number), `tracking` (MLflow), `write` (`write_report`: all of it into a
folder) and `cli` (the command).
"""

from headcast.experiments.report.claims import CLAIMS, ClaimRecord, judge
from headcast.experiments.report.collect import ablation_results, measure, probe_size_curve
from headcast.experiments.report.measures import (
    CORRELATED,
    THIRDS,
    ablation_summary,
    correlations,
    depth_profile,
    head_sets,
    rank_heads,
    within_run_by_data,
)
from headcast.experiments.report.render import render
from headcast.experiments.report.settings import ReportSettings, settings_from_config, settings_from_yaml
from headcast.experiments.report.tables import Findings, Zoo, read_zoo
from headcast.experiments.report.tracking import EXPERIMENT
from headcast.experiments.report.verdicts import Claim
from headcast.experiments.report.write import write_report

__all__ = [
    "CLAIMS",
    "CORRELATED",
    "EXPERIMENT",
    "THIRDS",
    "Claim",
    "ClaimRecord",
    "Findings",
    "ReportSettings",
    "Zoo",
    "ablation_results",
    "ablation_summary",
    "correlations",
    "depth_profile",
    "head_sets",
    "judge",
    "measure",
    "probe_size_curve",
    "rank_heads",
    "read_zoo",
    "render",
    "settings_from_config",
    "settings_from_yaml",
    "within_run_by_data",
    "write_report",
]
