"""Checkpoints to predicted scores with a registered model: the path `predict` and `predict-runs` share.

Extraction follows the model's extraction contract (its query, thresholds, dtype and probe set, checked
before any work); with an anchor file the checkpoints also answer the model's anchor items in one more
small prefill, and benchmarks whose anchors are all answered get the anchored estimate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from headcast.contract import check_probe_set, extraction_options, fitted_contract
from headcast.errors import HeadcastError
from headcast.predictor.registry import fitted_predictor


def with_answers(answers: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The feature table with each checkpoint's anchor answers joined as columns."""
    from headcast.predictor.hybrid import answer_columns

    wide = answer_columns(answers)
    return table.join(wide, on="checkpoint") if not wide.empty else table


def checkpoint_features(
    model: Any,
    checkpoints: Sequence[str | Path],
    probes: str | Path,
    anchors: str | Path | None = None,
    names: Sequence[str] | None = None,
    query: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Feature rows of `checkpoints` (with anchor answers when `anchors` is given), made as `model` needs."""
    from headcast.extract.pipeline import ExtractionSettings, answers_table, extract_features
    from headcast.extract.probes import probe_set_hash, read_probes

    predictor = fitted_predictor(model)
    fitted = fitted_contract(predictor)
    query, dtype, thresholds = extraction_options(fitted, query, dtype)
    probe_set = read_probes(probes)
    check_probe_set(fitted, probe_set_hash(probe_set), str(probes))
    settings = ExtractionSettings(query, device=device, dtype=dtype, thresholds=thresholds)
    table, _ = extract_features(checkpoints, probe_set, settings, names, progress)
    if anchors is None:
        return table
    from headcast.predictor.anchors import read_anchor_probes
    from headcast.predictor.hybrid import unanswered_anchors

    answering = dataclasses.replace(settings, query="last-prompt")  # answer-mean's input holds the answer
    _, metrics = extract_features(checkpoints, read_anchor_probes(anchors), answering, names, progress)
    table = with_answers(answers_table(metrics), table)
    missing = unanswered_anchors(predictor, table.columns)
    if missing:
        raise HeadcastError(
            f"{anchors} lacks {len(missing)} of the model's anchor items, e.g. {missing[0]!r}; "
            "write the file for this model with 'headcast fit --anchors-out'"
        )
    return table


def predict_table(model: Any, table: pd.DataFrame) -> pd.DataFrame:
    """The model's predictions for a feature table (`checkpoint` and feature columns), row by row."""
    from headcast.predictor.pyfunc import check_columns

    check_columns(fitted_predictor(model), table.columns)  # before MLflow's terser check
    try:
        return model.predict(table.drop(columns=["checkpoint"]))
    except HeadcastError:
        raise
    except Exception as err:  # MLflow's schema enforcement: name the problem, no traceback
        raise HeadcastError(
            f"the features do not fit the model's schema ({str(err).splitlines()[0][:200]})"
        ) from None
