"""The MLflow model registry as headcast uses it: one owner for the names, the store, loading and tags.

`headcast fit` registers its best predictor as `REGISTERED_NAME` and points the alias `CHAMPION` at it;
`predict`, `serve` and the training callback load `DEFAULT_MODEL` unless told otherwise. Each version
carries tags (`VERSION_TAGS`) that describe it without loading it. MLflow is imported when a function
here is called, not when the module is, so command-line parsing stays quick.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headcast.errors import HeadcastError

REGISTERED_NAME = "headcast-predictor"
CHAMPION = "champion"
DEFAULT_MODEL = f"models:/{REGISTERED_NAME}@{CHAMPION}"
DEFAULT_STORE = Path("mlruns")

SCHEMA_TAG = "feature_schema_version"  # the feature schema the version was fitted on
BENCHMARKS_TAG = "benchmarks"  # comma-separated benchmarks it predicts
CONTRACT_TAG = "extraction_contract"  # JSON of the extraction contract, when it has one
VERSION_TAGS = (SCHEMA_TAG, BENCHMARKS_TAG, CONTRACT_TAG)
HOW_TO_MAKE_ONE = "run 'headcast fit' or 'headcast demo' first"


def configure_tracking() -> str:
    """Point MLflow at `$MLFLOW_TRACKING_URI`, else at the SQLite store under `mlruns/`."""
    # here, not at the top: loads MLflow only when this runs
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        DEFAULT_STORE.mkdir(exist_ok=True)
        uri = f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load_model(uri: str) -> Any:
    """The pyfunc model behind `uri`, or a one-line HeadcastError saying how to make one."""
    # here, not at the top: loads MLflow only when this runs
    import mlflow
    from mlflow.exceptions import MlflowException

    configure_tracking()
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as err:
        raise HeadcastError(f"cannot load model {uri} ({_reason(err)}); {HOW_TO_MAKE_ONE}") from None


def fitted_predictor(pyfunc_model: Any) -> Any:
    """The fitted HeadcastPredictor (or HybridPredictor) inside a loaded pyfunc model; a model that
    holds none (another flavour, another python model) is a one-line HeadcastError."""
    # here, not at the top: loads MLflow only when this runs
    from mlflow.exceptions import MlflowException

    try:
        predictor = pyfunc_model.unwrap_python_model().predictor
    except (MlflowException, AttributeError) as err:
        raise HeadcastError(
            f"the model is not a headcast predictor ({_reason(err)}); {HOW_TO_MAKE_ONE}"
        ) from None
    if not hasattr(predictor, "feature_names_"):
        raise HeadcastError(f"the model holds a {type(predictor).__name__}, not a fitted headcast predictor")
    return predictor


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version, as the registry describes it."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        """The version's own URI: loading it gives this version even after the alias moves on."""
        return f"models:/{self.name}/{self.version}"


def pin(uri: str) -> RegisteredVersion | None:
    """The version a `models:/name@alias` or `models:/name/N` URI points at now; None for other URIs
    (runs:/, paths), which name a fixed model already. A URI the registry does not know is a
    HeadcastError saying how to make one."""
    if not uri.startswith("models:/"):
        return None
    # here, not at the top: loads MLflow only when this runs
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    configure_tracking()
    rest, alias = uri.removeprefix("models:/"), None
    client = MlflowClient()
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = rest.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as err:
        raise HeadcastError(f"no model at {uri} ({_reason(err)}); {HOW_TO_MAKE_ONE}") from None
    return RegisteredVersion(name, str(version.version), alias, version.run_id, dict(version.tags))


def crown(version: str, benchmarks: Sequence[str], schema: str, contract_json: str | None = None) -> None:
    """Tag a freshly registered version of `REGISTERED_NAME` and make it the champion."""
    # here, not at the top: loads MLflow only when this runs
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    tags = {SCHEMA_TAG: schema, BENCHMARKS_TAG: ",".join(benchmarks)}
    if contract_json is not None:
        tags[CONTRACT_TAG] = contract_json
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_NAME, version, key, value)
    client.set_registered_model_alias(REGISTERED_NAME, CHAMPION, version)
