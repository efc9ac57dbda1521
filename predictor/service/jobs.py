"""The job queue: extraction + prediction of a checkpoint, one job at a time on the device, FIFO.

A job's failure is a one-line message for the client: headcast's own (HeadcastError) when the input
is at fault, else `internal error: <type>: <first line>`, with the traceback in the server's log only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from headcast.errors import HeadcastError
from headcast.predictor.predicting import FittedModel, PredictionPipeline
from headcast.predictor.service.errors import ServiceError, one_line
from headcast.predictor.service.job_runs import log_job_run
from headcast.predictor.service.limits import Limits
from headcast.predictor.service.model import ModelSlot

log = logging.getLogger("headcast.serve")


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
    """Jobs in submission order on a single worker thread (the device does one extraction at a time)."""

    def __init__(
        self,
        slot: ModelSlot,
        device: str = "auto",
        dtype: str = "auto",
        experiment: str = "headcast-serve",
        limits: Limits | None = None,
    ) -> None:
        self.slot, self.device, self.dtype, self.experiment = slot, device, dtype, experiment
        self.limits = limits or Limits()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"headcast-jobs-{device}")

    def submit(self, checkpoint: Path, probes: Path, query: str, anchors: Path | None = None) -> Job:
        """Queue a job (429 when `max_pending` wait already); the oldest finished jobs are forgotten."""
        with self._lock:
            pending = sum(job.status == "queued" for job in self._jobs.values())
            if pending >= self.limits.max_pending:
                raise ServiceError(429, f"{pending} jobs are already queued; try again later")
            job = Job(
                uuid.uuid4().hex,
                str(checkpoint),
                str(probes),
                query,
                None if anchors is None else str(anchors),
            )
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(self._jobs) - self.limits.keep_jobs)]:
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
        model = None
        outcome: Literal["done", "failed"] = "failed"
        try:
            model = self.slot.get()
            job.result = self._extract_and_predict(job, model)
            outcome = "done"
        except (HeadcastError, ServiceError) as err:  # the input's fault: headcast's own one line
            job.error = " ".join(line.strip() for line in str(err).strip().splitlines())
        except Exception as err:  # a job must never take the worker down; no traceback to the client
            log.exception("job %s failed", job.id)
            job.error = f"internal error: {one_line(err)}"
        job.finished = time.time()
        try:
            job.run_id = log_job_run(job, model, outcome, self.device, self.experiment)
        except Exception:  # tracking trouble must not lose the result
            log.exception("could not log job %s to MLflow", job.id)
        job.status = job.stage = outcome  # last: a client that sees "done" also sees the run id

    def _extract_and_predict(self, job: Job, model: FittedModel) -> dict[str, Any]:
        def on_progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        job.stage = "reading probes"
        pipeline = PredictionPipeline(
            model,
            Path(job.probes),
            job.anchors and Path(job.anchors),
            query=job.query,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.limits.batch_size,
        )
        table = pipeline.features([job.checkpoint], progress=False, on_progress=on_progress)
        job.stage = "predicting"
        prediction = next(iter(model.predict_json(table).values()))
        answers = [c for c in table.columns if c.startswith(("correct[", "prob["))]  # the anchors' answers
        features = table.iloc[0].drop(["checkpoint", *answers])
        return {
            "prediction": prediction,
            "model": {k: model.info[k] for k in ("uri", "registered_name", "version")},
            "features": {
                k: (v if isinstance(v, str) or math.isfinite(v) else None) for k, v in features.items()
            },
        }
