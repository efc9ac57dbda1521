"""Local datasets as column tables: a `datasets` save_to_disk folder, Parquet files, an image folder.

Never the network: `datasets` is imported only for save_to_disk folders, and offline. Images are read
only for the rows asked for, so sampling a few probes from a large dataset stays cheap.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq

from headcast.errors import HeadcastError
from headcast.paths import resolve_input_file

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


class Source(Protocol):
    """A table read column by column; images are fetched only for the rows that were sampled."""

    path: Path
    kind: str
    columns: list[str]

    def __len__(self) -> int: ...

    def values(self, columns: Sequence[str]) -> dict[str, list[Any]]:
        """Every row's value of each non-image column, as plain Python objects."""
        ...

    def images(self, column: str, rows: Sequence[int]) -> Iterator[tuple[Any, Path]]:
        """The raw image value of each row, in order, with the folder its relative paths start from."""
        ...


class DiskSource:
    """A `Dataset.save_to_disk` folder (memory-mapped Arrow, so column reads are cheap)."""

    kind = "save_to_disk"

    def __init__(self, path: Path, split: str | None) -> None:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import datasets  # heavy: only for this format

        datasets.disable_progress_bars()
        try:
            loaded = datasets.load_from_disk(str(path))
        except (OSError, ValueError, FileNotFoundError) as err:
            raise HeadcastError(f"cannot load the save_to_disk folder {path}: {err}") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = sorted(loaded)
            if split is None and len(splits) == 1:
                split = splits[0]
            if split not in loaded:
                raise HeadcastError(
                    f"{path} holds the splits {', '.join(splits)}; pass --split with one of them"
                )
            loaded = loaded[split]
        elif split is not None:
            raise HeadcastError(f"{path} is a single dataset without splits; leave out --split")
        self.path = path
        self.dataset = loaded
        self.columns = list(loaded.column_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def values(self, columns: Sequence[str]) -> dict[str, list[Any]]:
        """Stored values; `ClassLabel` columns (common for tasks) give their label names."""
        # here, not at the top: loads datasets only when this runs
        import datasets

        names = list(dict.fromkeys(columns))
        table = self.dataset.select_columns(names).with_format("arrow")[:]
        out = {name: table.column(name).to_pylist() for name in names}
        for name in names:
            feature = self.dataset.features[name]
            if isinstance(feature, datasets.ClassLabel):
                out[name] = [None if v is None or v < 0 else feature.int2str(v) for v in out[name]]
        return out

    def images(self, column: str, rows: Sequence[int]) -> Iterator[tuple[Any, Path]]:
        # Arrow format: the stored {bytes, path} struct, not decoded by `datasets`
        table = self.dataset.select_columns([column]).select(list(rows)).with_format("arrow")[:]
        for value in table.column(column).to_pylist():
            yield value, self.path


class ParquetSource:
    """A Parquet file or a folder of them (searched recursively, read in sorted order)."""

    kind = "parquet"

    def __init__(self, path: Path) -> None:

        self.path = path
        self.files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        for file in self.files:  # a FIFO so named would block the reader
            resolve_input_file(file.parent, file.name, "Parquet file")
        self.counts: list[int] = []
        columns: list[str] | None = None
        for file in self.files:
            try:
                meta = pq.ParquetFile(file).metadata
            except (OSError, ValueError) as err:
                raise HeadcastError(f"{file} is not a readable Parquet file: {err}") from None
            names = meta.schema.to_arrow_schema().names
            if columns is not None and names != columns:
                raise HeadcastError(
                    f"{file} has columns {', '.join(names)} but {self.files[0]} has {', '.join(columns)}; "
                    "point --dataset at one split's files"
                )
            columns = names
            self.counts.append(meta.num_rows)
        self.columns = columns or []

    def __len__(self) -> int:
        return sum(self.counts)

    def values(self, columns: Sequence[str]) -> dict[str, list[Any]]:

        names = list(dict.fromkeys(columns))
        out: dict[str, list[Any]] = {name: [] for name in names}
        for file in self.files:
            table = pq.read_table(file, columns=names)
            for name in names:
                out[name].extend(table.column(name).to_pylist())
        return out

    def images(self, column: str, rows: Sequence[int]) -> Iterator[tuple[Any, Path]]:

        found: dict[int, tuple[Any, Path]] = {}
        wanted = np.asarray(sorted(rows))
        start = 0
        for file, count in zip(self.files, self.counts, strict=True):
            local = wanted[(wanted >= start) & (wanted < start + count)] - start
            parquet = pq.ParquetFile(file)
            group_start = 0
            for group in range(parquet.num_row_groups):
                size = parquet.metadata.row_group(group).num_rows
                in_group = local[(local >= group_start) & (local < group_start + size)]
                if len(in_group):  # read only row groups that hold sampled rows
                    column_values = parquet.read_row_group(group, columns=[column]).column(0)
                    picked = column_values.take(in_group - group_start).to_pylist()
                    for row, value in zip(in_group, picked, strict=True):
                        found[start + int(row)] = (value, file.parent)
                group_start += size
            start += count
        for row in rows:
            yield found[row]


class ImageFolderSource:
    """An image folder with `metadata.jsonl` or `metadata.csv` files whose `file_name` is relative to them.

    As in HF's `imagefolder`, `file_name` is also offered as the column `image`; CSV cells are text,
    an empty cell is missing.
    """

    kind = "imagefolder"

    def __init__(self, path: Path) -> None:
        metadata = [path] if path.is_file() else sorted(p for m in METADATA_FILES for p in path.rglob(m))
        for file in metadata:  # a FIFO so named would block the reader
            resolve_input_file(file.parent, file.name, "metadata file")
        folders = Counter(file.parent for file in metadata)
        if clash := [folder for folder, count in folders.items() if count > 1]:
            raise HeadcastError(f"{clash[0]} has both metadata.jsonl and metadata.csv; keep one of them")
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.roots: list[Path] = []
        for file in metadata:
            for where, record in _read_metadata(file):
                if not record.get("file_name"):
                    raise HeadcastError(f"{where}: no file_name; every metadata row names its image file")
                self.rows.append(record)
                self.roots.append(file.parent)
        self.columns = list(dict.fromkeys(key for record in self.rows for key in record))
        if "image" not in self.columns:
            self.columns.append("image")

    def __len__(self) -> int:
        return len(self.rows)

    def _get(self, record: dict[str, Any], column: str) -> Any:
        if column == "image" and "image" not in record:
            return record["file_name"]
        return record.get(column)

    def values(self, columns: Sequence[str]) -> dict[str, list[Any]]:
        return {column: [self._get(record, column) for record in self.rows] for column in columns}

    def images(self, column: str, rows: Sequence[int]) -> Iterator[tuple[Any, Path]]:
        for row in rows:
            yield self._get(self.rows[row], column), self.roots[row]


def _read_metadata(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if file.name.endswith(".csv"):
        with file.open(encoding="utf-8", newline="") as stream:
            for number, record in enumerate(csv.DictReader(stream), start=2):
                yield f"{file}:{number}", {key: (value or None) for key, value in record.items()}
        return
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise HeadcastError(f"{where}: not valid JSON ({err.msg}); one object a line") from None
            if not isinstance(record, dict):
                raise HeadcastError(f"{where}: expected a JSON object with file_name and the columns")
            yield where, record


def open_source(path: str | Path, split: str | None = None) -> Source:
    """Recognise the dataset's format from what the path holds."""
    path = Path(path)
    if not os.path.exists(path):  # not Path.exists: Python 3.11's raises on a name too long to exist
        raise HeadcastError(f"dataset {path} does not exist; pass --dataset a local folder or file")
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        return DiskSource(path, split)
    if split is not None:
        raise HeadcastError(
            f"--split is for save_to_disk folders; point --dataset at the split's own files ({path})"
        )
    if path.is_file() and path.suffix == ".parquet":
        return ParquetSource(path)
    if path.is_file() and path.name in METADATA_FILES:
        return ImageFolderSource(path)
    if path.is_dir() and any(next(path.rglob(name), None) for name in METADATA_FILES):
        return ImageFolderSource(path)
    if path.is_dir() and next(path.rglob("*.parquet"), None):
        return ParquetSource(path)
    raise HeadcastError(
        f"cannot tell the format of {path}: expected a datasets save_to_disk folder, a .parquet file or "
        "folder of them, or an image folder with metadata.jsonl/metadata.csv"
    )
