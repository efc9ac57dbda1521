"""The MLflow pyfunc contract: a features DataFrame in, scores with bounds and an OOD flag out."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import joblib
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from headcast.contract import ExtractionContract, fitted_contract
from headcast.errors import HeadcastError
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION


class HeadcastModel(PythonModel):
    """Wraps a fitted `HeadcastPredictor`; rows of another schema or extraction contract are refused."""

    def load_context(self, context) -> None:
        self.predictor = joblib.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return predict_rows(self.predictor, model_input)


def predict_rows(predictor, rows: pd.DataFrame) -> pd.DataFrame:
    """Check schema, contract and columns, then predict; the one code path of the CLI, service, callback and
    pyfunc."""
    if "schema_version" in rows:
        versions = set(rows["schema_version"].dropna())
        if versions - {FEATURE_SCHEMA_VERSION}:
            raise HeadcastError(
                f"feature schema {sorted(versions)} does not match the model's {FEATURE_SCHEMA_VERSION!r}; "
                "re-extract the features with this headcast version"
            )
    check_contracts(predictor, rows)
    check_columns(predictor, rows.columns)
    features = _numbers(rows[predictor.feature_names_], "feature")
    answers = _numbers(rows.reindex(columns=getattr(predictor, "answer_columns_", [])), "answer")
    _check_answers(answers)
    return predictor.predict(pd.concat([features, answers], axis=1)).reset_index(drop=True)


def _numbers(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """`table` as floats; text or an infinity is refused, not turned into NaN (NaN itself means missing)."""
    if all(is_numeric_dtype(t) and not is_bool_dtype(t) for t in table.dtypes):
        numbers = table.astype(float)  # one block cast; `apply` below costs ~0.2 ms a column
    else:
        numbers = table.apply(pd.to_numeric, errors="coerce").astype(float)
    bad = (numbers.isna() & table.notna()) | numbers.isin([np.inf, -np.inf])
    if bad.to_numpy().any():
        row, column = next(zip(*bad.to_numpy().nonzero(), strict=True))
        value = table.iat[row, column]
        raise HeadcastError(
            f"{what} column {table.columns[column]!r} of row {row} is {value!r}, not a finite number; "
            "send the numbers 'headcast extract' wrote (null where a feature is undefined)"
        )
    return numbers


def check_columns(predictor, columns: Iterable[str]) -> None:
    """Every feature the model was fitted on is among `columns`; callers run this before MLflow's own schema
    check, whose message cuts the missing names off."""
    present = set(columns)
    missing = [c for c in predictor.feature_names_ if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:5])
        shown += f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise HeadcastError(
            f"{len(missing)} feature column(s) the model needs are missing: {shown}; pass full feature rows "
            "from 'headcast extract' on the model's probe set"
        )


def check_contracts(predictor, rows: pd.DataFrame) -> None:
    """Rows made under another extraction contract than the model's training rows are refused.

    A row without a contract (no `contract` column, or null) is taken on the caller's word, as are all
    rows of a model fitted without one; both are how headcast worked before contracts.
    """
    if getattr(predictor, "contract_", None) is None or CONTRACT_COLUMN not in rows:
        return
    fitted = fitted_contract(predictor)
    for text in rows[CONTRACT_COLUMN].dropna().unique():
        problem = contract_mismatch(text, fitted)
        if problem:
            raise HeadcastError(problem)


@functools.lru_cache(maxsize=256)
def contract_mismatch(text: str, fitted: ExtractionContract) -> str | None:
    """Why rows under the contract `text` do not suit `fitted` (None when they do); cached, since every row
    of a checkpoint, and every request of a client, repeats the same contract."""
    return ExtractionContract.from_json(text).mismatch(fitted)


def _check_answers(answers: pd.DataFrame) -> None:
    """Anchor answers are `correct` 0/1 and `prob` in [0, 1] (or missing): anything else is refused."""
    for column, values in answers.items():
        present = values.dropna()
        bad = ~present.isin([0, 1]) if str(column).startswith("correct[") else ~present.between(0, 1)
        if bad.any():
            raise HeadcastError(
                f"anchor answer column {column!r} holds {present[bad].iloc[0]!r}; correct[...] must be 0 or "
                "1 and prob[...] a probability in [0, 1], as 'headcast extract --answers' writes them"
            )


def _finite(value: float) -> float | None:
    return round(float(value), 3) if math.isfinite(float(value)) else None


def benchmarks_of(predictions: pd.DataFrame) -> list[str]:
    """The benchmark columns of a predictor's output (not its bounds, flags or answer marks)."""
    bounds = ("_lower", "_upper", "_answered")
    return [c for c in predictions.columns if c != "ood" and not c.endswith(bounds)]


def prediction_json(predictions: pd.DataFrame, benchmarks: Sequence[str]) -> list[dict[str, Any]]:
    """Per row `{benchmark: {score, lower, upper, ood[, answered]}}`: what the CLI and the service print.

    `answered` (hybrid models only): whether the benchmark's anchor items were answered and used.
    """
    return [
        {
            b: {
                "score": _finite(row[b]),
                "lower": _finite(row[f"{b}_lower"]),
                "upper": _finite(row[f"{b}_upper"]),
                "ood": bool(row["ood"]),
            }
            | ({"answered": bool(row[f"{b}_answered"])} if f"{b}_answered" in row else {})
            for b in benchmarks
        }
        for row in predictions.to_dict("records")  # plain dicts: iterrows builds a Series a row
    ]
