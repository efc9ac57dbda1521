"""`headcast probes build`: a probe set sampled from the user's own dataset, never from the network.

Sources are local copies of what benchmarks already use: a `datasets` `save_to_disk` folder, a
Parquet file or folder of them (image columns as HF's `{bytes, path}` structs, raw bytes or paths
relative to the file) or an image folder with `metadata.jsonl`/`metadata.csv` (HF `imagefolder`).
Only the sampled rows' images are read. The result is written to a temporary folder beside `--out`
and renamed into place once it reads back through `read_probes`, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from headcast.errors import HeadcastError
from headcast.extract.dataset_sources import Source, open_source
from headcast.extract.probes import IMAGE_PLACEHOLDERS, read_probes
from headcast.files import check_writable
from headcast.paths import resolve_input_file

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Proportional allocation of `n` over groups (largest remainder), every group at least one if n allows.

    Ties go to the earlier group. A group left at zero while `n` covers every group takes one from the
    group with the most (which has at least two), so small tasks are represented without a rounding lottery.
    """
    total = sum(sizes)
    quotas = [n * size / total for size in sizes]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(sizes):
        for i in range(len(sizes)):
            if counts[i] == 0:
                donor = max(range(len(sizes)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] = 1
    return counts


def sample_rows(tasks: Sequence[str | None] | None, total: int, n: int, seed: int) -> list[int]:
    """`n` distinct row indices in ascending order: stratified by task when there are tasks."""
    rng = np.random.default_rng(seed)
    if tasks is None:
        return sorted(int(i) for i in rng.choice(total, size=n, replace=False))
    groups: dict[str | None, list[int]] = {}
    for row, task in enumerate(tasks):
        groups.setdefault(task, []).append(row)
    names = sorted(groups, key=lambda t: (t is None, t or ""))
    counts = allocate([len(groups[t]) for t in names], n)
    rows: list[int] = []
    for name, count in zip(names, counts, strict=True):
        rows.extend(int(i) for i in rng.choice(groups[name], size=count, replace=False))
    return sorted(rows)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scalar_text(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def normalise_answer(value: Any, where: str) -> str | None:
    """One answer string: scalars via `str`; a list (VQA's annotator answers) gives its most common entry.

    Ties go to the entry seen first; list entries may be `{"answer": ...}` objects as in VQAv2;
    an empty list or a missing value gives no answer.
    """
    if _is_missing(value):
        return None
    if isinstance(value, str | int | float | bool | np.generic):
        return _scalar_text(value)
    if isinstance(value, list | tuple | np.ndarray):
        entries = []
        for entry in value:
            if isinstance(entry, dict) and "answer" in entry:
                entry = entry["answer"]
            if _is_missing(entry):
                continue
            if not isinstance(entry, str | int | float | bool | np.generic):
                raise HeadcastError(
                    f"{where}: answer list holds {type(entry).__name__}; pick a column of answer strings"
                )
            entries.append(_scalar_text(entry))
        return Counter(entries).most_common(1)[0][0] if entries else None
    raise HeadcastError(f"{where}: answer is a {type(value).__name__}; pick a column of answer strings")


def normalise_question(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HeadcastError(f"{where}: question is {value!r}, not text; pick the column of question strings")
    for placeholder in IMAGE_PLACEHOLDERS:  # the same list `read_probes` refuses
        if placeholder in value:
            raise HeadcastError(
                f"{where}: question contains the image placeholder {placeholder}; remove it from the "
                "questions (headcast's prompt places the image itself)"
            )
    return value


def normalise_box(value: Any, where: str) -> list[float] | None:
    if _is_missing(value):
        return None
    if isinstance(value, str):  # CSV cells
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    numbers = list(value) if isinstance(value, list | tuple | np.ndarray) else None
    if (
        numbers is None
        or len(numbers) != 4
        or not all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in numbers)
        or not all(math.isfinite(v) for v in numbers)
    ):
        raise HeadcastError(
            f"{where}: box must be [x0, y0, x1, y1] in pixels, got {value!r}; convert other box "
            "formats (e.g. COCO's [x, y, w, h]) first or leave out --box-column"
        )
    return [v.item() if isinstance(v, np.generic) else v for v in numbers]


def load_image(value: Any, root: Path, where: str) -> Image.Image:
    """Decode one stored image (HF struct, raw bytes, or a path relative to `root`) to RGB."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, bytes | bytearray):
        opener: Any = io.BytesIO(value)
        what = "the stored image bytes"
    elif isinstance(value, str) and value:
        opener = resolve_input_file(root, value, f"{where}: image file", str(root))
        what = str(opener)
    else:
        raise HeadcastError(
            f"{where}: image is {type(value).__name__}, not an image, bytes or a path; pick the image column"
        )
    try:
        with Image.open(opener) as image:
            return image.convert("RGB")
    except _DECODE_ERRORS as err:
        raise HeadcastError(f"{where}: cannot decode {what} ({err}); fix or drop that row") from None


def _file_stem(probe_id: str) -> str:
    """A safe file name for an id; ids that needed changing get a hash so no two items share a file."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", probe_id).strip("-.")[:80]
    if slug == probe_id:
        return slug
    return f"{slug or 'item'}-{hashlib.sha256(probe_id.encode()).hexdigest()[:8]}"


def _check_column(source: Source, column: str, flag: str) -> None:
    if column not in source.columns:
        raise HeadcastError(
            f"column {column!r} is not in {source.path}; available: {', '.join(source.columns)} "
            f"(pass {flag} with one of them)"
        )


def _check_out(out: Path, dataset: Path, force: bool) -> None:
    if os.path.lexists(out) and not os.path.isdir(out):  # os.path: Path's raise on a name too long to exist
        raise HeadcastError(f"--out {out} is a file; name a folder")
    if os.path.isdir(out) and any(out.iterdir()) and not force:
        raise HeadcastError(f"--out {out} is not empty; pass --force to replace it or name a new folder")
    if force and dataset.resolve().is_relative_to(out.resolve()):
        raise HeadcastError(f"--out {out} holds the dataset {dataset}; name another folder")
    check_writable(out, folder=True)  # a parent that is a file, a read-only folder: before any work


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished folder into place; an old `out` is only removed once the new one is there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)


