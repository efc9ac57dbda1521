"""The served model: loaded once, pinned to the registry version its alias named at startup.

Pinning matters because the alias moves when `headcast fit` registers a new champion: `/model`
must describe the model that answers, so a restart is what switches versions.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from typing import Any

from headcast.contract import ExtractionContract, fitted_contract
from headcast.errors import HeadcastError
from headcast.predictor.registry import SCHEMA_TAG, fitted_predictor, load_model, pin
from headcast.predictor.service.errors import ServiceError, one_line
from headcast.schema import FEATURE_SCHEMA_VERSION

log = logging.getLogger("headcast.serve")

MODEL_RETRY_SECONDS = 5.0  # how often a missing model is looked for again


@dataclasses.dataclass(frozen=True)
class ServedModel:
    predictor: Any  # the fitted HeadcastPredictor inside the pyfunc model
    info: dict[str, Any]  # what GET /model answers

    @property
    def contract(self) -> ExtractionContract | None:
        """How the model's training rows were made: what request rows and jobs must match."""
        return fitted_contract(self.predictor)


def load_served_model(uri: str) -> ServedModel:
    """Load the pyfunc model once and describe it; raises HeadcastError when there is none."""
    version = pin(uri)
    predictor = fitted_predictor(load_model(version.uri if version else uri))
    tags = version.tags if version else {}
    contract = fitted_contract(predictor)
    info = {
        "uri": uri,
        "registered_name": version and version.name,
        "version": version and version.version,
        "alias": version and version.alias,
        "run_id": version and version.run_id,
        "feature_schema_version": tags.get(SCHEMA_TAG, FEATURE_SCHEMA_VERSION),
        "extraction_contract": None if contract is None else contract.to_dict(),
        "benchmarks": list(predictor.benchmarks_),
        "features": len(predictor.feature_names_),
    }
    return ServedModel(predictor, info)


class ModelSlot:
    """The served model, loaded at startup; when missing, looked for again on later requests."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._model: ServedModel | None = None
        self._error = f"no model loaded from {uri} yet"
        self._tried = -math.inf
        self._lock = threading.Lock()

    def get(self) -> ServedModel:
        """The model, or a 404 that says how to make one (at most one registry lookup per retry period)."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None and time.monotonic() - self._tried >= MODEL_RETRY_SECONDS:
                self._tried = time.monotonic()
                try:
                    self._model = load_served_model(self.uri)
                except HeadcastError as err:
                    self._error = str(err)
                except (
                    Exception
                ) as err:  # e.g. a pickle from another headcast: one line, traceback in the log
                    log.exception("cannot load model %s", self.uri)
                    self._error = f"cannot load model {self.uri} (internal error: {one_line(err)})"
            if self._model is None:
                raise ServiceError(404, self._error)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None
