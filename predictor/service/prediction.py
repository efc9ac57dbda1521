"""Feature rows in, predicted scores out, through `predict_rows` (the pyfunc's one prediction path)."""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
from threadpoolctl import ThreadpoolController

from headcast.errors import HeadcastError
from headcast.predictor.predicting import FittedModel
from headcast.predictor.pyfunc import predict_rows, prediction_json
from headcast.predictor.service.schemas import NON_FEATURES


@functools.cache
def _threadpools():

    return ThreadpoolController()


def _one_openmp_thread():
    """Requests run in parallel threads; OpenMP teams inside each (e.g. kneighbors) oversubscribe the
    CPU several-fold on small machines. The OpenMP limit is per thread, so a job's torch keeps its own."""
    return _threadpools().limit(limits=1, user_api="openmp")


def predict_table(model: FittedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predict feature rows; unknown columns and values the model cannot take are HeadcastErrors."""
    known = (
        set(model.predictor.feature_names_)
        | set(getattr(model.predictor, "answer_columns_", []))
        | NON_FEATURES
    )
    unknown = sorted({name for row in rows for name in row} - known)
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise HeadcastError(
            f"unknown feature column(s) {', '.join(map(repr, unknown[:3]))}{more}; "
            f"the model expects the {len(known) - len(NON_FEATURES)} columns of schema "
            f"{model.info['feature_schema_version']!r}"
        )
    try:
        with _one_openmp_thread():
            predictions = predict_rows(model.predictor, pd.DataFrame(rows))
    except (ValueError, TypeError) as err:  # e.g. values the scaler cannot take
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise HeadcastError(f"the features could not be used ({reason})") from None
    return prediction_json(predictions, model.predictor.benchmarks_)
