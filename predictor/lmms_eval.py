"""lmms-eval output as it really is: `results.json` reports and `--log_samples` logs, with provenance.

Reports are found anywhere below a folder; each score keeps its task, metric, harness version (or why it
is unknown), partial-run limit, date and source file. Partial (`--limit`) runs and reruns are refused
unless asked for, since averaging them in silently gives a number no run measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError, listing
from headcast.predictor.score_tables import (
    SCORE_TABLE_COLUMNS,
    checked_counts,
    checked_items,
    without_duplicates,
)
from headcast.schema import ITEM_COLUMNS


def _headline_metric(metrics: dict) -> tuple[str, float] | None:
    """The task's main number: the first accuracy/score-like metric that is not a standard error."""
    numeric = {
        key: value
        for key, value in metrics.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)  # JSON's NaN is no score
        and "stderr" not in key
    }
    for hint in ("acc", "score", "exact_match", "f1"):
        for key, value in numeric.items():
            if hint in key:
                return key, float(value)
    return next(iter(numeric.items()), None)


def _lmms_reports(folder: Path) -> dict[Path, dict]:
    """Every lmms-eval report below `folder` (a `*results*.json` with a 'results' section), by path."""
    reports = {}
    for file in sorted(folder.rglob("*results*.json")):
        if not file.is_file():  # a folder so named is no report
            continue
        try:
            report = json.loads(file.read_text(encoding="utf-8"))
        except READ_ERRORS as err:
            raise _unreadable(err, file, "report") from None
        if isinstance(report, dict) and isinstance(report.get("results"), dict):
            reports[file] = report
    return reports


def _checkpoint_of(report: dict, file: Path) -> str:
    """The run's `pretrained=` model (as given to lmms-eval), else the report's folder name."""
    model_args = str(_config(report).get("model_args", ""))
    pretrained = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part).get("pretrained")
    return pretrained or file.parent.name


def _config(report: dict) -> dict:
    return _as_dict(report.get("config"))


def _as_dict(section: object) -> dict:
    """`section` when it is a JSON object, else an empty one: reports omit or null their optional parts."""
    return section if isinstance(section, dict) else {}


def _harness_version(report: dict) -> str:
    """lmms-eval's version, or why it is unknown (a pip install writes 'unknown@unknown')."""
    version = str(report.get("lmms_eval_version") or _config(report).get("lmms_eval_version") or "")
    if not version or version.startswith("unknown"):
        said = repr(version) if version else "nothing"
        return (
            f"unknown (the report says {said}; lmms-eval reads its version from git, a pip install has none)"
        )
    return version


def read_lmms_eval(folder: Path, allow_partial: bool = False, keep_latest: bool = False) -> pd.DataFrame:
    """Scores from lmms-eval `results.json` / `*_results.json` files below `folder`, with provenance.

    A partial (`--limit`) run is refused unless `allow_partial`, and then used only where no full run of
    the checkpoint and task exists. A checkpoint and task reported twice is refused unless `keep_latest`.
    A metric's scale is decided over all its values: a fraction when every value lies in [0, 1].
    """
    rows = []
    for file, report in _lmms_reports(folder).items():
        limit = _config(report).get("limit")
        samples = _as_dict(report.get("n-samples"))
        for task, metrics in report["results"].items():
            headline = _headline_metric(metrics) if isinstance(metrics, dict) else None
            if headline is None:
                continue
            metric, value = headline
            counts = _as_dict(samples.get(task))
            rows.append(
                {
                    "checkpoint": _checkpoint_of(report, file),
                    "benchmark": str(task),
                    "score": value,
                    "n": counts.get("effective"),
                    "harness": "lmms-eval",
                    "harness_version": _harness_version(report),
                    "metric": metric,
                    "limit": limit,
                    "date": str(report.get("date") or ""),
                    "source": file.relative_to(folder).as_posix(),
                }
            )
    if not rows:
        raise HeadcastError(
            f"{folder} holds no lmms-eval results.json with a 'results' section; "
            "pass the --output_path folder of an lmms-eval run"
        )
    table = _in_percent(pd.DataFrame(rows, columns=SCORE_TABLE_COLUMNS))
    table = checked_counts(table, lambda row: f"{folder / table['source'][row]} (n-samples)")
    table = _full_runs_first(table, allow_partial)
    return without_duplicates(table, keep_latest)


def _in_percent(table: pd.DataFrame) -> pd.DataFrame:
    """Scores in percent, the scale decided per (task, metric): fractions when all values are in [0, 1]."""
    for (task, metric), scores in table.groupby(["benchmark", "metric"])["score"]:
        if scores.between(0, 1).all():
            table.loc[scores.index, "score"] = scores * 100
        elif not scores.between(0, 100).all():
            raise HeadcastError(
                f"task {task!r} reports {metric!r} from {scores.min():g} to {scores.max():g}, not a fraction "
                "or a percentage; headcast predicts percentages: leave this task out of the results folder"
            )
    return table


