"""Request bodies: pydantic models that refuse unknown fields, and how their errors read.

A feature row is checked value by value here (numbers or null, finite), so that what reaches the
predictor is a table it can take; whether its columns fit the model is `prediction.py`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from headcast.schema import CONTRACT_COLUMN

NON_FEATURES = {"checkpoint", "schema_version", CONTRACT_COLUMN}  # a feature table's non-feature columns
Query = Literal["last-prompt", "first-generated", "answer-mean"]


def _check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    for name, value in row.items():
        if name in NON_FEATURES:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}.{name} must be a string")
            continue
        if value is None:
            continue  # a missing feature (e.g. no probe has a box): imputed like in training
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{name} must be a number or null, got {type(value).__name__}")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise ValueError(f"{where}.{name} must be a finite number (use null for a missing value)")
    return row


class PredictRequest(BaseModel):
    """One feature row (`features`) or several (`rows`), as `headcast extract` writes them.

    How many rows one request may hold is the app's `--max-rows`, checked by the route."""

    model_config = ConfigDict(extra="forbid")
    features: dict[str, Any] | None = Field(default=None, description="one feature row: name -> number")
    rows: list[dict[str, Any]] | None = Field(default=None, min_length=1, description="feature rows")

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.features is None) == (self.rows is None):
            raise ValueError("send exactly one of 'features' (one row) or 'rows' (a list of rows)")
        for i, row in enumerate(self.feature_rows()):
            _check_row(row, "features" if self.features is not None else f"rows[{i}]")
        return self

    def feature_rows(self) -> list[dict[str, Any]]:
        """The request's rows: `rows`, or `features` as the one row."""
        if self.rows is not None:
            return self.rows
        return [] if self.features is None else [self.features]


class JobRequest(BaseModel):
    """A checkpoint folder and a probe set, both inside one of the service's roots."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str = Field(min_length=1, max_length=4096, description="checkpoint folder")
    probes: str = Field(min_length=1, max_length=4096, description="probe set JSONL file")
    anchors: str | None = Field(
        None, min_length=1, max_length=4096, description="anchor probe file of a hybrid model (optional)"
    )
    query: Query | None = Field(None, description="query position; default: the model's (its contract)")

    @field_validator("checkpoint", "probes", "anchors")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class ScheduleRequest(BaseModel):
    """A training run's next checkpoint (its feature row at `step`), and real scores that came back since."""

    model_config = ConfigDict(extra="forbid")
    run: str = Field(min_length=1, max_length=256, description="the training run, named by the client")
    step: int = Field(ge=0, description="the checkpoint's training step; steps of a run only grow")
    checkpoints: int = Field(ge=1, le=100_000, description="how many checkpoints the run will have")
    features: dict[str, Any] = Field(description="the checkpoint's feature row: name -> number")
    scores: dict[int, dict[str, float]] = Field(
        default_factory=dict,
        description="real scores of earlier evaluated steps: step -> benchmark -> percent",
    )

    @model_validator(mode="after")
    def _checked(self) -> ScheduleRequest:
        _check_row(self.features, "features")
        for step, scores in self.scores.items():
            for benchmark, score in scores.items():
                if not (math.isfinite(score) and 0 <= score <= 100):
                    raise ValueError(f"scores.{step}.{benchmark} must be a percentage in [0, 100]")
        return self


def validation_message(errors: Sequence[dict]) -> str:
    """Pydantic's errors as one line: `where: what` for the first five."""
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
