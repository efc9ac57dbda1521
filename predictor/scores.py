"""Benchmark score tables and per-item results: headcast's own files and lmms-eval output, one format each.

Scores: `checkpoint, benchmark, score, n, harness, harness_version` with `score` in percent.
Per-item results (the ground truth item-level predictors learn from): `ITEM_COLUMNS`, `correct` 0/1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from extract.errors import HeadcastError
from predictor.dataset import _names

SCORE_COLUMNS = ["checkpoint", "benchmark", "score", "n", "harness", "harness_version"]
ITEM_COLUMNS = ["checkpoint", "benchmark", "item", "correct", "answer", "prob", "confidence"]
ITEM_KEY = ["checkpoint", "benchmark", "item"]
# Percent points an item accuracy may differ from its score: a score kept as a fraction rounded to 2
# decimals (lmms-eval's tables) is off by up to 0.5 points.
SCORE_TOLERANCE = 0.51
_TRUTH = {"1": 1, "1.0": 1, "true": 1, "0": 0, "0.0": 0, "false": 0}


def read_scores(path: str | Path) -> pd.DataFrame:
    """A score CSV (`checkpoint, benchmark, score[, n]`), or a folder of lmms-eval `results.json` files."""
    path = Path(path)
    if path.is_dir():
        return read_lmms_eval(path)
    if not path.is_file():
        raise HeadcastError(f"score table {path} does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise HeadcastError(f"{path} is not a readable CSV ({str(err).splitlines()[0]})") from None
    missing = {"checkpoint", "benchmark", "score"} - set(table.columns)
    if missing:
        raise HeadcastError(
            f"{path} lacks column(s) {', '.join(sorted(missing))}; need checkpoint, benchmark, score"
        )
    if table.empty:
        raise HeadcastError(f"{path} has no rows")
    table["score"] = pd.to_numeric(table["score"], errors="coerce")
    if table["score"].isna().any():
        row = int(table.index[table["score"].isna()][0]) + 2
        raise HeadcastError(f"{path}:{row}: score is not a number")
    table = table.assign(
        n=table.get("n", pd.NA),
        harness=table.get("harness", "headcast"),
        harness_version=table.get("harness_version", ""),
    )
    table["checkpoint"] = table["checkpoint"].astype(str)
    return table[SCORE_COLUMNS]


def _headline_metric(metrics: dict) -> tuple[str, float] | None:
    """The task's main number: the first accuracy/score-like metric that is not a standard error."""
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and "stderr" not in k}
    for hint in ("acc", "score", "exact_match", "f1"):
        for key, value in numeric.items():
            if hint in key:
                return key, float(value)
    return next(iter(numeric.items()), None)


def _lmms_reports(folder: Path) -> dict[Path, dict]:
    """Every lmms-eval report below `folder` (a `*results*.json` with a 'results' section), by path."""
    reports = {}
    for file in sorted(folder.rglob("*results*.json")):
        try:
            report = json.loads(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise HeadcastError(
                f"{file} is not UTF-8 text; lmms-eval writes UTF-8, so it is damaged"
            ) from None
        except json.JSONDecodeError as err:
            raise HeadcastError(f"{file} is not valid JSON ({err.msg})") from None
        if isinstance(report, dict) and "results" in report:
            reports[file] = report
    return reports


def _checkpoint_of(report: dict, file: Path) -> str:
    """The run's `pretrained=` model (as given to lmms-eval), else the report's folder name."""
    model_args = str((report.get("config") or {}).get("model_args", ""))
    pretrained = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part).get("pretrained")
    return pretrained or file.parent.name