def _write_image(image: Image.Image, item: dict[str, Any], folder: Path, where: str) -> None:
    if "box" in item:
        x0, y0, x1, y1 = item["box"]
        if not (0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height):
            raise HeadcastError(
                f"{where}: box {item['box']} is not inside the {image.width}x{image.height} image; "
                "boxes are [x0, y0, x1, y1] in pixels with x0 < x1, y0 < y1"
            )
    image.save(folder / item["image"])


def build_probe_set(
    dataset: str | Path,
    out: str | Path,
    *,
    image_column: str,
    question_column: str,
    n: int,
    seed: int = 0,
    answer_column: str | None = None,
    box_column: str | None = None,
    task_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Sample `n` rows of a local dataset into `out/probes.jsonl` + `out/images/<id>.png`; returns the JSONL.

    Sampling is stratified by `task_column` when given (see `allocate`), uniform otherwise, and the same
    seed on the same data gives the same set. Without `id_column` an item's id is `<dataset name>-<row>`.
    Images are saved as RGB PNG (what the model is shown), so pixels survive exactly.
    """
    dataset, out = Path(dataset), Path(out)
    _check_out(out, dataset, force)
    source = open_source(dataset, split)
    flags = {
        "--image-column": image_column,
        "--question-column": question_column,
        "--answer-column": answer_column,
        "--box-column": box_column,
        "--task-column": task_column,
        "--id-column": id_column,
    }
    for flag, column in flags.items():
        if column is not None:
            _check_column(source, column, flag)
    total = len(source)
    if total == 0:
        raise HeadcastError(f"dataset {dataset} has no rows")
    if n < 1 or n > total:
        raise HeadcastError(
            f"--n {n} is not possible: {dataset} has {total} rows; pass --n from 1 to {total}"
        )
    text_columns = [c for c in (question_column, answer_column, box_column, task_column, id_column) if c]
    values = source.values(text_columns)
    tasks = None
    if task_column is not None:
        tasks = [None if _is_missing(t) else _scalar_text(t) for t in values[task_column]]
    ids = _item_ids(dataset, values, id_column, total)
    rows = sample_rows(tasks, total, n, seed)

    items = []
    for row in rows:
        where = f"{dataset} row {row}"
        item: dict[str, Any] = {"id": ids[row], "image": f"images/{_file_stem(ids[row])}.png"}
        item["question"] = normalise_question(values[question_column][row], where)
        if answer_column is not None and (answer := normalise_answer(values[answer_column][row], where)):
            item["answer"] = answer
        if box_column is not None and (box := normalise_box(values[box_column][row], where)) is not None:
            item["box"] = box
        if tasks is not None and tasks[row] is not None:
            item["task"] = tasks[row]
        items.append(item)

    images = zip(rows, items, source.images(image_column, rows), strict=True)
    return _write_probe_set(dataset, out, items, images, force, progress)


def _item_ids(dataset: Path, values: dict[str, list], id_column: str | None, total: int) -> list[str]:
    """Each row's item id: the id column's (non-empty, unique), else `<dataset name>-<row>`."""
    if id_column is None:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.resolve().name.removesuffix(".parquet")) or "row"
        return [f"{name}-{row}" for row in range(total)]
    ids = [_scalar_text(v) if not _is_missing(v) else "" for v in values[id_column]]
    if "" in ids:
        raise HeadcastError(f"id column {id_column!r} has empty ids (row {ids.index('')}); pick another")
    repeated = [i for i, count in Counter(ids).items() if count > 1]
    if repeated:
        raise HeadcastError(f"id column {id_column!r} repeats the id {repeated[0]!r}; ids must be unique")
    return ids


def _write_probe_set(
    dataset: Path, out: Path, items: list[dict[str, Any]], images: Iterable, force: bool, progress: bool
) -> Path:
    """Items and their images into a temporary folder beside `out`, checked to load, then moved into place:
    an interrupted build leaves no half-written probe set."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp."))
    try:
        (tmp / "images").mkdir()
        with tqdm(images, total=len(items), desc="images", disable=not progress) as bar:
            for row, item, (value, root) in bar:
                where = f"{dataset} row {row}"
                _write_image(load_image(value, root, where), item, tmp, where)
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (tmp / "probes.jsonl").write_text(lines, encoding="utf-8")
        try:
            read_probes(tmp / "probes.jsonl")  # what we hand over must load
        except HeadcastError as err:
            raise HeadcastError(str(err).replace(str(tmp), str(out))) from None
        _check_out(out, dataset, force)  # something may have appeared meanwhile
        _replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / "probes.jsonl"
