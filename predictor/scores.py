"""Benchmark score tables: headcast's long CSV and lmms-eval result folders, one long format.

Long format: `checkpoint, benchmark, score, n, harness, harness_version` with `score` in percent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from extract.errors import HeadcastError

SCORE_COLUMNS = ["checkpoint", "benchmark", "score", "n", "harness", "harness_version"]


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


def read_lmms_eval(folder: Path) -> pd.DataFrame:
    """Scores from lmms-eval `results.json` / `*_results.json` files below `folder`."""
    rows = []
    files = sorted(folder.rglob("*results*.json"))
    for file in files:
        try:
            report = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise HeadcastError(f"{file} is not valid JSON ({err.msg})") from None
        if not isinstance(report, dict) or "results" not in report:
            continue
        model_args = str((report.get("config") or {}).get("model_args", ""))
        pretrained = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part).get(
            "pretrained"
        )
        checkpoint = pretrained or file.parent.name
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
