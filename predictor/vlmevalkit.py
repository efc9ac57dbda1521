"""VLMEvalKit results as its `run.py` writes them: scores and per-item truth, with provenance.

VLMEvalKit writes, per model, `<work_dir>/<model>/<model>_<dataset>.xlsx` (or `.tsv`): the predictions,
one row per item (`index`, `question`, `answer`, `prediction`, ...). Its evaluation then writes, for
multiple-choice datasets (`ImageMCQDataset.evaluate`), `<model>_<dataset>_<judge>_result.xlsx` with the
per-item verdict `hit` and `<model>_<dataset>_acc.csv` with one row per `split` and the `Overall`
accuracy; for yes/no datasets (`ImageYORNDataset.evaluate`), `<model>_<dataset>_auxmatch.xlsx` with the
per-item `score` and `<model>_<dataset>_score.csv`. headcast reads these with pandas (openpyxl for
`.xlsx`). The checkpoint is the model folder's name; the benchmark is the dataset (`<dataset>_<split>`
where a score table holds several splits). The rules are lmms-eval's: a partial run (items without a
prediction) is refused unless `allow_partial`, and a model and dataset found twice unless `keep_latest`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError
from headcast.predictor.lmms_eval import _in_percent
from headcast.predictor.score_tables import SCORE_TABLE_COLUMNS, checked_items, without_duplicates
from headcast.schema import ITEM_COLUMNS

HARNESS = "VLMEvalKit"
VERSION = "unknown (VLMEvalKit writes no version into its result files)"
SCORE_SUFFIXES = ("_acc", "_score")  # multiple choice, yes/no
ITEM_SUFFIXES = {"_auxmatch": "score", "_result": "hit"}  # the per-item verdict column of each
JUDGES = ("exact_matching", "chatgpt-0125", "gpt-4-0125", "openai", "gpt4")
TABLE_TYPES = (".xlsx", ".tsv", ".csv")


def is_vlmevalkit_folder(folder: str | Path) -> bool:
    """Whether `folder` holds VLMEvalKit score tables or per-item results (and so is read as such)."""
    return any(_kind(file) is not None for file in _tables(Path(folder)))


def _tables(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.suffix in TABLE_TYPES and f.is_file())


def _kind(file: Path) -> tuple[str, str] | None:
    """(`table`, or the per-item verdict column; the dataset) of a file named as VLMEvalKit names one."""
    model = file.parent.name
    if not file.stem.startswith(f"{model}_"):
        return None
    rest = file.stem[len(model) + 1 :]
    for suffix in SCORE_SUFFIXES:
        if rest.endswith(suffix) and file.suffix == ".csv":
            return "table", rest.removesuffix(suffix)
    if rest.endswith("_auxmatch") and file.suffix != ".csv":
        return ITEM_SUFFIXES["_auxmatch"], rest.removesuffix("_auxmatch")
    if rest.endswith("_result") and file.suffix != ".csv":
        rest = rest.removesuffix("_result")
        judge = next((j for j in JUDGES if rest.endswith(f"_{j}")), rest.rsplit("_", 1)[-1])
        return ITEM_SUFFIXES["_result"], rest.removesuffix(f"_{judge}")
    return None


def _read(file: Path) -> pd.DataFrame:
    """A VLMEvalKit table: `.xlsx` through openpyxl, `.tsv`/`.csv` as text."""
    try:
        if file.suffix == ".xlsx":
            return pd.read_excel(file, engine="openpyxl")
        return pd.read_csv(file, sep="\t" if file.suffix == ".tsv" else ",")
    except ImportError:
        raise HeadcastError(
            f"{file}: reading .xlsx needs openpyxl; pip install 'headcast[vlmevalkit]'"
        ) from None
    except Exception as err:  # a damaged spreadsheet raises from zipfile, openpyxl or pandas
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise HeadcastError(f"{file} is not a readable VLMEvalKit table ({first_line})") from None


def _date(file: Path) -> str:
    return dt.datetime.fromtimestamp(file.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")


def _predictions(file: Path, dataset: str) -> Path | None:
    """The predictions file VLMEvalKit wrote before evaluating (`<model>_<dataset>.xlsx|.tsv`)."""
    for suffix in (".xlsx", ".tsv"):
        candidate = file.with_name(f"{file.parent.name}_{dataset}{suffix}")
        if candidate.is_file():
            return candidate
    return None


def _refuse_partial(file: Path, dataset: str, allow_partial: bool) -> bool:
    """Whether the run behind `file` is partial (items without a prediction); refused unless allowed."""
    predictions = _predictions(file, dataset)
    if predictions is None:
        return False
    table = _read(predictions)
    if "prediction" not in table.columns:
        raise HeadcastError(f"{predictions} has no 'prediction' column; pass VLMEvalKit's own output")
    missing = table["prediction"].isna() | (table["prediction"].astype(str).str.strip() == "")
    if missing.any() and not allow_partial:
        raise HeadcastError(
            f"{predictions} is a partial run: {int(missing.sum())} of {len(table)} item(s) have no "
            "prediction; rerun VLMEvalKit to the end, or pass --allow-partial to use it"
        )
    return bool(missing.any())


def read_vlmevalkit(
    folder: str | Path, allow_partial: bool = False, keep_latest: bool = False
) -> pd.DataFrame:
    """Scores (`SCORE_TABLE_COLUMNS`, percent) from the `_acc.csv` / `_score.csv` tables below `folder`."""
    folder, rows = Path(folder), []
    for file in _tables(folder):
        kind = _kind(file)
        if kind is None or kind[0] != "table":
            continue
        dataset = kind[1]
        partial = _refuse_partial(file, dataset, allow_partial)
        table = _read(file)
        if "Overall" not in table.columns:
            raise HeadcastError(f"{file} has no 'Overall' column; headcast reads VLMEvalKit's overall score")
        splits = table["split"].astype(str).tolist() if "split" in table.columns else ["none"]
        for split, value in zip(splits, table["Overall"], strict=True):
            benchmark = dataset if len(splits) == 1 else f"{dataset}_{split}"
            row = {"checkpoint": file.parent.name, "benchmark": benchmark, "score": float(value), "n": None}
            row |= {"harness": HARNESS, "harness_version": VERSION, "metric": "Overall"}
            row |= {"limit": "partial" if partial else None, "date": _date(file)}
            rows.append(row | {"source": file.relative_to(folder).as_posix()})
    if not rows:
        raise HeadcastError(f"{folder} holds no VLMEvalKit <model>_<dataset>_acc.csv or _score.csv tables")
    table = _in_percent(pd.DataFrame(rows, columns=SCORE_TABLE_COLUMNS))
    return without_duplicates(table, keep_latest)


def read_vlmevalkit_items(
    folder: str | Path, allow_partial: bool = False, keep_latest: bool = False
) -> pd.DataFrame:
    """Per-item truth (`ITEM_COLUMNS`) from the `_result` / `_auxmatch` tables below `folder`."""
    folder, tables = Path(folder), dict[tuple[str, str], tuple[pd.DataFrame, Path]]()
    for file in sorted(_tables(folder), key=lambda f: (_date(f), str(f))):
        kind = _kind(file)
        if kind is None or kind[0] == "table":
            continue
        column, dataset = kind
        _refuse_partial(file, dataset, allow_partial)
        table = _read(file)
        if not {"index", column} <= set(table.columns):
            raise HeadcastError(
                f"{file} lacks 'index' or '{column}'; pass VLMEvalKit's own evaluation output"
            )
        rows = pd.DataFrame(
            {
                "checkpoint": file.parent.name,
                "benchmark": dataset,
                "item": table["index"].astype(str),
                "correct": table[column].map(lambda v: str(v).strip().lower()),
                "answer": table.get("prediction", pd.Series("", index=table.index)).fillna("").astype(str),
            }
        )
        key = (file.parent.name, dataset)
        if key in tables and not keep_latest:
            raise HeadcastError(
                f"{file.parent.name} on {dataset} has per-item results twice (in {tables[key][1]}, then in "
                f"{file.relative_to(folder)}); keep one run, or pass --keep-latest to use the most recent"
            )
        tables[key] = (checked_items(rows.reindex(columns=ITEM_COLUMNS), file), file.relative_to(folder))
    if not tables:
        raise HeadcastError(
            f"{folder} holds no VLMEvalKit <model>_<dataset>_<judge>_result or _auxmatch files"
        )
    return checked_items(pd.concat([t for t, _ in tables.values()], ignore_index=True), folder)