def read_lmms_eval(folder: Path) -> pd.DataFrame:
    """Scores from lmms-eval `results.json` / `*_results.json` files below `folder`."""
    rows = []
    for file, report in _lmms_reports(folder).items():
        checkpoint = _checkpoint_of(report, file)
        version = str(
            report.get("lmms_eval_version") or (report.get("config") or {}).get("lmms_eval_version", "")
        )
        samples = report.get("n-samples") or {}
        for task, metrics in report["results"].items():
            headline = _headline_metric(metrics)
            if headline is None:
                continue
            _, value = headline
            n = (samples.get(task) or {}).get("effective")
            rows.append([checkpoint, task, value * 100 if value <= 1 else value, n, "lmms-eval", version])
    if not rows:
        raise HeadcastError(f"{folder} holds no lmms-eval results.json with a 'results' section")
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def read_items(path: str | Path) -> pd.DataFrame:
    """Per-item results (`ITEM_COLUMNS`) from a Parquet/CSV table or a folder of lmms-eval sample logs.

    The table is what `experiments.evaluate.write_items` writes; `answer`, `prob` and `confidence` may be
    absent (then "" and NaN), as in lmms-eval logs, which carry no probabilities.
    """
    path = Path(path)
    if path.is_dir():
        return read_lmms_eval_items(path)
    if not path.is_file():
        raise HeadcastError(f"per-item table {path} does not exist")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            table = pd.read_parquet(path)
        else:  # ids and answers stay text ("NA", "None" and "007" are answers too)
            table = pd.read_csv(
                path,
                dtype=dict.fromkeys([*ITEM_KEY, "answer"], str),
                keep_default_na=False,
                na_values={column: ["", "nan", "NaN"] for column in ("prob", "confidence")},
            )
    except UnicodeDecodeError:
        raise HeadcastError(f"{path} is not UTF-8 text; save the per-item CSV as UTF-8") from None
    except (OSError, ValueError) as err:  # pyarrow's and pandas' parse errors are ValueErrors
        kind = "Parquet file" if parquet else "CSV"
        raise HeadcastError(f"{path} is not a readable {kind} ({str(err).splitlines()[0]})") from None
    return _checked_items(table, path)


def read_lmms_eval_items(folder: Path) -> pd.DataFrame:
    """Per-item results from the `<date>_samples_<task>.jsonl` logs of `lmms-eval --log_samples`.

    A partial (`--limit`) run anywhere below `folder` refuses the folder: its scores would also enter
    `read_scores` of the same folder, and its items are not the benchmark.
    """
    reports = _lmms_reports(folder)
    for file, report in reports.items():
        limit = (report.get("config") or {}).get("limit")
        if limit is not None:
            raise HeadcastError(
                f"{file} is a partial run (limit {limit}): a --limit run covers only part of the benchmark; "
                "rerun lmms-eval without --limit"
            )
    logs = sorted(folder.rglob("*_samples_*.jsonl"))
    if not logs:
        raise HeadcastError(
            f"{folder} holds no lmms-eval *_samples_*.jsonl logs; run lmms-eval with --log_samples"
        )
    tables = [_checked_items(_lmms_samples(log, reports), log) for log in logs]
    return _checked_items(pd.concat(tables, ignore_index=True), folder)  # no item twice across logs


def _lmms_samples(log: Path, reports: dict[Path, dict]) -> pd.DataFrame:
    """One samples log as per-item rows; checkpoint, task and metric come from its run's results.json."""
    prefix, task = log.stem.split("_samples_", 1)
    results = log.with_name(f"{prefix}_results.json")
    report = reports.get(results)
    if report is None:
        raise HeadcastError(
            f"{log} has no {results.name} beside it; keep the results.json of its run with it"
        )
    if task not in report["results"]:
        raise HeadcastError(
            f"{log}: task {task!r} is not among the tasks of {results.name} ({_names(report['results'])}); "
            "keep each samples log beside its own run's results.json"
        )
    headline = _headline_metric(report["results"][task])
    if headline is None:
        raise HeadcastError(f"{results}: task {task!r} reports no numeric metric to take as correctness")
    metric = headline[0].split(",")[0]  # `exact_match,none` is the metric, then the filter
    checkpoint = _checkpoint_of(report, results)
    rows = []
    for line, record in _jsonl(log):
        if not isinstance(record, dict) or not {"doc_id", metric} <= record.keys():
            raise HeadcastError(f"{log}:{line}: a sample needs 'doc_id' and the task's metric {metric!r}")
        answer = record.get("filtered_resps")
        while isinstance(answer, list) and answer:  # a string in lmms-eval 0.7, nested lists before
            answer = answer[0]
        rows.append(
            {
                "checkpoint": checkpoint,
                "benchmark": task,
                "item": str(record["doc_id"]),
                "correct": record[metric],
                "answer": answer if isinstance(answer, str) else "",
            }
        )
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


def _jsonl(path: Path) -> list[tuple[int, object]]:
    """(line number, record) of each non-blank line."""
    records = []
    try:
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, 1):
                if text.strip():
                    records.append((line, json.loads(text)))
    except UnicodeDecodeError:
        raise HeadcastError(f"{path} is not UTF-8 text; lmms-eval writes UTF-8, so it is damaged") from None
    except json.JSONDecodeError as err:
        raise HeadcastError(f"{path}:{line} is not valid JSON ({err.msg})") from None
    return records


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
