"""Feature rows in, predicted scores out, through `predict_rows` (the pyfunc's one prediction path).

What tells one request's rows apart (their column names, schema and contract) is checked per request,
by `check_rows`; the numbers of many requests are then predicted in one call (`predict_many`, fed by
`batching.RowBatcher`): scikit-learn's per-call overhead makes 32 rows cost about what one does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from headcast.errors import HeadcastError
from headcast.predictor.predicting import FittedModel
from headcast.predictor.pyfunc import check_columns, predict_rows, prediction_json
from headcast.predictor.service.schemas import NON_FEATURES

Row = dict[str, Any]


@functools.cache
def _threadpools():

    return ThreadpoolController()


def _one_openmp_thread():
    """Requests run in parallel threads; OpenMP teams inside each (e.g. kneighbors) oversubscribe the
    CPU several-fold on small machines. The OpenMP limit is per thread, so a job's torch keeps its own."""
    return _threadpools().limit(limits=1, user_api="openmp")


@functools.lru_cache(maxsize=8)
def _columns_of(predictor: Any) -> tuple[frozenset[str], list[str], list[str]]:
    """(every column a row may hold, the feature columns, the anchor answer columns) of a predictor."""
    features, answers = list(predictor.feature_names_), list(getattr(predictor, "answer_columns_", []))
    return frozenset(features) | frozenset(answers) | NON_FEATURES, features, answers


def check_rows(model: FittedModel, rows: Sequence[Row]) -> None:
    """Refuse, per request, columns the model does not know or lacks; schema and contract follow in
    `predict_rows`, whose cached checks cost little more for a batch than for one row."""
    known, _, _ = _columns_of(model.predictor)
    present = set().union(*rows)
    unknown = sorted(present - known)
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise HeadcastError(
            f"unknown feature column(s) {', '.join(map(repr, unknown[:3]))}{more}; "
            f"the model expects the {len(known) - len(NON_FEATURES)} columns of schema "
            f"{model.info['feature_schema_version']!r}"
        )
    check_columns(model.predictor, present)


def row_frame(model: FittedModel, rows: Sequence[Row]) -> pd.DataFrame:
    """The rows as a table, built as one float block (a column a row lacks is NaN, as in `DataFrame(rows)`);
    `DataFrame(list of dicts)` costs about 1 ms a request."""
    _, features, answers = _columns_of(model.predictor)
    present = set().union(*rows)
    numeric = features + [c for c in answers if c in present]
    try:
        block = np.array([[row.get(c) for c in numeric] for row in rows], dtype=float)
    except (TypeError, ValueError):  # text: `predict_rows` names the value and its row
        return pd.DataFrame(list(rows))
    frame = pd.DataFrame(block, columns=numeric)
    for column in sorted(NON_FEATURES & present):
        frame[column] = pd.Series([row.get(column) for row in rows], dtype=object)
    return frame


def _predict_frame(model: FittedModel, frame: pd.DataFrame) -> list[Row]:
    try:
        predictions = predict_rows(model.predictor, frame)
    except (ValueError, TypeError) as err:  # e.g. values the scaler cannot take
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise HeadcastError(f"the features could not be used ({reason})") from None
    return prediction_json(predictions, model.predictor.benchmarks_)


def predict_table(model: FittedModel, rows: list[Row]) -> list[Row]:
    """Predict feature rows; unknown columns and values the model cannot take are HeadcastErrors."""
    check_rows(model, rows)
    with _one_openmp_thread():
        return _predict_frame(model, row_frame(model, rows))


def predict_many(model: FittedModel, requests: Sequence[list[Row]]) -> list[list[Row] | HeadcastError]:
    """Each request's predictions (or its HeadcastError), from one predict call when every row can be used;
    when one cannot, each request is predicted on its own, so a bad row fails its own request only."""
    try:
        flat = _predict_frame(model, row_frame(model, [row for rows in requests for row in rows]))
    except HeadcastError:
        if len(requests) == 1:
            raise
        return [_one_request(model, rows) for rows in requests]
    answers: list[list[Row] | HeadcastError] = []
    start = 0
    for rows in requests:
        answers.append(flat[start : start + len(rows)])
        start += len(rows)
    return answers


def _one_request(model: FittedModel, rows: list[Row]) -> list[Row] | HeadcastError:
    try:
        return _predict_frame(model, row_frame(model, rows))
    except HeadcastError as err:
        return err
