"""Per-item benchmark results as matrices: what the anchored estimates learn from and are scored on.

A long per-item table (`scores.read_items`: one row per checkpoint, benchmark and item) becomes,
per benchmark, a [checkpoints, items] matrix of right/wrong and of the gold answer's probability,
rows in the dataset's checkpoint order, checked to cover every checkpoint and item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from headcast.errors import HeadcastError
from headcast.predictor.dataset import Dataset
from headcast.predictor.score_tables import check_items_match_scores
from headcast.predictor.scores import read_items

DEFAULT_ANCHORS = 8  # anchor items per benchmark the hybrid answers, unless told otherwise


@dataclasses.dataclass
class BenchmarkItems:
    """One benchmark's per-item results: rows are checkpoints, columns items."""

    correct: np.ndarray  # 0/1
    prob: np.ndarray  # the gold answer's probability; NaN where unknown
    items: list[str]

    @property
    def score(self) -> np.ndarray:
        """Accuracy in percent over all items."""
        return 100 * self.correct.mean(1)

    def rows(self, index: np.ndarray) -> BenchmarkItems:
        return BenchmarkItems(self.correct[index], self.prob[index], self.items)


def item_matrices(items: pd.DataFrame, checkpoints: Sequence[str]) -> dict[str, BenchmarkItems]:
    """Per benchmark, the [checkpoints, items] matrices of a long per-item table, rows in `checkpoints`."""
    out = {}
    for benchmark, table in items.groupby("benchmark", sort=True):
        correct = table.pivot(index="checkpoint", columns="item", values="correct")
        missing = set(checkpoints) - set(correct.index)
        if missing:
            raise HeadcastError(
                f"benchmark {benchmark!r}: no per-item results for {len(missing)} checkpoint(s), "
                f"e.g. {sorted(missing)[0]!r}; evaluate them or leave the benchmark out"
            )
        correct = correct.loc[list(checkpoints)]
        if correct.isna().any().any():
            row, column = np.argwhere(correct.isna().to_numpy())[0]
            raise HeadcastError(
                f"benchmark {benchmark!r}: checkpoint {correct.index[row]!r} has no result for item "
                f"{correct.columns[column]!r}; every checkpoint must answer the same items"
            )
        prob = table.pivot(index="checkpoint", columns="item", values="prob").loc[
            correct.index, correct.columns
        ]
        out[str(benchmark)] = BenchmarkItems(
            correct.to_numpy(dtype=float), prob.to_numpy(dtype=float), [str(c) for c in correct.columns]
        )
    return out


def load_item_results(
    items: str | Path | pd.DataFrame, scores: pd.DataFrame, dataset: Dataset
) -> dict[str, BenchmarkItems]:
    """Per-item results (a `read_items` table or its path) for the dataset's checkpoints and benchmarks,
    checked against `scores`."""

    if not isinstance(items, pd.DataFrame):
        items = read_items(items)
    items = items[items["benchmark"].isin(dataset.benchmarks)]
    check_items_match_scores(items, scores)
    missing = sorted(set(dataset.benchmarks) - set(items["benchmark"]))
    if missing:
        raise HeadcastError(
            f"no per-item results for benchmark(s) {', '.join(missing)}; pass --benchmarks to fit the others"
        )
    return item_matrices(items, dataset.scores.index)
