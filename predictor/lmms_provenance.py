"""What an lmms-eval run says about how its per-item truth was made, per task: the anchors' contract.

Read from the `results.json` of the runs whose `--log_samples` logs the truth comes from: lmms-eval's
task hash, the documents' hashes the logs carry, the metric and filter, the prompt settings (chat
template, system instruction) and the harness version. Anchors answered under other prompt settings
would not mean what the truth meant, so settings headcast does not reproduce are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from headcast.errors import HeadcastError
from headcast.predictor.lmms_eval import _config, _harness_version, _headline_metric, _lmms_reports


def task_provenance(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Task -> `{task_hash, doc_hashes, metric, chat_template_sha, system_instruction_sha, harness_version,
    model, backend}`.

    A task run under two different settings in the folder is refused: its truth has no single meaning.
    """
    folder = Path(folder)
    provenance: dict[str, dict[str, Any]] = {}
    for file, report in _lmms_reports(folder).items():
        for task, metrics in report["results"].items():
            headline = _headline_metric(metrics) if isinstance(metrics, dict) else None
            if headline is None:
                continue
            record = {
                "task_hash": (report.get("task_hashes") or {}).get(task),
                "doc_hashes": _doc_hashes(file, task),
                "metric": headline[0],
                "chat_template_sha": report.get("chat_template_sha"),
                "system_instruction_sha": report.get("system_instruction_sha"),
                "harness_version": _harness_version(report),
                "model": _config(report).get("model"),
                "backend": _backend(report),
            }
            _refuse_other_prompts(record, file, task)
            earlier = provenance.setdefault(task, record)
            if {k: v for k, v in earlier.items() if k != "doc_hashes"} != {
                k: v for k, v in record.items() if k != "doc_hashes"
            }:
                raise HeadcastError(
                    f"{file}: task {task!r} was run under other settings than in another report of the "
                    "folder (task hash, metric, prompt or harness version); keep one configuration per task"
                )
    return provenance


def _backend(report: dict[str, Any]) -> str | None:
    """`chat` or `simple`: which implementation of the model answered (`--force_simple` gives simple)."""
    described = _config(report).get("model_backend")  # e.g. "lmms_eval.models.chat.llava_hf.LlavaHf (chat)"
    if not isinstance(described, str) or not described.endswith(")") or "(" not in described:
        return None  # lmms-eval before 0.7 does not say
    return described.rsplit("(", 1)[1].rstrip(")")


def _doc_hashes(results: Path, task: str) -> list[str]:
    """The distinct `doc_hash` values of the task's samples log beside `results` (none without one)."""
    log = results.with_name(results.name.replace("_results.json", f"_samples_{task}.jsonl"))
    if not log.is_file():
        return []
    hashes = set()
    for text in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(text) if text.strip() else None
        if isinstance(record, dict) and isinstance(record.get("doc_hash"), str):
            hashes.add(record["doc_hash"])
    return sorted(hashes)


def _refuse_other_prompts(record: dict[str, Any], file: Path, task: str) -> None:
    """headcast answers anchors as lmms-eval's chat llava_hf does: its own template, no system text."""
    if record["model"] not in (None, "llava_hf"):
        raise HeadcastError(
            f"{file}: task {task!r} was run with lmms-eval model {record['model']!r}; headcast answers "
            "anchors as lmms-eval's llava_hf does, so the truth must come from --model llava_hf"
        )
    for setting in ("chat_template_sha", "system_instruction_sha"):
        if record[setting] is not None:
            name = setting.removesuffix("_sha").replace("_", " ")
            raise HeadcastError(
                f"{file}: task {task!r} was run with a custom {name}; headcast answers anchors with the "
                f"model's own chat template and no system instruction, so this truth cannot anchor them"
            )
