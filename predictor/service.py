"""`headcast serve`: predicted benchmark scores over HTTP, for other tools to call.

    GET  /health          liveness, and whether a model is loaded
    GET  /model           the served model: registered name, version, alias, schema, benchmarks
    POST /predict         {"features": {...}} or {"rows": [...]}: scores, intervals, OOD flag
    POST /jobs            {"checkpoint": PATH, "probes": PATH}: extraction + prediction, queued
                          (with the model's extraction contract: its query, thresholds, dtype, probe set)
    GET  /jobs/{id}       status, progress and, when done, the prediction
    GET  /docs            OpenAPI (FastAPI's usual place; the schema is at /openapi.json)

Bad input is a 4xx whose body names the problem, never a 500: request bodies are pydantic models
that forbid unknown fields, bodies over `MAX_BODY_BYTES` are refused with 413, paths outside every
`--root` (after resolving `..` and symlinks) with 403, and a missing model with 404 saying how to
make one. Torch is imported only by the job worker, so the service starts in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from extract.contract import (
    CONTRACT_COLUMN,
    ExtractionContract,
    check_probe_set,
    extraction_options,
    fitted_contract,
)
from extract.errors import HeadcastError
from extract.features import CONFIDENCE_PREFIX, FEATURE_SCHEMA_VERSION
from predictor.cli import DEFAULT_MODEL, load_model
from predictor.pyfunc import predict_rows, prediction_json

log = logging.getLogger("headcast.serve")

MAX_BODY_BYTES = 1 << 20  # a feature row is ~3 KB; 1 MiB allows a few hundred rows
MAX_ROWS = 256
MAX_PENDING_JOBS = 32
KEPT_JOBS = 1000  # finished jobs remembered for GET /jobs/{id}
MODEL_RETRY_SECONDS = 5.0  # how often a missing model is looked for again
NON_FEATURES = {"checkpoint", "schema_version", CONTRACT_COLUMN}  # a feature table's non-feature columns
Query = Literal["last-prompt", "first-generated", "answer-mean"]


class ServiceError(Exception):
    """An HTTP error with a one-line message; the handler turns it into `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------- model


@dataclasses.dataclass(frozen=True)
class ServedModel:
    predictor: Any  # the fitted HeadcastPredictor inside the pyfunc model
    info: dict[str, Any]

    @property
    def contract(self) -> ExtractionContract | None:
        """How the model's training rows were made: what request rows and jobs must match."""
        return fitted_contract(self.predictor)


def _resolve_registered(uri: str) -> tuple[str, dict[str, Any]]:
    """Pin `models:/name@alias` to its current version, so the info describes what was loaded."""
    info: dict[str, Any] = {"uri": uri, "registered_name": None, "version": None, "alias": None}
    if not uri.startswith("models:/"):
        return uri, info
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from predictor.tracking import configure_tracking

    configure_tracking()
    rest = uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
            info["alias"] = alias
        else:
            name, number = rest.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise HeadcastError(
            f"no model at {uri} ({reason}); run 'headcast fit' or 'headcast demo' first"
        ) from None
    info |= {
        "registered_name": name,
        "version": str(version.version),
        "run_id": version.run_id,
        "tags": dict(version.tags),
    }
    return f"models:/{name}/{version.version}", info


def load_served_model(uri: str) -> ServedModel:
    """Load the pyfunc model once and describe it; raises HeadcastError when there is none."""
    pinned, info = _resolve_registered(uri)
    pyfunc = load_model(pinned)
    predictor = pyfunc.unwrap_python_model().predictor
    tags = info.pop("tags", {})
    info |= {
        "feature_schema_version": tags.get("feature_schema_version", FEATURE_SCHEMA_VERSION),
        "benchmarks": list(predictor.benchmarks_),
        "features": len(predictor.feature_names_),
    }
    contract = fitted_contract(predictor)
    info["extraction_contract"] = None if contract is None else contract.to_dict()
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
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None and time.monotonic() - self._tried >= MODEL_RETRY_SECONDS:
                self._tried = time.monotonic()
                try:
                    self._model = load_served_model(self.uri)
                except HeadcastError as err:
                    self._error = str(err)
            if self._model is None:
                raise ServiceError(404, self._error)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None


# ----------------------------------------------------------------------------------------- prediction


def _check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    for name, value in row.items():
        if name in NON_FEATURES:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{where}.{name} must be a string")
            continue
        if value is None:
            continue  # a missing feature (e.g. no probe has a box): imputed like in training
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{name} must be a number or null, got {type(value).__name__}")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise ValueError(f"{where}.{name} must be a finite number (use null for a missing value)")
    return row


class PredictRequest(BaseModel):
    """One feature row (`features`) or several (`rows`), as `headcast extract` writes them."""

    model_config = ConfigDict(extra="forbid")
    features: dict[str, Any] | None = Field(default=None, description="one feature row: name -> number")
    rows: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.features is None) == (self.rows is None):
            raise ValueError("send exactly one of 'features' (one row) or 'rows' (a list of rows)")
        for i, row in enumerate(self.rows or [self.features]):
            _check_row(row, "features" if self.features is not None else f"rows[{i}]")
        return self


_controller = None


def _one_openmp_thread():
    """Requests run in parallel threads; OpenMP teams inside each (e.g. kneighbors) oversubscribe the
    CPU several-fold on small machines. The OpenMP limit is per thread, so a job's torch keeps its own."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="openmp")


def predict_table(model: ServedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predict feature rows through `predict_rows`, the one prediction path; bad rows are HeadcastErrors."""
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
        raise HeadcastError(f"the features could not be used ({str(err).splitlines()[0][:200]})") from None
    return prediction_json(predictions, model.predictor.benchmarks_)


# ----------------------------------------------------------------------------------------------- jobs


class JobRequest(BaseModel):
    """A checkpoint folder and a probe set, both inside one of the service's roots."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str = Field(min_length=1, max_length=4096, description="checkpoint folder")
    probes: str = Field(min_length=1, max_length=4096, description="probe set JSONL file")
    anchors: str | None = Field(
        None, min_length=1, max_length=4096, description="anchor probe file of a hybrid model (optional)"
    )
    query: Query | None = Field(None, description="query position; default: the model's (its contract)")

    @field_validator("checkpoint", "probes", "anchors")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


def inside_roots(raw: str | Path, roots: Sequence[Path], what: str) -> Path:
    """`raw` resolved (relative paths against the first root); 403 unless it lies inside a root."""
    try:
        resolved = (roots[0] / Path(raw)).resolve()
    except (OSError, ValueError, RuntimeError) as err:
        raise ServiceError(422, f"{what} path {str(raw)[:200]!r} cannot be resolved ({err})") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ServiceError(
            403, f"{what} path {str(raw)[:200]!r} is outside the served roots; start the service with --root"
        )
    return resolved


def _probe_images_inside(probes: Path, roots: Sequence[Path]) -> None:
    """Probe images are relative to the JSONL file; one that leads out of the roots is refused too."""
    with probes.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # read_probes names malformed lines
            if isinstance(item, dict) and isinstance(item.get("image"), str):
                inside_roots(probes.parent / item["image"], roots, f"probes line {number}: image")


@dataclasses.dataclass
class Job:
    id: str
    checkpoint: str
    probes: str
    query: str
    anchors: str | None = None
    status: Literal["queued", "running", "done", "failed"] = "queued"
    stage: str = "queued"
    done: int = 0
    total: int = 0
    submitted: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    run_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["progress"] = {"stage": body.pop("stage"), "done": body.pop("done"), "total": body.pop("total")}
        return body


class JobQueue:
    """Extraction + prediction jobs, one at a time on the device (a single worker thread), FIFO."""

    def __init__(
        self,
        slot: ModelSlot,
        device: str = "auto",
        dtype: str = "auto",
        experiment: str = "headcast-serve",
        batch_size: int = 8,
        max_pending: int = MAX_PENDING_JOBS,
    ) -> None:
        self.slot, self.device, self.dtype = slot, device, dtype
        self.experiment, self.batch_size, self.max_pending = experiment, batch_size, max_pending
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"headcast-jobs-{device}")

    def submit(self, checkpoint: Path, probes: Path, query: str, anchors: Path | None = None) -> Job:
        with self._lock:
            pending = sum(job.status == "queued" for job in self._jobs.values())
            if pending >= self.max_pending:
                raise ServiceError(429, f"{pending} jobs are already queued; try again later")
            job = Job(uuid.uuid4().hex, str(checkpoint), str(probes), query, anchors and str(anchors))
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(self._jobs) - KEPT_JOBS)]:
                del self._jobs[key]
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ServiceError(404, f"no job {job_id[:64]!r}; job ids come from POST /jobs")
        return job

    def position(self, job: Job) -> int:
        """How many jobs run or wait before this one."""
        with self._lock:
            ahead = list(self._jobs.values())
        return (
            sum(j.status in ("queued", "running") for j in ahead[: ahead.index(job)]) if job in ahead else 0
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        model, outcome = None, "failed"
        try:
            model = self.slot.get()
            job.result = self._extract_and_predict(job, model)
            outcome = "done"
        except (HeadcastError, ServiceError) as err:
            job.error = str(err)
        except Exception as err:  # a job must never take the worker down; the error goes to the client
            log.exception("job %s failed", job.id)
            job.error = f"{type(err).__name__}: {str(err)[:300]}"
        job.finished = time.time()
        try:
            job.run_id = self._log_run(job, model, outcome)
        except Exception:  # tracking trouble must not lose the result
            log.exception("could not log job %s to MLflow", job.id)
        job.status = job.stage = outcome  # last: a client that sees "done" also sees the run id

    def _extract_and_predict(self, job: Job, model: ServedModel) -> dict[str, Any]:
        from extract.pipeline import ExtractionSettings, extract_head_metrics
        from extract.probes import read_probes

        probes = read_probes(job.probes)
        job.total, job.stage = len(probes), "measuring"

        def on_batch(done: int, total: int) -> None:
            job.done = done

        query, dtype, thresholds = extraction_options(model.contract, job.query, self.dtype)
        settings = ExtractionSettings(query, self.batch_size, self.device, dtype, thresholds)
        metrics = extract_head_metrics(job.checkpoint, probes, settings, progress=False, on_batch=on_batch)
        job.done = len(probes)  # also when the cache answered
        job.stage = "predicting"
        contract = ExtractionContract.from_settings(metrics.settings, thresholds)
        features = {"schema_version": FEATURE_SCHEMA_VERSION, CONTRACT_COLUMN: contract.to_json()}
        features |= metrics.feature_row(thresholds)
        answers = {}
        if job.anchors is not None:  # one more small prefill: the answers on the anchor items
            from predictor.anchors import read_anchor_probes
            from predictor.hybrid import answer_row, unanswered_anchors

            anchors = read_anchor_probes(job.anchors)
            job.stage, job.done, job.total = "answering anchors", 0, len(anchors)
            answering = dataclasses.replace(settings, query="last-prompt")  # answer-mean gives no answers
            answered = extract_head_metrics(
                job.checkpoint, anchors, answering, progress=False, on_batch=on_batch
            )
            answers = answer_row(answered.answers)
            missing = unanswered_anchors(model.predictor, answers)
            if missing:
                raise HeadcastError(
                    f"the anchor file lacks {len(missing)} of the model's anchor items, e.g. {missing[0]!r}"
                )
        # a model fitted on head features alone has no use for the confidence columns: send what it reads
        known = set(model.predictor.feature_names_) | NON_FEATURES
        row = {k: v for k, v in features.items() if k in known or not k.startswith(CONFIDENCE_PREFIX)}
        prediction = predict_table(model, [row | answers])[0]
        return {
            "prediction": prediction,
            "model": {k: model.info[k] for k in ("uri", "registered_name", "version")},
            "features": {
                k: (v if isinstance(v, str) or math.isfinite(v) else None) for k, v in features.items()
            },
        }

    def _log_run(self, job: Job, model: ServedModel | None, outcome: str) -> str:
        """One MLflow run per finished job: params say what was asked, metrics what was predicted."""
        import mlflow  # noqa: F401  (configures the client's default store)
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        from predictor.tracking import configure_tracking, metric_key, use_experiment

        configure_tracking()
        client = MlflowClient()
        run = client.create_run(use_experiment(self.experiment), run_name=f"job-{job.id[:8]}")
        now = int(time.time() * 1000)
        params = {
            "checkpoint": job.checkpoint,
            "probes": job.probes,
            "query": job.query,
            "device": self.device,
        }
        if model is not None:
            params |= {"model_uri": model.info["uri"], "model_version": str(model.info["version"])}
        metrics = {"seconds": (job.finished or time.time()) - (job.started or job.submitted)}
        if job.result:
            for benchmark, p in job.result["prediction"].items():
                for name, value in (("", p["score"]), ("_lower", p["lower"]), ("_upper", p["upper"])):
                    if value is not None:
                        metrics[metric_key("pred", benchmark + name, sep="/")] = value
                metrics[metric_key("pred", benchmark + "_ood", sep="/")] = float(p["ood"])
            for name, value in job.result["features"].items():
                if isinstance(value, float):
                    metrics[metric_key("feature", name, sep="/")] = value
        tags = {"headcast.job_id": job.id, "headcast.status": outcome}
        if job.error:
            tags["headcast.error"] = job.error[:5000]
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED" if outcome == "done" else "FAILED")
        return run.info.run_id


# ------------------------------------------------------------------------------------------------ app


class BodyLimit:
    """ASGI middleware: read at most `max_bytes` of a request body, else answer 413 at once.

    The body is buffered (it is small by construction) and replayed, so chunked uploads without a
    Content-Length are bounded too, and no exception ever travels through the app.
    """

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._too_large(send)
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:
        body = json.dumps({"error": f"request body over {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _validation_message(errors: Sequence[dict]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")


def create_app(
    model_uri: str = DEFAULT_MODEL,
    roots: Sequence[str | Path] = (".",),
    device: str = "auto",
    dtype: str = "auto",
    experiment: str = "headcast-serve",
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The service as an ASGI app; `headcast serve` runs it under uvicorn."""
    resolved_roots = [Path(r).resolve() for r in roots]
    if not resolved_roots:
        raise HeadcastError("give at least one --root folder")
    slot = ModelSlot(model_uri)
    jobs = JobQueue(slot, device, dtype, experiment)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            slot.get()
        except ServiceError as err:  # keep serving /health; /predict explains what is missing
            log.warning("%s", err)
        yield
        jobs.shutdown()

    app = FastAPI(
        title="headcast",
        summary="Predicted benchmark scores of a multimodal LLM from its visual attention heads.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.slot, app.state.jobs, app.state.roots = slot, jobs, resolved_roots

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
        return JSONResponse({"error": _validation_message(errors), "detail": errors}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": slot.loaded}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        return slot.get().info

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        model = slot.get()
        rows = body.rows if body.rows is not None else [body.features]
        predictions = predict_table(model, rows)
        version = {"model_version": model.info["version"]}
        return version | (
            {"prediction": predictions[0]} if body.features is not None else {"predictions": predictions}
        )

    @app.post("/jobs", status_code=202)
    def submit_job(body: JobRequest) -> dict[str, Any]:
        model = slot.get()  # no minutes of extraction for a prediction that cannot be made
        checkpoint = inside_roots(body.checkpoint, resolved_roots, "checkpoint")
        probes = inside_roots(body.probes, resolved_roots, "probes")
        anchors = None if body.anchors is None else inside_roots(body.anchors, resolved_roots, "anchors")
        try:
            if not (checkpoint / "config.json").is_file():
                raise ServiceError(
                    404, f"checkpoint {body.checkpoint[:200]!r} is not a folder with a config.json"
                )
            if not probes.is_file():
                raise ServiceError(404, f"probe file {body.probes[:200]!r} does not exist")
            _probe_images_inside(probes, resolved_roots)
            if anchors is not None:
                if not anchors.is_file():
                    raise ServiceError(404, f"anchor file {body.anchors[:200]!r} does not exist")
                _probe_images_inside(anchors, resolved_roots)
        except OSError as err:  # e.g. a name too long, a folder we may not read
            raise ServiceError(422, f"cannot read {err.filename or 'the paths'} ({err.strerror})") from None
        # a query, dtype or probe set the model was not fitted on is a 422 now, not a failed job later
        query, _, _ = extraction_options(model.contract, body.query, jobs.dtype)
        if model.contract is not None:
            from extract.probes import probe_set_hash, read_probes

            check_probe_set(
                model.contract, probe_set_hash(read_probes(probes)), f"probe file {body.probes[:200]!r}"
            )
        job = jobs.submit(checkpoint, probes, query, anchors)
        return {"id": job.id, "status": job.status, "url": f"/jobs/{job.id}"}

    @app.get("/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        return job.as_json() | {"position": jobs.position(job)}

    return app


# ------------------------------------------------------------------------------------------------ CLI


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP (JSON)",
        description="An HTTP JSON service: /health, /model, /predict (feature rows) and /jobs "
        "(checkpoint + probes, extracted in the background). OpenAPI docs at /docs.",
    )
    parser = serve
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--root",
        action="append",
        type=Path,
        help="folder that job paths must lie in; repeatable (default: the current folder)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device for jobs")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    parser.add_argument("--experiment", default="headcast-serve", help="MLflow experiment of job runs")
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    parser.set_defaults(func=run_serve)
    return serve


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    roots = args.root or [Path.cwd()]
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise HeadcastError(f"--root {missing[0]} is not a folder")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "binding %s: the service has no authentication; anyone who can reach it can use it", args.host
        )
    app = create_app(args.model, roots, args.device, args.dtype, args.experiment)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
