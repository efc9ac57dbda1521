"""Join feature rows with benchmark scores into a training set; a training run is a group."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from headcast.contract import ExtractionContract, table_contract
from headcast.errors import HeadcastError, listing
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION

MIN_GROUPS = 3


@dataclasses.dataclass
class Dataset:
    """Features and scores indexed by checkpoint, with each checkpoint's run, step and family."""

    features: pd.DataFrame
    scores: pd.DataFrame  # one column per benchmark, percent; NaN where not measured
    groups: pd.Series
    steps: pd.Series
    families: pd.Series
    contract: ExtractionContract | None = None  # how every feature row was made; stored with the model

    @property
    def benchmarks(self) -> list[str]:
        return list(self.scores.columns)


def run_of(checkpoint: str) -> str:
    """The training run a checkpoint belongs to: its parent folder (`run/step` -> `run`)."""
    parent = checkpoint.rstrip("/").rsplit("/", 1)
    return parent[0] if len(parent) == 2 else checkpoint


def step_of(checkpoint: str) -> float:
    """The training step in the checkpoint's last path part (`run/500`, `checkpoint-500`), else NaN."""
    match = re.search(r"(\d+)$", checkpoint.rstrip("/").rsplit("/", 1)[-1])
    return float(match.group(1)) if match else np.nan


def last_checkpoints(checkpoints: Iterable[str]) -> dict[str, str]:
    """Run -> its last checkpoint (highest step), in order of first appearance: the ones whose scores a
    training run ends with."""
    last: dict[str, str] = {}
    for name in checkpoints:
        run = run_of(name)
        if run not in last or step_of(name) > step_of(last[run]):
            last[run] = name
    return last


def feature_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of a feature table, indexed by checkpoint, after checking its schema."""
    if table.empty:
        raise HeadcastError("the feature table has no rows; run 'headcast extract' on some checkpoints first")
    versions = set(table["schema_version"])
    if versions != {FEATURE_SCHEMA_VERSION}:
        raise HeadcastError(
            f"feature schema {sorted(versions)} does not match this headcast's {FEATURE_SCHEMA_VERSION!r}; "
            "re-extract the features with this version"
        )
    return (
        table.drop(columns=["schema_version", CONTRACT_COLUMN], errors="ignore")
        .set_index("checkpoint")
        .astype(float)
    )


def build_dataset(
    features: pd.DataFrame,
    scores: pd.DataFrame,
    settings: dict[str, dict] | None = None,
    benchmarks: Sequence[str] | None = None,
) -> Dataset:
    """Features (`checkpoint, schema_version, ...`) joined with long scores; mismatches are errors."""
    matrix = feature_matrix(features)
    contract = table_contract(features)  # a table mixing contracts is refused before any work
    if scores.empty:
        raise HeadcastError("the score table has no rows")
    wide = scores.pivot_table(index="checkpoint", columns="benchmark", values="score", aggfunc="mean")
    if benchmarks:
        unknown = set(benchmarks) - set(wide.columns)
        if unknown:
            raise HeadcastError(
                f"unknown benchmark(s) {listing(unknown)}; the score table has {listing(wide.columns, 20)}"
            )
        wide = wide[list(benchmarks)]
    unscored = set(matrix.index) - set(wide.index)
    if unscored:
        raise HeadcastError(f"{len(unscored)} checkpoint(s) have features but no scores: {listing(unscored)}")
    featureless = set(wide.index) - set(matrix.index)
    if featureless:
        raise HeadcastError(
            f"{len(featureless)} checkpoint(s) have scores but no features: {listing(featureless)}; "
            "extract them (names must match, see 'headcast extract --relative-to')"
        )
    order = sorted(matrix.index)
    settings = settings or {}
    families = [
        f"{settings.get(c, {}).get('arch', '?')}/{settings.get(c, {}).get('text_model', '?')}" for c in order
    ]
    dataset = Dataset(
        features=matrix.loc[order],
        scores=wide.loc[order],
        groups=pd.Series([run_of(c) for c in order], index=order, name="run"),
        steps=pd.Series([step_of(c) for c in order], index=order, name="step"),
        families=pd.Series(families, index=order, name="family"),
        contract=contract,
    )
    n_groups = dataset.groups.nunique()
    if n_groups < MIN_GROUPS:
        raise HeadcastError(
            f"only {n_groups} training run(s) among the checkpoints; grouped cross-validation needs at least "
            f"{MIN_GROUPS} runs (checkpoints are grouped by their parent folder)"
        )
    return dataset
