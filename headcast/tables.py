"""Feature tables on disk: Parquet with each checkpoint's settings in the file's metadata.

The one reader and writer of the table that crosses from extraction to prediction; errors name what
is wrong with the file and how to make a good one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from headcast.contract import contracts_from_settings
from headcast.errors import HeadcastError
from headcast.files import atomic_output
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION


def write_features(table: pd.DataFrame, settings: dict[str, dict], path: str | Path) -> None:
    """Write the feature table atomically, with each checkpoint's settings in the file's metadata.

    A row's extraction contract (its `contract` column) joins its checkpoint's settings there too, so
    tools that read only the Parquet metadata see how every row was made.
    """
    if CONTRACT_COLUMN in table:
        settings = dict(settings)
        for checkpoint, text in zip(table["checkpoint"], table[CONTRACT_COLUMN], strict=True):
            if isinstance(text, str):
                settings[checkpoint] = dict(settings.get(checkpoint, {})) | {"contract": json.loads(text)}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[b"headcast"] = json.dumps(
        {"schema_version": FEATURE_SCHEMA_VERSION, "settings": settings}
    ).encode()
    with atomic_output(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def read_features(path: str | Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """A feature table and its per-checkpoint settings; errors name what is wrong with the file.

    A file written before extraction contracts gets its `contract` column back from the settings in
    its metadata, so old tables are checked like new ones.
    """
    path = Path(path)
    arrow = _read_arrow(path, "feature file", "create it with 'headcast extract'")
    table = arrow.to_pandas()
    if not {"checkpoint", "schema_version"} <= set(table.columns):
        raise HeadcastError(
            f"{path} has no checkpoint/schema_version columns; it is not a headcast feature table"
        )
    check_feature_rows(table, path)
    meta = json.loads((arrow.schema.metadata or {}).get(b"headcast", b"{}"))
    settings = meta.get("settings", {})
    if CONTRACT_COLUMN not in table:
        implied = contracts_from_settings(settings, table["checkpoint"].tolist())
        if implied is not None:
            table.insert(2, CONTRACT_COLUMN, implied)
    return table, settings


def _read_arrow(path: Path, what: str, fix: str) -> pa.Table:
    """The Parquet file at `path` as an Arrow table; a missing or unreadable one is a one-line error."""
    if not os.path.isfile(path):  # not Path.is_file: Python 3.11's raises on a name too long to exist
        raise HeadcastError(f"{what} {path} does not exist; {fix}")
    try:
        return pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        detail = (str(err).strip().splitlines() or [""])[0].removeprefix(
            f"Could not open Parquet input source '{path}': "
        )
        reason = f"{type(err).__name__}: {detail[:120]}" if detail else type(err).__name__
        raise HeadcastError(f"{path} is not a readable Parquet file ({reason}); {fix}") from None


def read_table(path: str | Path, what: str, columns: Iterable[str], fix: str) -> pd.DataFrame:
    """A Parquet table that must hold `columns` (a per-head or answer table), or a one-line error."""
    path = Path(path)
    table = _read_arrow(path, what, fix).to_pandas()
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise HeadcastError(f"{path} lacks column(s) {', '.join(missing)}, so it is not a {what}; {fix}")
    return table


def check_feature_rows(table: pd.DataFrame, where: object) -> None:
    """One row per named checkpoint, and numbers in every feature column: NaN where undefined, never inf
    or text (which the predictor would turn into a crash or, coerced, a silently missing value)."""
    names = table["checkpoint"]
    unnamed = names.isna() | ~names.map(lambda n: isinstance(n, str) and bool(n.strip()))
    if unnamed.any():
        raise HeadcastError(
            f"{where}: row {int(unnamed.to_numpy().argmax())} has no checkpoint name; "
            "every row needs one, as 'headcast extract' writes it"
        )
    repeated = names[names.duplicated()]
    if not repeated.empty:
        raise HeadcastError(
            f"{where}: checkpoint {repeated.iloc[0]!r} has {int((names == repeated.iloc[0]).sum())} rows; "
            "keep one row per checkpoint (pass each checkpoint to 'headcast extract' once)"
        )
    for column in table.columns.drop(["checkpoint", "schema_version", CONTRACT_COLUMN], errors="ignore"):
        values = table[column]
        if values.isna().all():  # an all-missing column may come back untyped; it is all NaN
            continue
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            shown = next((v for v in values if not isinstance(v, int | float)), values.iloc[0])
            raise HeadcastError(
                f"{where}: feature column {column!r} holds {type(shown).__name__} values such as {shown!r}, "
                "not numbers; re-extract the features with 'headcast extract'"
            )
        infinite = np.isinf(values.to_numpy(dtype=float))
        if infinite.any():
            row = int(infinite.argmax())
            raise HeadcastError(
                f"{where}: feature column {column!r} is {values.iloc[row]} for checkpoint "
                f"{names.iloc[row]!r}; features are finite (NaN where undefined), re-extract them with "
                "'headcast extract'"
            )
