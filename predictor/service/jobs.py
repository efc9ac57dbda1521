"""The job queue: extraction + prediction of a checkpoint, one job at a time on the device, FIFO.

A job's failure is a one-line message for the client: headcast's own (HeadcastError) when the input
is at fault, else `internal error: <type>: <first line>`, with the traceback in the server's log only.

With a `JobStore` (`headcast serve --state-dir`), every accepted job is kept in a SQLite file and a
restarted service reports each one: done and failed as stored, queued and running ones queued again
and run (their extraction resumes through the content-keyed cache), marked `resumed`.

With `ray` (`headcast serve --ray`), each job's measuring is one Ray task on the cluster (retried on a
lost node, as `headcast extract --ray`), up to `RAY_JOBS_AT_ONCE` of them in flight, and the cluster's
resources decide how many run; the queue stays bounded by `max_pending`, and predicting stays here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from headcast.errors import HeadcastError
from headcast.predictor.predicting import FittedModel, PredictionPipeline
from headcast.predictor.service.errors import ServiceError, one_line
from headcast.predictor.service.job_runs import log_job_run
from headcast.predictor.service.limits import Limits
from headcast.predictor.service.model import ModelSlot
from headcast.scale import RayOptions, map_on_ray

log = logging.getLogger("headcast.serve")

RAY_JOBS_AT_ONCE = 8  # jobs measuring on the cluster at once (each waits there for its task's resources)


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
    resumed: bool = False  # accepted before the service restarted, and run again after it

    def as_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["progress"] = {"stage": body.pop("stage"), "done": body.pop("done"), "total": body.pop("total")}
        return body


class JobStore:
    """Every job a service accepted, as JSON rows of a SQLite file in submission order.

    A row is written when its job is accepted, starts and finishes (SQLite makes each write whole); a
    connection per call keeps the store safe to use from the request threads and the worker alike.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, body)")
        except (OSError, sqlite3.Error) as err:
            raise HeadcastError(
                f"cannot keep jobs in {self.path} ({err}); pass a writable --state-dir"
            ) from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose work is committed (or rolled back) as one transaction, then closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def save(self, job: Job) -> None:
        body = json.dumps(dataclasses.asdict(job))
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body=excluded.body",
                (job.id, body),
            )

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job(**json.loads(row[0]))

    def jobs(self) -> list[Job]:
        with self._connect() as db:
            rows = db.execute("SELECT body FROM jobs ORDER BY seq").fetchall()
        return [Job(**json.loads(body)) for (body,) in rows]


class JobQueue:
    """Jobs in submission order on a single worker thread (the device does one extraction at a time)."""

    def __init__(
        self,
        slot: ModelSlot,
        device: str = "auto",
        dtype: str = "auto",
        experiment: str = "headcast-serve",
        limits: Limits | None = None,
        store: JobStore | None = None,
        ray: RayOptions | None = None,
    ) -> None:
        self.slot, self.device, self.dtype, self.experiment = slot, device, dtype, experiment
        self.limits = limits or Limits()
        self.store, self.ray = store, ray
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=1 if ray is None else RAY_JOBS_AT_ONCE,
            thread_name_prefix=f"headcast-jobs-{'ray' if ray else device}",
        )
        for job in store.jobs() if store is not None else []:
            if job.status in ("queued", "running"):  # cut short by the restart: run again, from the start
                job.status, job.stage, job.started, job.resumed = "queued", "queued", None, True
                self._jobs[job.id] = job
                self._save(job)
                self._executor.submit(self._run, job)

    def _save(self, job: Job) -> None:
        if self.store is not None:
            self.store.save(job)

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
            self._save(job)
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(self._jobs) - self.limits.keep_jobs)]:
                del self._jobs[key]
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        """The job, from memory or (finished before a restart, or long ago) from the store."""
        job = self._jobs.get(job_id)
        if job is None and self.store is not None:
            job = self.store.get(job_id)
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
        self._save(job)
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
            where = "ray" if self.ray is not None else self.device
            job.run_id = log_job_run(job, model, outcome, where, self.experiment)
        except Exception:  # tracking trouble must not lose the result
            log.exception("could not log job %s to MLflow", job.id)
        job.status = job.stage = outcome  # last: a client that sees "done" also sees the run id
        try:
            self._save(job)
        except sqlite3.Error:  # the client still gets the result from memory until a restart
            log.exception("could not store job %s", job.id)

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
        if self.ray is None:
            table = pipeline.features([job.checkpoint], progress=False, on_progress=on_progress)
        else:  # the measuring in a task; its progress stays there, only its stage shows here
            job.stage = "measuring on the Ray cluster"
            measure = functools.partial(pipeline.features, progress=False)
            table = map_on_ray(measure, [[job.checkpoint]], self.ray, progress=False)[0]
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
