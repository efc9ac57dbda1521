"""Match the checkpoint names of score and per-item tables to the feature table's names.

Harnesses name a checkpoint however they were called (lmms-eval keeps the `pretrained=` string, often an
absolute path) while features are usually named relative to a checkpoints folder
(`headcast extract --relative-to`). The rule:

1. a relative name means `ROOT/name` when a checkpoint root is given;
2. two names match when they lead to the same path (absolute paths are resolved, so symlinks match);
3. relative names without a root match only verbatim (after dropping `./` and a trailing `/`).

Matched rows take the feature table's name; any name left unmatched is an error that lists it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError, listing


def checkpoint_key(name: str, root: Path | None = None) -> str:
    """The path a checkpoint name stands for under the rule above."""
    path = Path(name)
    if not path.is_absolute() and root is not None:
        path = root.absolute() / path
    if path.is_absolute():
        return str(path.resolve())
    return os.path.normpath(name)


def match_checkpoints(found: Iterable[str], known: Sequence[str], root: Path | None = None) -> dict[str, str]:
    """Each name in `found` mapped to the name in `known` that stands for the same checkpoint.

    Names that match nothing are left out; two `known` names for one checkpoint are an error.
    """
    by_key: dict[str, str] = {}
    for name in known:
        key = checkpoint_key(name, root)
        if key in by_key and by_key[key] != name:
            raise HeadcastError(
                f"feature rows {by_key[key]!r} and {name!r} are the same checkpoint; extract each folder once"
            )
        by_key[key] = name
    return {name: by_key[key] for name in set(found) if (key := checkpoint_key(name, root)) in by_key}


def rename_checkpoints(
    table: pd.DataFrame, known: Sequence[str], root: Path | None = None, what: str = "score"
) -> pd.DataFrame:
    """`table` with its `checkpoint` column in the feature table's names; unmatched names are an error."""
    found = sorted(set(table["checkpoint"]))
    names = match_checkpoints(found, known, root)
    unmatched = [name for name in found if name not in names]
    featureless = sorted(set(known) - set(names.values()))
    if unmatched or featureless:
        raise HeadcastError(_mismatch_message(unmatched, featureless, root, what))
    return table.assign(checkpoint=table["checkpoint"].map(names))


def _mismatch_message(unmatched: list[str], featureless: list[str], root: Path | None, what: str) -> str:
    parts = []
    if featureless:
        parts.append(f"{len(featureless)} checkpoint(s) have features but no {what}s: {listing(featureless)}")
    if unmatched:
        parts.append(f"{len(unmatched)} {what} checkpoint(s) match no feature row: {listing(unmatched)}")
    guess = _guess_root(unmatched, featureless)
    if guess is not None and guess != root:
        fix = f"pass --checkpoint-root {guess} (the folder the feature names are relative to)"
    else:
        fix = (
            "name checkpoints the same way on both sides: extract with --relative-to ROOT and fit with "
            "--checkpoint-root ROOT, or remove the results of checkpoints you did not extract"
        )
    return "; ".join(parts) + f"; {fix}"


def _guess_root(unmatched: Sequence[str], featureless: Sequence[str]) -> Path | None:
    """The folder that would turn an absolute unmatched name into a relative feature name, if one does."""
    for name in unmatched:
        path = Path(name)
        for feature in featureless:
            tail = Path(feature).parts
            if path.is_absolute() and not Path(feature).is_absolute() and path.parts[-len(tail) :] == tail:
                return Path(*path.parts[: -len(tail)])
    return None