def _full_runs_first(table: pd.DataFrame, allow_partial: bool) -> pd.DataFrame:
    """Drop partial runs where a full run of the checkpoint and task exists; refuse them unless allowed."""
    partial = table["limit"].notna()
    if not partial.any():
        return table
    if not allow_partial:
        first = table[partial].iloc[0]
        raise HeadcastError(
            f"{partial.sum()} score(s) come from partial runs (--limit), first {first['source']} "
            f"(limit {first['limit']}); remove them, or pass --allow-partial to use them where no full run "
            "exists"
        )
    full = table[~partial].set_index(["checkpoint", "benchmark"]).index
    covered = table.set_index(["checkpoint", "benchmark"]).index.isin(full)
    return table[~partial.to_numpy() | ~covered].reset_index(drop=True)


def read_lmms_eval_items(
    folder: Path, allow_partial: bool = False, keep_latest: bool = False
) -> pd.DataFrame:
    """Per-item results from the `<date>_samples_<task>.jsonl` logs of `lmms-eval --log_samples`.

    A partial (`--limit`) run's items are not the benchmark: it refuses the folder, or with
    `allow_partial` (as for its scores) its logs are left out. Logs of one checkpoint and task from two
    runs are refused unless `keep_latest`, which reads the latest run's.
    """
    reports = _lmms_reports(folder)
    partial = {file for file, report in reports.items() if _config(report).get("limit") is not None}
    if partial and not allow_partial:
        file = min(partial)
        raise HeadcastError(
            f"{file} is a partial run (limit {_config(reports[file])['limit']}): a --limit run covers only "
            "part of the benchmark; rerun lmms-eval without --limit, or pass --allow-partial to leave it out"
        )
    logs = [
        log
        for log in sorted(folder.rglob("*_samples_*.jsonl"))
        if log.is_file() and _results_of(log) not in partial
    ]
    if not logs:
        raise HeadcastError(
            f"{folder} holds no lmms-eval *_samples_*.jsonl logs of full runs; "
            "run lmms-eval with --log_samples"
        )
    logs.sort(key=lambda log: (str(reports.get(_results_of(log), {}).get("date") or ""), str(log)))
    tables = [checked_items(_lmms_samples(log, reports), log) for log in logs]
    if keep_latest:  # a later run of a checkpoint and task replaces the earlier ones
        tables = list({(t["checkpoint"].iloc[0], t["benchmark"].iloc[0]): t for t in tables}.values())
    return checked_items(pd.concat(tables, ignore_index=True), folder)  # no item twice across logs


def _results_of(log: Path) -> Path:
    """The `results.json` lmms-eval writes beside a samples log of the same run."""
    return log.with_name(f"{log.stem.split('_samples_', 1)[0]}_results.json")


def _lmms_samples(log: Path, reports: dict[Path, dict]) -> pd.DataFrame:
    """One samples log as per-item rows; checkpoint, task and metric come from its run's results.json."""
    task = log.stem.split("_samples_", 1)[1]
    results = _results_of(log)
    report = reports.get(results)
    if report is None:
        raise HeadcastError(
            f"{log} has no {results.name} beside it; keep the results.json of its run with it"
        )
    if task not in report["results"]:
        raise HeadcastError(
            f"{log}: task {task!r} is not among the tasks of {results.name} ({listing(report['results'])}); "
            "keep each samples log beside its own run's results.json"
        )
    metrics = report["results"][task]
    headline = _headline_metric(metrics) if isinstance(metrics, dict) else None
    if headline is None:
        raise HeadcastError(
            f"{results}: task {task!r} reports no numeric metric to take as correctness; "
            "leave the task's samples log out of the folder"
        )
    metric = headline[0].split(",")[0]  # `exact_match,none` is the metric, then the filter
    checkpoint = _checkpoint_of(report, results)
    rows = []
    for line, record in _jsonl(log):
        if not isinstance(record, dict) or not {"doc_id", metric} <= record.keys():
            raise HeadcastError(
                f"{log}:{line}: a sample needs 'doc_id' and the task's metric {metric!r}; "
                "pass the logs of lmms-eval --log_samples as written"
            )
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
    records, line = [], None
    try:
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, 1):
                if text.strip():
                    records.append((line, json.loads(text)))
    except READ_ERRORS as err:
        raise _unreadable(err, path, "sample", line) from None
    return records


READ_ERRORS = (UnicodeDecodeError, json.JSONDecodeError, RecursionError, OSError)


def _unreadable(err: Exception, path: Path, what: str, line: int | None = None) -> HeadcastError:
    """One line for an lmms-eval file that cannot be read as one (`what`: report or sample)."""
    where = path if line is None else f"{path}:{line}"
    if isinstance(err, UnicodeDecodeError):
        return HeadcastError(f"{path} is not UTF-8 text; lmms-eval writes UTF-8, so it is damaged")
    if isinstance(err, json.JSONDecodeError):
        return HeadcastError(f"{where} is not valid JSON ({err.msg})")
    if isinstance(err, RecursionError):
        return HeadcastError(
            f"{where} is nested too deeply to be an lmms-eval {what}; pass lmms-eval's own output"
        )
    return HeadcastError(f"cannot read {path} ({getattr(err, 'strerror', None) or err})")
