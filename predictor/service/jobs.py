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

from headcast.contract import ExtractionContract, extraction_options
from headcast.errors import HeadcastError
from headcast.predictor.service.errors import ServiceError, one_line
from headcast.predictor.service.job_runs import log_job_run
from headcast.predictor.service.limits import Limits
from headcast.predictor.service.model import ModelSlot, ServedModel
from headcast.predictor.service.prediction import predict_table
from headcast.predictor.service.schemas import NON_FEATURES
from headcast.schema import CONFIDENCE_PREFIX, CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION

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
            job = Job(uuid.uuid4().hex, str(checkpoint), str(probes), query, anchors and str(anchors))
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
        model, outcome = None, "failed"
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

    def _extract_and_predict(self, job: Job, model: ServedModel) -> dict[str, Any]:
        from headcast.extract.pipeline import ExtractionSettings, extract_head_metrics
        from headcast.extract.probes import read_probes

        probes = read_probes(job.probes)
        job.total, job.stage = len(probes), "measuring"

        def on_batch(done: int, total: int) -> None:
            job.done = done

        query, dtype, thresholds = extraction_options(model.contract, job.query, self.dtype)
        settings = ExtractionSettings(query, self.limits.batch_size, self.device, dtype, thresholds)
        metrics = extract_head_metrics(job.checkpoint, probes, settings, progress=False, on_batch=on_batch)
        job.done = len(probes)  # also when the cache answered
        job.stage = "predicting"
        contract = ExtractionContract.from_settings(metrics.settings, thresholds)
        features = {"schema_version": FEATURE_SCHEMA_VERSION, CONTRACT_COLUMN: contract.to_json()}
        features |= metrics.feature_row(thresholds)
        answers = {}
        if job.anchors is not None:  # one more small prefill: the answers on the anchor items
            from headcast.predictor.anchors import read_anchor_probes
            from headcast.predictor.hybrid import answer_row, unanswered_anchors

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
