"""The report's claims, one record each, in the order the report gives them.

A record says everything the report does with a claim: how it is judged on the findings
(`verdicts`), how its numbers are worded (`wording`), what is shown under it (`evidence`) and in
which section. The render loops over `CLAIMS`; adding a claim is adding a record here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from headcast.experiments.report import wording
from headcast.experiments.report.evidence import (
    Link,
    ablation_intro,
    correlation_evidence,
    data_evidence,
    depth_evidence,
    late_evidence,
    matter_evidence,
    no_evidence,
    no_intro,
    probes_evidence,
    training_evidence,
)
from headcast.experiments.report.measures import ablation_summary
from headcast.experiments.report.tables import Findings
from headcast.experiments.report.verdicts import (
    Claim,
    claim_correlation,
    claim_data,
    claim_depth,
    claim_late,
    claim_matter,
    claim_probes,
    claim_sparse,
    claim_training,
)


@dataclasses.dataclass(frozen=True)
class Section:
    """A numbered part of the report: its heading, and what it says before its first claim."""

    title: str
    intro: Callable[[Findings], list[str]] = no_intro


WHERE = Section("1. Where visual heads sit")
TRACKING = Section("2. Does concentration track the benchmarks?")
ABLATIONS = Section("3. Do visual heads matter? Ablations", ablation_intro)
PROBE_COUNT = Section("4. How many probes does the predictor need?")


@dataclasses.dataclass(frozen=True)
class ClaimRecord:
    """One of the paper's claims (or headcast's own), and how the report judges and words it."""

    name: str  # its key in `judge`'s result
    title: str  # the claim, as the verdict table states it
    lead: str  # the bold lead-in of its paragraph; `{}` stands for the verdict
    summary: str  # its label in the closing note
    section: Section
    judge: Callable[[Findings], Claim]
    text: Callable[[Claim, Findings], str]  # the numbers behind the verdict, in words
    evidence: Callable[[Findings, Link], list[str]] = no_evidence


def _finals(f: Findings) -> list[str]:
    return list(f.zoo.finals().values())


CLAIMS: tuple[ClaimRecord, ...] = (
    ClaimRecord(
        name="sparse",
        title="visual heads are sparse",
        lead="Sparse: {}",
        summary="Sparse visual heads",
        section=WHERE,
        judge=lambda f: claim_sparse(f.profile, _finals(f), f.settings),
        text=lambda c, f: wording.sparse_text(c, f.settings),
    ),
    ClaimRecord(
        name="depth",
        title="visual heads sit in early and middle layers",
        lead="Early and middle layers: {}",
        summary="Early/middle placement",
        section=WHERE,
        judge=lambda f: claim_depth(f.profile, _finals(f), f.settings),
        text=lambda c, f: wording.depth_text(c),
        evidence=depth_evidence,
    ),
    ClaimRecord(
        name="training",
        title="(headcast) a set of visual heads forms in training and settles",
        lead="Forms in training and settles: {}",
        summary="Forms in training and settles",
        section=WHERE,
        judge=lambda f: claim_training(f.training, f.settings),
        text=lambda c, f: wording.training_text(c, f.settings),
        evidence=training_evidence,
    ),
    ClaimRecord(
        name="correlation",
        title="concentration on visual tokens tracks performance",
        lead="Concentration tracks performance: {}",
        summary="Concentration tracks performance",
        section=TRACKING,
        judge=lambda f: claim_correlation(f.corr, f.settings),
        text=lambda c, f: wording.correlation_text(c),
        evidence=correlation_evidence,
    ),
    ClaimRecord(
        name="data",
        title="more visual attention helps only with enough training data",
        lead="More visual attention helps only with enough data: {}",
        summary="Visual attention helps only with enough data",
        section=TRACKING,
        judge=lambda f: claim_data(f.by_data, f.settings),
        text=lambda c, f: wording.data_text(c),
        evidence=data_evidence,
    ),
    ClaimRecord(
        name="matter",
        title="removing visual heads costs more than removing random heads of their layers",
        lead="Removing visual heads costs more than removing random heads of their layers: {}",
        summary="Visual heads matter under ablation",
        section=ABLATIONS,
        judge=lambda f: claim_matter(ablation_summary(f.ablation), f.settings),
        text=lambda c, f: wording.matter_text(c, f.settings),
        evidence=matter_evidence,
    ),
    ClaimRecord(
        name="late",
        title="many late heads can be removed with little loss",
        lead="Many late heads can be removed with little loss: {}",
        summary="Late heads removable with little loss",
        section=ABLATIONS,
        judge=lambda f: claim_late(ablation_summary(f.ablation), f.settings),
        text=lambda c, f: wording.late_text(c, f.settings),
        evidence=late_evidence,
    ),
    ClaimRecord(
        name="probes",
        title="(headcast) prediction error falls with probe-set size",
        lead="Error {}",
        summary="Probe-set size",
        section=PROBE_COUNT,
        judge=lambda f: claim_probes(f.curve, f.curve_baseline, f.settings),
        text=lambda c, f: wording.probes_text(c, f.settings, f.curve_source),
        evidence=probes_evidence,
    ),
)


def judge(findings: Findings) -> dict[str, Claim]:
    """Every claim of the report, in the order the report gives them."""
    return {record.name: record.judge(findings) for record in CLAIMS}
