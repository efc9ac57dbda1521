"""`headcast evaluate --tasks`: score checkpoints on lmms-eval tasks as lmms-eval scores them.

The per-item table beside the scores has the task name as `benchmark` and lmms-eval's `doc_id` as
`item`, so it is interchangeable with the `--log_samples` logs of the same tasks; the score is the mean
of the task's per-item metric, in percent (lmms-eval's `mean` aggregation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from headcast.errors import HeadcastError
from headcast.extract.evaluate import items_path, scores_of, write_items, write_scores
from headcast.extract.harness_answers import answer_task_items
from headcast.extract.harness_tasks import HarnessTask, load_tasks


def checked_mean_tasks(tasks: dict[str, HarnessTask]) -> dict[str, HarnessTask]:
    """Tasks whose score is the mean of their per-item values: the only ones an item table adds up to."""
    for task in tasks.values():
        aggregation = next(
            (m.get("aggregation") for m in task._task.config.metric_list if m.get("metric") == task.metric),
            None,
        )
        if aggregation != "mean":
            raise HeadcastError(
                f"lmms-eval task {task.name!r} aggregates {task.metric!r} with {aggregation!r}, not the mean "
                "of per-item values; headcast's scores and anchors need a per-item mean"
            )
    return tasks


def evaluate_tasks(
    checkpoints: Sequence[str | Path],
    names: Sequence[str],
    include_path: str | Path | None,
    out: str | Path,
    device: str = "auto",
    name_of: Callable[[Path], str] = str,
    device_map: str | None = None,
) -> list[dict]:
    """Score every checkpoint on the tasks; write the long table to `out`, per-item results beside it."""
    from headcast.extract import load_checkpoint  # torch: only when a model is really loaded

    tasks = checked_mean_tasks(load_tasks(names, include_path))
    items = []
    for path in tqdm([Path(c) for c in checkpoints], desc="evaluate", unit="checkpoint"):
        checkpoint = load_checkpoint(path, device=device, device_map=device_map)
        for task in tasks.values():
            rows = answer_task_items(checkpoint.model, checkpoint.processor, task)
            items += [{"checkpoint": name_of(path)} | row for row in rows]
    scores = scores_of(items)
    write_items(items, items_path(out))
    write_scores(scores, out)
    return scores
