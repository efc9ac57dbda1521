"""What the report measures and every threshold its verdicts use: one dataclass, printed in the report.

The render quotes these values and never types its own, so changing a threshold here (or in a YAML
file) changes the verdicts and the sentences that explain them together.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from headcast.errors import HeadcastError
from headcast.predictor import REGRESSORS

ESTIMATORS_CHOICES = tuple(REGRESSORS)  # the regressors (not `auto`); the registry imports no LightGBM
MODES = ("zero", "mean")  # extract.head_ablation.HeadAblation


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """What the report measures, and the thresholds its verdicts use (printed in the report)."""

    # what is measured
    ks: tuple[int, ...] = (1, 2, 4, 8)  # top-k visual heads removed (k up to half the model's heads)
    seeds: int = 3  # random head sets per k
    probe_sizes: tuple[int, ...] = (8, 32, 128, 512)
    probe_draws: int = 3  # random nested subsets per probe-set size
    estimator: str = "ridge"
    mode: str = "zero"  # ablation: zero the head's output, or replace it by its mean over the zoo's probes
    batch_size: int = 64
    ablation_items: int = 0  # items per benchmark scored under each ablation (the first ones); 0: all
    late_share: float = 0.25  # the late/early ablation removes the heads of this share of layers
    # what the verdicts need
    visual_rate: float = 0.5  # a head is visual when it is visual on at least this share of probes
    holds_share: float = 0.75  # a claim holds when at least this share of its cases supports it
    fails_share: float = 0.25  # ... and does not hold when at most this share does (mixed in between)
    sparse_fraction: float = 0.2  # "sparse": at most this share of heads is visual
    settled_overlap: float = 0.5  # "settled": the visual set before the last checkpoint overlaps the last's
    alpha: float = 0.05  # significance level of the Spearman tests
    data_margin: float = 0.2  # within-run Spearman by which enough-data runs must beat less-data runs
    ablation_sds: float = 1.0  # top-k must cost more than the control by this many std over seeds
    little_loss: float = 3.0  # points of mean accuracy that count as "little loss"
    probe_sds: float = 1.0  # error must move by this many std over draws to count as falling/rising
    paper_layers: tuple[int, ...] = (32, 40)  # depth range of the paper's models, quoted for comparison

    def __post_init__(self) -> None:
        if (
            self.seeds < 1
            or not self.ks
            or min(self.ks) < 1
            or not self.probe_sizes
            or min(self.probe_sizes) < 1
        ):
            raise HeadcastError("--k, --seeds and --probe-sizes take positive numbers")
        if self.probe_draws < 1 or self.batch_size < 1:
            raise HeadcastError("probe_draws and batch_size take positive numbers")
        if self.ablation_items < 0:
            raise HeadcastError(
                f"ablation_items takes 0 (every item) or a positive number, got {self.ablation_items}"
            )
        if self.mode not in MODES:
            raise HeadcastError(f"unknown ablation mode {self.mode!r}; use {' or '.join(MODES)}")
        if self.estimator not in ESTIMATORS_CHOICES:
            raise HeadcastError(f"unknown estimator {self.estimator!r}; use {', '.join(ESTIMATORS_CHOICES)}")
        shares = (
            "late_share",
            "visual_rate",
            "holds_share",
            "fails_share",
            "sparse_fraction",
            "settled_overlap",
            "alpha",
        )
        for name in shares:
            if not 0 <= getattr(self, name) <= 1:
                raise HeadcastError(
                    f"report setting {name} is a share between 0 and 1, got {getattr(self, name)}"
                )
        if self.fails_share >= self.holds_share:
            raise HeadcastError(
                f"fails_share ({self.fails_share}) must be below holds_share ({self.holds_share})"
            )
        for name in ("data_margin", "ablation_sds", "little_loss", "probe_sds"):
            if getattr(self, name) < 0:
                raise HeadcastError(f"report setting {name} cannot be negative, got {getattr(self, name)}")


def settings_from_config(raw: dict | None) -> ReportSettings:
    """`ReportSettings` from a zoo config's `report:` mapping (lists become tuples, unknown keys fail)."""
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(ReportSettings)}
    unknown = set(raw) - known
    if unknown:
        raise HeadcastError(
            f"unknown report setting(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return ReportSettings(**values)


def settings_from_yaml(path: str | Path) -> ReportSettings:
    """Settings from a YAML file: a mapping of settings, or a zoo config whose `report:` key holds one."""

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise HeadcastError(f"cannot read report settings {path}: {err}") from err
    if raw is not None and not isinstance(raw, dict):
        raise HeadcastError(f"{path} is not a mapping of report settings")
    if raw and "runs" in raw:  # a zoo config: its own report settings, or the defaults
        raw = raw.get("report")
    return settings_from_config(raw)
