"""Reading benchmark scores and per-item results: headcast's own files, lmms-eval folders
(`predictor.lmms_eval`) and VLMEvalKit folders (`predictor.vlmevalkit`), one reader each; all come out
as `predictor.score_tables`' checked tables.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError
from headcast.predictor.lmms_eval import read_lmms_eval, read_lmms_eval_items
from headcast.predictor.score_tables import (
    SCORE_TABLE_COLUMNS,
    checked_counts,
    checked_items,
    without_duplicates,
)
from headcast.predictor.vlmevalkit import is_vlmevalkit_folder, read_vlmevalkit, read_vlmevalkit_items
from headcast.schema import ITEM_KEY


def read_scores(path: str | Path, allow_partial: bool = False, keep_latest: bool = False) -> pd.DataFrame:
    """A score CSV (`checkpoint, benchmark, score[, n]`), or a folder of lmms-eval `results.json` files.

    Scores are percentages. `allow_partial` and `keep_latest` apply to lmms-eval folders (`read_lmms_eval`).
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path: Python 3.11's Path.is_dir raises on a name too long to exist
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
    return without_duplicates(table[SCORE_TABLE_COLUMNS].drop_duplicates(), keep_latest=False)


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV whose rows all have the header's fields: a longer row is an error, not a shifted index."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(path, index_col=False, **options)


def read_items(path: str | Path, allow_partial: bool = False, keep_latest: bool = False) -> pd.DataFrame:
    """Per-item results (`ITEM_COLUMNS`) from a Parquet/CSV table or a folder of lmms-eval sample logs.

    The table is what `extract.evaluate.write_items` writes; `answer`, `prob` and `confidence` may be
    absent (then "" and NaN), as in lmms-eval logs, which carry no probabilities.
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path: Python 3.11's Path.is_dir raises on a name too long to exist
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
    return checked_items(table, path)
