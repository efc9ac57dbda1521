"""Benchmark score tables and per-item results: headcast's own files, and lmms-eval folders through
`predictor.lmms_eval` (VLMEvalKit's through `predictor.vlmevalkit`), one format each.

Scores: `SCORE_TABLE_COLUMNS`, the core's `SCORE_COLUMNS` (score in percent) then its provenance;
one score per checkpoint and benchmark.
Per-item results (the ground truth item-level predictors learn from): `ITEM_COLUMNS`, `correct` 0/1.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError
from headcast.predictor.dataset import _names
from headcast.schema import SCORE_COLUMNS

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
ITEM_COLUMNS = ["checkpoint", "benchmark", "item", "correct", "answer", "prob", "confidence"]
ITEM_KEY = ["checkpoint", "benchmark", "item"]
# Percent points an item accuracy may differ from its score: a score kept as a fraction rounded to 2
# decimals (lmms-eval's tables) is off by up to 0.5 points.
SCORE_TOLERANCE = 0.51
_TRUTH = {"1": 1, "1.0": 1, "true": 1, "0": 0, "0.0": 0, "false": 0}


def read_scores(path: str | Path, allow_partial: bool = False, keep_latest: bool = False) -> pd.DataFrame:
    """A score CSV (`checkpoint, benchmark, score[, n]`), or a folder of lmms-eval `results.json` files.

    Scores are percentages. `allow_partial` and `keep_latest` apply to lmms-eval folders (`read_lmms_eval`).
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path: Python 3.11's Path.is_dir raises on a name too long to exist
        from headcast.predictor.lmms_eval import read_lmms_eval
        from headcast.predictor.vlmevalkit import is_vlmevalkit_folder, read_vlmevalkit

        if is_vlmevalkit_folder(path):
            return read_vlmevalkit(path, allow_partial, keep_latest)
        return read_lmms_eval(path, allow_partial, keep_latest)
    if not os.path.isfile(path):
        raise HeadcastError(f"score table {path} does not exist")
    try:
        table = _read_csv(path, dtype={"checkpoint": str, "benchmark": str})
    except UnicodeDecodeError:
        raise HeadcastError(f"{path} is not UTF-8 text; save the score CSV as UTF-8") from None
    except (ValueError, pd.errors.ParserWarning) as err:  # pandas' parse errors are ValueErrors
        raise HeadcastError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = {"checkpoint", "benchmark", "score"} - set(table.columns)
    if missing:
        raise HeadcastError(
            f"{path} lacks column(s) {', '.join(sorted(missing))}; need checkpoint, benchmark, score"
        )
    if table.empty:
        raise HeadcastError(f"{path} has no rows")
    for column in ("checkpoint", "benchmark"):
        if table[column].isna().any():
            row = int(table.index[table[column].isna()][0]) + 2
            raise HeadcastError(f"{path}:{row}: {column} is empty")
    raw = table["score"].tolist()
    table["score"] = pd.to_numeric(table["score"], errors="coerce")
    for problem, bad in (
        ("is not a number", table["score"].isna()),
        ("is not a percentage; scores are numbers in [0, 100]", ~table["score"].between(0, 100)),
    ):
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise HeadcastError(f"{path}:{row + 2}: score {raw[row]!r} {problem}")
    table = table.assign(
        n=table.get("n", pd.NA),
        harness=table.get("harness", "headcast"),
        harness_version=table.get("harness_version", ""),
        metric=table.get("metric", ""),
        limit=table.get("limit", pd.NA),
        date=table.get("date", ""),
        source=path.name,
    )
    table = checked_counts(table, lambda row: f"{path}:{row + 2}")
    return _without_duplicates(table[SCORE_TABLE_COLUMNS].drop_duplicates(), keep_latest=False)


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


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV whose rows all have the header's fields: a longer row is an error, not a shifted index."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(path, index_col=False, **options)


def _without_duplicates(table: pd.DataFrame, keep_latest: bool) -> pd.DataFrame:
    """One score per checkpoint and benchmark: two different ones are refused, naming where they come from."""
    twice = table.duplicated(["checkpoint", "benchmark"], keep=False)
    if not twice.any():
        return table.reset_index(drop=True)
    if keep_latest:
        latest = table.sort_values(["date", "source"]).drop_duplicates(
            ["checkpoint", "benchmark"], keep="last"
        )
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


def read_items(path: str | Path, allow_partial: bool = False, keep_latest: bool = False) -> pd.DataFrame:
    """Per-item results (`ITEM_COLUMNS`) from a Parquet/CSV table or a folder of lmms-eval sample logs.

    The table is what `extract.evaluate.write_items` writes; `answer`, `prob` and `confidence` may be
    absent (then "" and NaN), as in lmms-eval logs, which carry no probabilities.
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path: Python 3.11's Path.is_dir raises on a name too long to exist
        from headcast.predictor.lmms_eval import read_lmms_eval_items
        from headcast.predictor.vlmevalkit import is_vlmevalkit_folder, read_vlmevalkit_items

        if is_vlmevalkit_folder(path):
            return read_vlmevalkit_items(path, allow_partial, keep_latest)
        return read_lmms_eval_items(path, allow_partial, keep_latest)
    if not os.path.isfile(path):
        raise HeadcastError(f"per-item table {path} does not exist")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            table = pd.read_parquet(path)
        else:  # ids and answers stay text ("NA", "None" and "007" are answers too)
            table = _read_csv(
                path,
                dtype=dict.fromkeys([*ITEM_KEY, "answer"], str),
                keep_default_na=False,
                na_values={column: ["", "nan", "NaN"] for column in ("prob", "confidence")},
            )
    except UnicodeDecodeError:
        raise HeadcastError(f"{path} is not UTF-8 text; save the per-item CSV as UTF-8") from None
    except (OSError, ValueError, pd.errors.ParserWarning) as err:  # pyarrow's and pandas' are ValueErrors
        kind = "Parquet file" if parquet else "CSV"
        raise HeadcastError(f"{path} is not a readable {kind} ({str(err).splitlines()[0]})") from None
    return _checked_items(table, path)


def _checked_items(table: pd.DataFrame, source: Path) -> pd.DataFrame:
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
    key = ["checkpoint", "benchmark"]
    accuracy = items.groupby(key)["correct"].mean() * 100
    score = scores[scores["benchmark"].isin(items["benchmark"])].groupby(key)["score"].mean()
    for pairs, problem in (
        (accuracy.index.difference(score.index), "have per-item results but no score"),
        (score.index.difference(accuracy.index), "have scores but no per-item results"),
    ):
        if len(pairs):
            raise HeadcastError(
                f"{len(pairs)} (checkpoint, benchmark) pair(s) {problem}: "
                f"{_names([f'{c} on {b}' for c, b in pairs])}; pass the items and scores of one run"
            )
    gap = (accuracy - score).abs()
    off = gap.index[gap > SCORE_TOLERANCE]
    if len(off):
        checkpoint, benchmark = off[0]
        raise HeadcastError(
            f"{checkpoint} on {benchmark}: the per-item results give {accuracy[off[0]]:.2f}% correct but the "
            f"score is {score[off[0]]:.2f}; the per-item table and the scores come from different runs"
        )
