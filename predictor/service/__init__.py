"""`headcast serve`: predicted benchmark scores over HTTP, for other tools to call.

    GET  /health          liveness, and whether a model is loaded
    GET  /model           the served model: registered name, version, alias, schema, benchmarks
    POST /predict         {"features": {...}} or {"rows": [...]}: scores, intervals, OOD flag
    POST /schedule        {"run", "step", "checkpoints", "features", "scores"}: whether this training
                          checkpoint gets a full benchmark run now, why, and its estimate
    POST /jobs            {"checkpoint": PATH, "probes": PATH}: extraction + prediction, queued
                          (with the model's extraction contract: its query, thresholds, dtype, probe set)
    GET  /jobs/{id}       status, progress and, when done, the prediction
    GET  /docs            OpenAPI (FastAPI's usual place; the schema is at /openapi.json)

Bad input is a 4xx whose body names the problem, never a 500. Torch is imported only by the job
worker, so the service starts in seconds. One module per job, read in this order:

    limits.py       what a request or the queue may take (the `serve` options set them)
    errors.py       ServiceError: an HTTP status and a one-line message
    model.py        the served model, pinned to the registry version its alias named at startup
    schemas.py      request bodies (pydantic, unknown fields refused) and their error messages
    prediction.py   feature rows -> predicted scores, through the pyfunc's one prediction path
    batching.py     rows of concurrent /predict requests predicted together, on one thread
    schedules.py    the evaluation schedule of each training run posted to /schedule
    paths.py        job paths must lie inside a --root, images of the probe file included
    jobs.py         the job queue: one worker thread runs extraction + prediction, FIFO; the
                    SQLite JobStore that keeps jobs across restarts (--state-dir)
    job_runs.py     each finished job as an MLflow run
    middleware.py   the request body limit (413), chunked uploads included
    app.py          the FastAPI app: routes and error handlers
    cli.py          `headcast serve`: options, binding the port, uvicorn
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headcast.lazy import public_names

if TYPE_CHECKING:
    from headcast.predictor.service.app import create_app
    from headcast.predictor.service.errors import ServiceError
    from headcast.predictor.service.limits import Limits

# loaded on first use: `headcast serve --help` must not wait for FastAPI, MLflow and scikit-learn
_PUBLIC = {
    "create_app": "headcast.predictor.service.app",
    "ServiceError": "headcast.predictor.service.errors",
    "Limits": "headcast.predictor.service.limits",
}
__all__ = ["Limits", "ServiceError", "create_app"]

__getattr__ = public_names(__name__, _PUBLIC)
