"""lmms-eval tasks as a headcast suite, defined by lmms-eval itself (the optional `headcast[lmms-eval]`).

A task is loaded through lmms-eval's own `TaskManager` (built-in tasks and `--include_path` YAMLs), as
the chat `llava_hf` model sees it, so every item is the harness's own definition: the messages its
`doc_to_messages` renders (prompt and image), its target, its generation settings, its filters and its
`process_results`. Items are keyed by lmms-eval's `doc_id`. Datasets are read offline only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headcast.errors import HeadcastError

SUPPORTED_OUTPUT_TYPES = ("generate_until",)
# lmms-eval 0.7.3's CLI default for --reasoning_tags: these blocks are cut from a response before scoring
CLI_REASONING_TAGS = '[["<think>", "</think>"], ["<analysis>", "</analysis>"]]'
INSTALL_HINT = "install it with: pip install 'headcast[lmms-eval]' (see docs/harness.md)"


@dataclass(frozen=True)
class TaskItem:
    """One document of a task, rendered by the task: what the model is asked and what it is judged on."""

    task: str
    doc_id: str
    messages: list[dict[str, Any]]  # the chat turn(s) of `doc_to_messages`, images inline
    target: str


class HarnessTask:
    """One loaded lmms-eval task: its items, its generation settings and its own scoring of an answer."""

    def __init__(self, task: Any) -> None:
        self._task = task
        self.name: str = task.config.task
        self.output_type: str = task.OUTPUT_TYPE
        if self.output_type not in SUPPORTED_OUTPUT_TYPES:
            raise HeadcastError(
                f"lmms-eval task {self.name!r} is a {self.output_type} task, which lmms-eval 0.7.3's "
                "llava_hf cannot score under transformers 5 (docs/harness.md), so no harness verdict exists "
                f"to match; pass {', '.join(SUPPORTED_OUTPUT_TYPES)} tasks (MMBench-style ones carry the "
                "options in the prompt)"
            )
        metrics = [m["metric"] for m in task.config.metric_list or [] if isinstance(m.get("metric"), str)]
        if not metrics:
            raise HeadcastError(f"lmms-eval task {self.name!r} names no metric in its metric_list")
        self.metric: str = metrics[0]
        self.filter: str = task._filters[0].name  # the first filter pipeline, lmms-eval's headline
        self.generation_kwargs: dict[str, Any] = dict(task.config.generation_kwargs or {})
        from lmms_eval.api.reasoning import parse_reasoning_tags_config  # lmms-eval: loaded with the task

        task_tags = getattr(task.config, "reasoning_tags", None)
        self._reasoning_tags = parse_reasoning_tags_config(cli_value=CLI_REASONING_TAGS, task_value=task_tags)
        self._docs = task.eval_docs
        self._plain_docs = task.eval_docs_no_media  # what lmms-eval's CLI scores with by default

    @property
    def backend(self) -> str:
        """The lmms-eval `llava_hf` whose answers these are: the chat one, lmms-eval's default."""
        return "chat"

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def doc_ids(self) -> list[str]:
        return [str(i) for i in range(len(self._docs))]

    def item(self, doc_id: str) -> TaskItem:
        index = self._index(doc_id)
        doc = self._docs[index]
        target = self._task.doc_to_target(doc)
        return TaskItem(self.name, str(index), self._task.doc_to_messages(doc), str(target))

    def items(self, doc_ids: Iterable[str] | None = None) -> list[TaskItem]:
        return [self.item(doc_id) for doc_id in (self.doc_ids if doc_ids is None else doc_ids)]

    def score(self, doc_id: str, response: str) -> tuple[float, str]:
        """The task's value of `response` (its filters, then `process_results`) and the filtered answer."""
        from lmms_eval.api.instance import Instance  # lmms-eval: only where a task is scored
        from lmms_eval.api.reasoning import strip_reasoning_tags

        index = self._index(doc_id)
        metadata = {"task": self.name, "doc_id": index, "repeats": 1}
        instance = Instance(request_type=self.output_type, arguments=(), idx=0, metadata=metadata)
        instance.resps = [response]
        for ensemble in self._task._filters:
            ensemble.apply([instance], self._plain_docs)
        filtered = instance.filtered_resps[self.filter]
        if self._reasoning_tags is not None and isinstance(filtered, str):  # as the evaluator does
            filtered = strip_reasoning_tags(filtered, self._reasoning_tags)
        values = self._task.process_results(self._plain_docs[index], [filtered])
        if self.metric not in values:
            raise HeadcastError(
                f"lmms-eval task {self.name!r}: process_results gave {sorted(values)}, not its metric "
                f"{self.metric!r}"
            )
        return float(values[self.metric]), filtered if isinstance(filtered, str) else str(filtered)

    def config_hash(self) -> str:
        """A digest of the task's configuration, its functions' source and its documents (no media).

        Anchors answered under another configuration (another prompt, metric or data) are refused by it.
        """
        config = {key: _describe(value) for key, value in sorted(vars(self._task.config).items())}
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        for doc in self._plain_docs:
            digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def _index(self, doc_id: str) -> int:
        try:
            index = int(doc_id)
        except ValueError:
            index = -1
        if not 0 <= index < len(self._docs):
            raise HeadcastError(
                f"lmms-eval task {self.name!r} has no doc_id {doc_id!r} (it has {len(self._docs)} "
                "documents); the items were made from another version of the task"
            )
        return index


