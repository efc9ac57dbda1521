"""The served model: loaded once, pinned to the registry version its alias named at startup.

Pinning matters because the alias moves when `headcast fit` registers a new champion: `/model`
must describe the model that answers, so a restart is what switches versions.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from headcast.errors import HeadcastError
from headcast.predictor.predicting import FittedModel, resolve_model
from headcast.predictor.service.errors import ServiceError, one_line

log = logging.getLogger("headcast.serve")

MODEL_RETRY_SECONDS = 5.0  # how often a missing model is looked for again


class ModelSlot:
    """The served model, loaded at startup; when missing, looked for again on later requests."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._model: FittedModel | None = None
        self._error = f"no model loaded from {uri} yet"
        self._tried = -math.inf
        self._lock = threading.Lock()

    def get(self) -> FittedModel:
        """The model, or a 404 that says how to make one (at most one registry lookup per retry period)."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None and time.monotonic() - self._tried >= MODEL_RETRY_SECONDS:
                self._tried = time.monotonic()
                try:
                    self._model = resolve_model(self.uri)
                except HeadcastError as err:
                    self._error = str(err)
                except Exception as err:  # e.g. a pickle of another headcast: traceback to the log
                    log.exception("cannot load model %s", self.uri)
                    self._error = f"cannot load model {self.uri} (internal error: {one_line(err)})"
            if self._model is None:
                raise ServiceError(404, self._error)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None
