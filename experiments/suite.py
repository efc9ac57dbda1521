"""Write the synthetic benchmark suite and the unlabeled probe set in headcast's JSONL format.

Each benchmark is one `<name>.jsonl` file with its images as PNG files under `images/<name>/`;
the probe set lives apart, on images drawn from a different seed, and carries no answers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from headcast.experiments.layout import PROBE_SET, probe_file
from headcast.experiments.scenes import BENCHMARKS, Item, make_items

PROBE_TASKS = ("count_general", "count_object", "count_super", "pope_adversarial", "attribute", "spatial")


def write_items(
    items: Sequence[Item], folder: Path, name: str, resolution: int, answers: bool = True
) -> Path:
    """`folder/name.jsonl` plus one PNG per item; `box` is the marked (or queried) object's box."""
    image_dir = folder / "images" / name
    image_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, item in enumerate(items):
        item_id = f"{name}-{i:04d}"
        image = image_dir / f"{item_id}.png"
        item.scene.render(resolution).save(image)
        line: dict = {"id": item_id, "image": image.relative_to(folder).as_posix(), "question": item.question}
        if answers:
            line["answer"] = item.answer
        if item.box_object is not None:
            line["box"] = list(item.scene.object_box(item.box_object, resolution))
        line["task"] = item.task
        lines.append(json.dumps(line))
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_suite(out: str | Path, seed: int, n: int, resolution: int = 56, grid: int = 4) -> list[Path]:
    """One held-out JSONL file per benchmark in `BENCHMARKS`, `n` items each, written atomically."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in BENCHMARKS:
        write_items(make_items(f"{seed}-benchmark", name, n, grid), tmp, name, resolution)
    _replace_dir(tmp, out)
    return [out / f"{name}.jsonl" for name in BENCHMARKS]


def write_probes(out: str | Path, seed: int, n: int, resolution: int = 56, grid: int = 4) -> Path:
    """`out/probes.jsonl`: `n` unlabeled items over the tasks in turn, on images of their own seed."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    per_task = {
        task: make_items(f"{seed}-probe", task, -(-n // len(PROBE_TASKS)), grid) for task in PROBE_TASKS
    }
    items = [per_task[PROBE_TASKS[i % len(PROBE_TASKS)]][i // len(PROBE_TASKS)] for i in range(n)]
    write_items(items, tmp, PROBE_SET, resolution, answers=False)
    _replace_dir(tmp, out)
    return probe_file(out)
