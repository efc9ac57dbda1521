"""The MLflow pyfunc contract: a features DataFrame in, scores with bounds and an OOD flag out."""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import pandas as pd

from extract.errors import HeadcastError
from extract.features import FEATURE_SCHEMA_VERSION


class HeadcastModel(mlflow.pyfunc.PythonModel):
    """Wraps a fitted `HeadcastPredictor`; rows of another feature schema are refused."""

    def load_context(self, context) -> None:
        self.predictor = joblib.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return predict_rows(self.predictor, model_input)


def predict_rows(predictor, rows: pd.DataFrame) -> pd.DataFrame:
    """Check schema and columns, then predict; the one code path of the CLI, service and pyfunc."""
    if "schema_version" in rows:
        versions = set(rows["schema_version"].dropna())
        if versions - {FEATURE_SCHEMA_VERSION}:
            raise HeadcastError(
                f"feature schema {sorted(versions)} does not match the model's {FEATURE_SCHEMA_VERSION!r}; "
                "re-extract the features with this headcast version"
            )
    missing = [c for c in predictor.feature_names_ if c not in rows]
    if missing:
        raise HeadcastError(
            f"{len(missing)} feature column(s) missing, e.g. {missing[0]!r}; "
            "pass a full feature row from 'headcast extract'"
        )
    features = rows[predictor.feature_names_].apply(pd.to_numeric, errors="coerce")
    return predictor.predict(features).reset_index(drop=True)
