"""Anchor items that are lmms-eval documents: written at fit, answered through the task at prediction.

An lmms-eval anchor file is JSONL like headcast's anchor probe file, one anchor a line, but each line
names a document of a task (`task`, `id` = lmms-eval's doc_id) instead of copying it, together with the
task configuration it was chosen under (`task_config`, a digest of the task's YAML, code and documents),
the metric and the harness provenance of the per-item truth. At prediction the tasks are loaded again
through lmms-eval and each anchor is rendered, answered and scored by the task itself
(`extract.harness_answers`); a task whose configuration changed since is refused in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from headcast.errors import HeadcastError
from headcast.extract import answer_task_items, load_tasks
from headcast.files import atomic_output

HARNESS = "lmms-eval"


def is_task_anchor_file(path: str | Path) -> bool:
    """Whether `path` is an lmms-eval anchor file (its first record says `"harness": "lmms-eval"`)."""
    try:
        with Path(path).open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        record = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # the probe reader says what is wrong with it
    return isinstance(record, dict) and record.get("harness") == HARNESS


def write_task_anchors(
    anchors: Mapping[str, Sequence[str]],
    tasks: Mapping[str, Any],
    include_path: str | Path | None,
    provenance: Mapping[str, Mapping[str, Any]],
    out: str | Path,
) -> Path:
    """One line per anchor document, with its task's configuration digest and the truth's provenance."""
    lines = []
    for task_name, doc_ids in anchors.items():
        task = tasks.get(task_name)
        if task is None:
            raise HeadcastError(
                f"the per-item results hold task {task_name!r}, which --tasks does not name; "
                "pass the tasks the results were run on"
            )
        record = dict(provenance.get(task_name, {}))
        logged = record.get("metric")
        if logged is not None and logged != f"{task.metric},{task.filter}":
            raise HeadcastError(
                f"task {task_name!r}: the per-item results score {logged!r} but the task now scores "
                f"'{task.metric},{task.filter}'; rerun lmms-eval or pass the task configuration it ran"
            )
        if record.get("backend") not in (None, task.backend):
            raise HeadcastError(
                f"task {task_name!r}: the per-item results come from lmms-eval's {record['backend']} "
                f"llava_hf, but headcast answers as its {task.backend} one does; rerun lmms-eval without "
                "--force_simple"
            )
        for doc_id in doc_ids:
            task.item(doc_id)  # a doc_id the task lacks is refused here, not at prediction
            line: dict[str, object] = {"id": str(doc_id), "task": task_name, "harness": HARNESS}
            line |= {"include_path": None if include_path is None else str(Path(include_path).resolve())}
            line |= {"task_config": task.config_hash(), "metric": f"{task.metric},{task.filter}"}
            lines.append(json.dumps(line | {"provenance": record}))
    with atomic_output(Path(out)) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(out)


class TaskAnchors:
    """The anchors of an lmms-eval anchor file, with their tasks loaded and checked against it."""

    def __init__(self, records: list[dict], source: str) -> None:
        self.source = source
        self.records = records
        folders = {r.get("include_path") for r in records}
        if len(folders) != 1:
            raise HeadcastError(f"{source} names anchors from several task folders; write it with one fit")
        self.include_path = folders.pop()
        if self.include_path is not None and not os.path.isdir(self.include_path):
            raise HeadcastError(
                f"{source}: the task folder {self.include_path} is gone; the anchors need their task YAMLs"
            )
        self.doc_ids: dict[str, list[str]] = {}
        for record in records:
            self.doc_ids.setdefault(record["task"], []).append(record["id"])
        self._tasks: dict[str, Any] | None = None

    @classmethod
    def read(cls, path: str | Path) -> TaskAnchors:
        records = []
        with Path(path).open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                record = json.loads(text)
                if not isinstance(record, dict) or not {"id", "task", "task_config"} <= record.keys():
                    raise HeadcastError(
                        f"{path}:{number}: an lmms-eval anchor needs id, task and task_config; pass the "
                        "file written by 'headcast fit --anchors-out --tasks'"
                    )
                records.append(record)
        return cls(records, str(path))

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(task, doc_id) of every anchor, as the model's answer columns name them."""
        return [(r["task"], r["id"]) for r in self.records]

    def tasks(self) -> dict[str, Any]:
        """The anchors' tasks through lmms-eval, refused where a task's configuration changed."""
        if self._tasks is None:
            tasks = load_tasks(list(self.doc_ids), self.include_path)
            for record in self.records:
                now = tasks[record["task"]].config_hash()
                if now != record["task_config"]:
                    raise HeadcastError(
                        f"{self.source}: task {record['task']!r} is configured differently from when the "
                        "anchors were chosen (its prompt, generation settings, metric, code or documents "
                        "changed); answer under the same task configuration, or refit"
                    )
            self._tasks = tasks
        return self._tasks

    def answer(self, model: Any, processor: Any, checkpoint: str) -> pd.DataFrame:
        """A loaded model's answers on the anchors: `checkpoint, item, task, correct, prob`."""

        rows = []
        for name, doc_ids in self.doc_ids.items():
            rows += answer_task_items(model, processor, self.tasks()[name], doc_ids)
        table = pd.DataFrame(rows).rename(columns={"benchmark": "task"})
        return table.assign(checkpoint=checkpoint)[["checkpoint", "item", "task", "correct", "prob"]]

    def answer_checkpoints(
        self,
        paths: Sequence[str | Path],
        names: Sequence[str] | None,
        device: str,
        dtype: str,
        device_map: str | None = None,
    ) -> pd.DataFrame:
        """Each checkpoint folder's answers on the anchors, named as its feature row is (`device_map`:
        instead of `device`, spread over the devices there are)."""
        from headcast.extract import load_checkpoint  # torch: only when answering

        names = list(names) if names is not None else [str(p) for p in paths]
        self.tasks()  # a changed task is refused before any model loads
        tables = []
        for path, name in zip(paths, names, strict=True):
            checkpoint = load_checkpoint(path, device=device, dtype=dtype, device_map=device_map)
            tables.append(self.answer(checkpoint.model, checkpoint.processor, name))
        return pd.concat(tables, ignore_index=True)
