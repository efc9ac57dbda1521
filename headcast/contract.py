"""The extraction contract: how a feature row was made, which any model fitted on it must be fed again.

A feature row means something only together with its query position, visual-head thresholds,
probe set, metric and schema versions and dtype: a model fitted on `answer-mean` rows answers
`last-prompt` rows with confident nonsense. `ExtractionContract` holds exactly those settings.
Every feature table carries it in a `contract` column (compact JSON, one per row, so a plain
DataFrame or a service request row carries it too) and in its Parquet metadata; every fitted model
carries the contract of its training rows; every prediction path compares the two.

Torch-free: the predictor and the service import it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from headcast.errors import HeadcastError
from headcast.schema import (
    CONTRACT_COLUMN,
    FEATURE_SCHEMA_VERSION,
    METRICS_VERSION,
    QueryPosition,
    VisualHeadThresholds,
    query_position,
)

_VERSIONS = ("metrics_version", "schema_version")
# the `headcast extract` option that sets each field; the versions and the probe set have none
_OPTIONS = {
    "query": "--query",
    "visual_mass_threshold": "--visual-mass-threshold",
    "concentration_threshold": "--concentration-threshold",
    "dtype": "--dtype",
}


@dataclasses.dataclass(frozen=True)
class ExtractionContract:
    """The settings that decide a feature row's numbers, beside the checkpoint itself."""

    query: str
    visual_mass_threshold: float
    concentration_threshold: float
    dtype: str  # resolved ("float32", "bfloat16", "float16"), never "auto"
    probe_set_hash: str
    metrics_version: str = METRICS_VERSION
    schema_version: str = FEATURE_SCHEMA_VERSION

    def __post_init__(self) -> None:
        query_position(self.query)

    @property
    def thresholds(self) -> VisualHeadThresholds:
        return VisualHeadThresholds(self.visual_mass_threshold, self.concentration_threshold)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], thresholds: VisualHeadThresholds
    ) -> ExtractionContract:
        """The contract of one extraction, from its settings record (`HeadMetrics.settings`)."""
        return cls(
            query=str(settings["query"]),
            visual_mass_threshold=float(thresholds.visual_mass),
            concentration_threshold=float(thresholds.concentration),
            dtype=str(settings["dtype"]),
            probe_set_hash=str(settings["probe_set_hash"]),
            metrics_version=str(settings["metrics_version"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Compact and key-sorted: equal contracts give equal strings, so a column of them groups."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExtractionContract:
        if not isinstance(data, Mapping):
            raise HeadcastError(f"an extraction contract is a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise HeadcastError(
                f"not an extraction contract (missing {missing or 'none'}, unknown {unknown or 'none'}); "
                "re-extract the features with 'headcast extract'"
            )
        try:
            return cls(
                query=str(data["query"]),
                visual_mass_threshold=float(data["visual_mass_threshold"]),
                concentration_threshold=float(data["concentration_threshold"]),
                dtype=str(data["dtype"]),
                probe_set_hash=str(data["probe_set_hash"]),
                metrics_version=str(data["metrics_version"]),
                schema_version=str(data["schema_version"]),
            )
        except (TypeError, ValueError):
            raise HeadcastError(
                "an extraction contract's thresholds must be numbers; re-extract the features"
            ) from None

    @classmethod
    def from_json(cls, text: str) -> ExtractionContract:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            raise HeadcastError(
                f"contract {str(text)[:80]!r} is not JSON; send the 'contract' that 'headcast extract' wrote"
            ) from None
        return cls.from_dict(data)

    def differences(self, other: ExtractionContract) -> dict[str, tuple[Any, Any]]:
        """Field -> (this value, the other's value), for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {name: (mine[name], theirs[name]) for name in mine if mine[name] != theirs[name]}

    def mismatch(self, fitted: ExtractionContract) -> str | None:
        """None when rows made under this contract suit a model `fitted` under that one; else why not and
        the fix, on one line."""
        diff = self.differences(fitted)
        if not diff:
            return None
        ours = ", ".join(f"{name}={_show(a)}" for name, (a, _) in diff.items())
        theirs = ", ".join(f"{name}={_show(b)}" for name, (_, b) in diff.items())
        if set(diff) & set(_VERSIONS):
            fix = "re-extract the features with this headcast version, or refit the model on features from it"
        else:
            flags = " ".join(f"{_OPTIONS[n]} {_show(b)}" for n, (_, b) in diff.items() if n in _OPTIONS)
            probes = " on the probe set the model was fitted on" if "probe_set_hash" in diff else ""
            fix = f"re-extract{' with ' + flags if flags else ''}{probes} or predict from the checkpoint"
        return f"features were extracted with {ours} but the model was fitted on {theirs}; {fix}"


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """How to run an extraction: the contract's choices plus where and in what batches (which change
    no number)."""

    query: QueryPosition = "last-prompt"
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    thresholds: VisualHeadThresholds = dataclasses.field(default_factory=VisualHeadThresholds)
    device_map: str | None = None  # instead of `device`: spread over the node's devices (extract.loading)

    def __post_init__(self) -> None:
        query_position(self.query)
        if self.batch_size < 1:
            raise HeadcastError(f"batch size must be at least 1, got {self.batch_size}")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def fitted_contract(predictor: Any) -> ExtractionContract | None:
    """The contract a fitted predictor's training rows were made under; None for models fitted on rows
    without one (hand-built tables, models from before contracts), which are checked by schema only."""
    data = getattr(predictor, "contract_", None)
    return None if data is None else ExtractionContract.from_dict(data)


def table_contract(table: pd.DataFrame) -> ExtractionContract | None:
    """The one contract of a feature table's rows (None when it has no `contract` column); a table mixing
    contracts, or rows with and without one, is refused: no model can be fed both kinds of row."""
    if CONTRACT_COLUMN not in table:
        return None
    names = table["checkpoint"] if "checkpoint" in table else pd.Series(range(len(table)), dtype=object)
    first_of: dict[str | None, str] = {}  # contract -> the first checkpoint made under it
    for name, text in zip(names, table[CONTRACT_COLUMN], strict=True):
        first_of.setdefault(text if isinstance(text, str) else None, str(name))
    if len(first_of) <= 1:
        text = next(iter(first_of), None)
        return None if text is None else ExtractionContract.from_json(text)
    (a, first), (b, second) = list(first_of.items())[:2]
    if a is None or b is None:
        detail = f"{first if a is None else second} has none, {second if a is None else first} has one"
    else:
        diff = ExtractionContract.from_json(a).differences(ExtractionContract.from_json(b))
        detail = ", ".join(f"{n}={_show(x)} ({first}) vs {_show(y)} ({second})" for n, (x, y) in diff.items())
    raise HeadcastError(
        f"the feature table mixes {len(first_of)} extraction contracts ({detail}); "
        "re-extract every checkpoint with the same 'headcast extract' settings"
    )


def contracts_from_settings(
    settings: Mapping[str, Mapping[str, Any]], checkpoints: Sequence[str]
) -> list[str] | None:
    """Per checkpoint, the contract JSON that a feature file from before contracts implies through its
    Parquet metadata (`query`, `dtype`, `probe_set_hash`, `metrics_version`, thresholds); None when any
    checkpoint's settings lack them, e.g. a hand-built table."""
    needed = ("query", "dtype", "probe_set_hash", "metrics_version")
    found = [settings.get(c) for c in checkpoints]
    records = [r for r in found if isinstance(r, Mapping) and all(k in r for k in needed)]
    if not records or len(records) < len(found):
        return None
    default = VisualHeadThresholds()
    return [
        ExtractionContract.from_settings(
            r,
            VisualHeadThresholds(
                r.get("visual_mass_threshold", default.visual_mass),
                r.get("concentration_threshold", default.concentration),
            ),
        ).to_json()
        for r in records
    ]


def extraction_options(
    fitted: ExtractionContract | None, query: str | None, dtype: str = "auto"
) -> tuple[QueryPosition, str, VisualHeadThresholds]:
    """Query, dtype and thresholds to extract with for a model fitted under `fitted`: the model's own
    unless asked otherwise, and asking for a conflicting one is an error (the row could not be used)."""
    if fitted is None:
        return query_position(query or "last-prompt"), dtype, VisualHeadThresholds()
    for name, asked, own in (("query", query, fitted.query), ("dtype", dtype, fitted.dtype)):
        if asked not in (None, "auto", own):
            raise HeadcastError(
                f"{name}={asked} was asked for but the model was fitted on features extracted with "
                f"{name}={own}; leave the {name} out to use the model's, or refit on features extracted "
                f"with {_OPTIONS[name]} {asked}"
            )
    return query_position(fitted.query), fitted.dtype, fitted.thresholds


def check_probe_set(fitted: ExtractionContract | None, probe_set_hash: str, source: str) -> None:
    """Features from another probe set are other features: refuse them before minutes of extraction."""
    if fitted is not None and probe_set_hash != fitted.probe_set_hash:
        raise HeadcastError(
            f"{source} is probe set {probe_set_hash} but the model was fitted on features of probe set "
            f"{fitted.probe_set_hash}; pass the probe file the model's training features were extracted from"
        )
