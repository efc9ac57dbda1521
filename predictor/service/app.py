"""The FastAPI app: routes, and the handlers that turn every refusal into `{"error": one line}`.

Bad input is a 4xx whose body names the problem, never a 500: ServiceError carries its status,
HeadcastError (bad rows, a contract mismatch, a malformed probe file) is a 422, and pydantic's
validation errors are summed up on one line without echoing the input.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from headcast.contract import check_probe_set, extraction_options
from headcast.errors import HeadcastError
from headcast.extract import probe_set_hash, read_probes
from headcast.predictor.registry import DEFAULT_MODEL
from headcast.predictor.schedule import EvaluationScheduler
from headcast.predictor.service.batching import RowBatcher
from headcast.predictor.service.errors import ServiceError
from headcast.predictor.service.jobs import JobQueue, JobStore
from headcast.predictor.service.limits import Limits
from headcast.predictor.service.middleware import BodyLimit
from headcast.predictor.service.model import ModelSlot
from headcast.predictor.service.paths import job_paths
from headcast.predictor.service.prediction import check_rows, predict_many
from headcast.predictor.service.schedules import RunSchedules
from headcast.predictor.service.schemas import JobRequest, PredictRequest, ScheduleRequest, validation_message
from headcast.scale import RayOptions

log = logging.getLogger("headcast.serve")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, err: ServiceError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(HeadcastError)
    async def _headcast_error(request: Request, err: HeadcastError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        # no echo of the input: it may hold NaN (not JSON) or a megabyte of text
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in err.errors()]
        return JSONResponse({"error": validation_message(errors), "detail": errors}, status_code=422)


def create_app(
    model_uri: str = DEFAULT_MODEL,
    roots: Sequence[str | Path] = (".",),
    device: str = "auto",
    dtype: str = "auto",
    experiment: str = "headcast-serve",
    limits: Limits | None = None,
    state_dir: str | Path | None = None,
    scheduler: EvaluationScheduler | None = None,
    ray: RayOptions | None = None,
) -> FastAPI:
    """The service as an ASGI app; `headcast serve` runs it under uvicorn.

    `state_dir`: where the jobs are kept (`jobs.sqlite`) across restarts; None keeps them in memory.
    `scheduler`: a fitted `EvaluationScheduler` for POST /schedule (without one, that route answers 409).
    `ray`: measure each job in a task on this Ray cluster instead of on `device` here.
    """
    limits = limits or Limits()
    resolved_roots = [Path(r).resolve() for r in roots]
    if not resolved_roots:
        raise HeadcastError("give at least one --root folder")
    slot = ModelSlot(model_uri)
    store = None if state_dir is None else JobStore(Path(state_dir) / "jobs.sqlite")
    jobs = JobQueue(slot, device, dtype, experiment, limits, store, ray)
    batcher = RowBatcher(predict_many, limits.max_rows)
    schedules = RunSchedules(scheduler, limits.keep_runs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            slot.get()
        except ServiceError as err:  # keep serving /health; /predict explains what is missing
            log.warning("%s", err)
        yield
        jobs.shutdown()
        batcher.close()

    app = FastAPI(
        title="headcast",
        summary="Predicted benchmark scores of a multimodal LLM from its visual attention heads.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.state.slot, app.state.jobs, app.state.roots, app.state.limits = slot, jobs, resolved_roots, limits
    _add_error_handlers(app)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": slot.loaded}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        return slot.get().info

    @app.post("/predict", response_model=None)
    async def predict(body: PredictRequest) -> JSONResponse:
        rows = body.feature_rows()
        if len(rows) > limits.max_rows:
            raise ServiceError(
                422, f"rows: {len(rows)} rows in one request, at most {limits.max_rows}; send them in parts"
            )
        model = slot.get()
        check_rows(model, rows)  # a bad row is this request's 422, before it joins a batch
        predictions = await batcher.predict(model, rows)
        version = {"model_version": model.info["version"]}
        return JSONResponse(  # the dict as it is: FastAPI's jsonable_encoder walk costs more than the JSON
            version
            | ({"prediction": predictions[0]} if body.features is not None else {"predictions": predictions})
        )

    @app.post("/jobs", status_code=202)
    def submit_job(body: JobRequest) -> dict[str, Any]:
        model = slot.get()  # no minutes of extraction for a prediction that cannot be made
        paths = job_paths(body, resolved_roots)
        # a query, dtype or probe set the model was not fitted on is a 422 now, not a failed job later
        query, _, _ = extraction_options(model.contract, body.query, jobs.dtype)
        if model.contract is not None:
            where = f"probe file {body.probes[:200]!r}"
            check_probe_set(model.contract, probe_set_hash(read_probes(paths.probes)), where)
        job = jobs.submit(paths.checkpoint, paths.probes, query, paths.anchors)
        return {"id": job.id, "status": job.status, "url": f"/jobs/{job.id}"}

    @app.post("/schedule")
    def schedule(body: ScheduleRequest) -> dict[str, Any]:
        return schedules.decide(slot.get(), body)

    @app.get("/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        return job.as_json() | {"position": jobs.position(job)}

    return app