def _describe(value: Any) -> Any:
    """A config value as text that is the same on every run: a function by its source, not its address."""
    if callable(value):
        try:
            return inspect.getsource(value)
        except (OSError, TypeError):
            return getattr(value, "__qualname__", repr(type(value)))
    return value


def load_tasks(names: Sequence[str], include_path: str | Path | None = None) -> dict[str, HarnessTask]:
    """The named lmms-eval tasks (built in, or YAMLs below `include_path`), loaded offline."""
    if not names:
        raise HeadcastError("--tasks names no task; pass e.g. --tasks zoo_spatial,zoo_count_object")
    if include_path is not None and not os.path.isdir(include_path):
        raise HeadcastError(f"--include-path {include_path} is not a folder of lmms-eval task YAMLs")
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # never the network: local data only
        os.environ[variable] = "1"
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # a bar per task split is noise
    try:  # lmms-eval, and torch with it: only where tasks are really used
        # here, not at the top: loads lmms-eval, loguru only when this runs
        from lmms_eval.tasks import TaskManager, get_task_dict
        from loguru import logger
    except ImportError as err:
        raise HeadcastError(f"lmms-eval tasks need lmms-eval ({err}); {INSTALL_HINT}") from None
    logger.disable("lmms_eval")  # its task-index chatter; failures reach the user as one headcast line
    manager = TaskManager(verbosity="ERROR", include_path=None if include_path is None else str(include_path))
    unknown = [name for name in names if name not in manager.all_tasks]
    if unknown:
        where = f" below {include_path}" if include_path is not None else " (pass --include-path DIR)"
        raise HeadcastError(f"no lmms-eval task {unknown[0]!r}{where}")
    try:
        loaded = get_task_dict(list(names), manager, task_type="chat")
    except Exception as err:  # the task's own code or dataset: lmms-eval raises anything
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise HeadcastError(f"lmms-eval could not load task(s) {', '.join(names)}: {first_line}") from None
    tasks = {name: HarnessTask(task) for name, task in _leaf_tasks(loaded).items()}
    return {name: tasks[name] for name in names if name in tasks} | tasks


def _leaf_tasks(loaded: dict) -> dict[str, Any]:
    """Task name -> task object, groups opened up (lmms-eval nests a group's tasks in a dict)."""
    tasks: dict[str, Any] = {}
    for key, value in loaded.items():
        if isinstance(value, dict):
            tasks |= _leaf_tasks(value)
        else:
            tasks[getattr(key, "group_name", None) or str(key)] = value
    return tasks


def task_names(text: str) -> list[str]:
    """`--tasks a,b` as a list of names."""
    return [name.strip() for name in text.split(",") if name.strip()]
