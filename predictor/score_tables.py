"""Score and per-item tables whatever harness wrote them: the columns, and the checks every reader applies.

Scores: `SCORE_TABLE_COLUMNS`, the core's `SCORE_COLUMNS` (score in percent) then its provenance;
one score per checkpoint and benchmark. Per-item results (the ground truth item-level predictors
learn from): the core's `ITEM_COLUMNS`, `correct` 0/1. Readers of each format (`scores`, `lmms_eval`)
build these tables and pass them through the checks here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError, listing
from headcast.schema import ITEM_COLUMNS, ITEM_KEY, SCORE_COLUMNS, SCORE_KEY

# The score, then its provenance: the harness and its version (or why unknown), the metric, a partial
# run's item limit, the run's date and the file it was read from.
SCORE_TABLE_COLUMNS = [
    *SCORE_COLUMNS,
    "harness",
    "harness_version",
    "metric",
    "limit",
    "date",
    "source",
]
# Percent points an item accuracy may differ from its score: a score kept as a fraction rounded to 2
# decimals (lmms-eval's tables) is off by up to 0.5 points.
SCORE_TOLERANCE = 0.51
_TRUTH = {"1": 1, "1.0": 1, "true": 1, "0": 0, "0.0": 0, "false": 0}


def checked_counts(table: pd.DataFrame, where: Callable[[int], str]) -> pd.DataFrame:
    """`n`, the items behind each score, as whole numbers of at least 1 (NaN where unknown).

    Anything else is refused, naming the row by `where(row)`: the fit draws item subsets of this size.
    """
    raw = table["n"]
    n = pd.to_numeric(raw, errors="coerce")
    whole = n.between(1, float("inf"), inclusive="left") & (n == n.round())
    bad = ~(whole | (n.isna() & raw.isna()))
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise HeadcastError(
            f"{where(row)}: n {raw.tolist()[row]!r} is not a number of items; "
            "n is a whole number of at least 1, or empty where unknown"
        )
    return table.assign(n=n)


def without_duplicates(table: pd.DataFrame, keep_latest: bool) -> pd.DataFrame:
    """One score per checkpoint and benchmark: two different ones are refused, naming where they come from."""
    twice = table.duplicated(SCORE_KEY, keep=False)
    if not twice.any():
        return table.reset_index(drop=True)
    if keep_latest:
        latest = table.sort_values(["date", "source"]).drop_duplicates(SCORE_KEY, keep="last")
        return latest.sort_index().reset_index(drop=True)
    first = table[twice].iloc[0]
    same = table[
        twice & (table["checkpoint"] == first["checkpoint"]) & (table["benchmark"] == first["benchmark"])
    ]
    raise HeadcastError(
        f"{first['checkpoint']} on {first['benchmark']} is scored {len(same)} times "
        f"({', '.join(f'{s:g} in {src}' for s, src in zip(same['score'], same['source'], strict=True))}); "
        "keep one run per checkpoint, or pass --keep-latest to use the most recent"
    )


def checked_items(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """`table` in `ITEM_COLUMNS` form with `correct` as 0/1, or a one-line error naming the first bad row."""
    missing = {*ITEM_KEY, "correct"} - set(table.columns)
    if missing:
        raise HeadcastError(
            f"{source} lacks column(s) {', '.join(sorted(missing))}; "
            "a per-item table needs checkpoint, benchmark, item, correct[, answer, prob, confidence]"
        )
    if table.empty:
        raise HeadcastError(f"{source} has no rows; a per-item table needs one row per checkpoint and item")
    table = table.reset_index(drop=True).astype(dict.fromkeys(ITEM_KEY, str))
    correct = table["correct"].map(lambda value: _TRUTH.get(str(value).strip().lower()))
    _refuse_rows(table, correct.isna(), source, "correct", "correct must be 0/1 or true/false")
    table["correct"] = correct.astype(int)
    table["answer"] = table.get("answer", pd.Series("", index=table.index)).fillna("").astype(str)
    for column in ("prob", "confidence"):
        raw = table.get(column, pd.Series(float("nan"), index=table.index))
        values = pd.to_numeric(raw, errors="coerce")
        _refuse_rows(
            table, values.isna() & raw.notna(), source, column, "use a number in [0, 1], or leave it empty"
        )
        table[column] = values
        outside = (values < 0) | (values > 1)
        _refuse_rows(table, outside, source, column, "a probability lies in [0, 1] (empty/NaN where unknown)")
    twice = table.duplicated(ITEM_KEY, keep=False)
    if twice.any():
        first = table[twice].iloc[0]
        raise HeadcastError(
            f"{source}: {int(twice.sum())} rows repeat a (checkpoint, benchmark, item), first "
            f"{first['checkpoint']}, {first['benchmark']}, item {first['item']}; keep one row per item "
            "(are two runs of one checkpoint mixed?)"
        )
    return table[ITEM_COLUMNS]


def _refuse_rows(table: pd.DataFrame, bad: pd.Series, source: Path, column: str, fix: str) -> None:
    """Name the first row of `table` flagged `bad` (1-based; a JSONL row is its line) and its value."""
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        first, value = table.iloc[row], table[column].tolist()[row]  # tolist: a plain Python value
        raise HeadcastError(
            f"{source}: row {row + 1} ({first['checkpoint']}, {first['benchmark']}, item {first['item']}) "
            f"has {column}={value!r}; {fix}"
        )


def check_items_match_scores(items: pd.DataFrame, scores: pd.DataFrame) -> None:
    """Refuse per-item results (`read_items`) that are not the items behind `scores` (`read_scores`).

    Only the benchmarks the items cover are compared: a score table may hold more benchmarks.
    """
    accuracy = items.groupby(SCORE_KEY)["correct"].mean() * 100
    score = scores[scores["benchmark"].isin(items["benchmark"])].groupby(SCORE_KEY)["score"].mean()
    for pairs, problem in (
        (accuracy.index.difference(score.index), "have per-item results but no score"),
        (score.index.difference(accuracy.index), "have scores but no per-item results"),
    ):
        if len(pairs):
            raise HeadcastError(
                f"{len(pairs)} (checkpoint, benchmark) pair(s) {problem}: "
                f"{listing([f'{c} on {b}' for c, b in pairs])}; pass the items and scores of one run"
            )
    gap = (accuracy - score).abs()
    off = gap.index[gap > SCORE_TOLERANCE]
    if len(off):
        checkpoint, benchmark = off[0]
        raise HeadcastError(
            f"{checkpoint} on {benchmark}: the per-item results give {accuracy[off[0]]:.2f}% correct but the "
            f"score is {score[off[0]]:.2f}; the per-item table and the scores come from different runs"
        )
