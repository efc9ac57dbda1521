"""What one request or the job queue may take; `headcast serve` options set each one."""

from __future__ import annotations

import dataclasses

from headcast.errors import HeadcastError


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that keep one client from taking the service down; the defaults suit one GPU box."""

    max_body_bytes: int = 1 << 20  # a feature row is ~3 KB; 1 MiB allows a few hundred rows
    max_rows: int = 256  # rows per POST /predict
    max_pending: int = 32  # queued jobs; more get 429
    keep_jobs: int = 1000  # finished jobs remembered for GET /jobs/{id}
    keep_runs: int = 1000  # training runs whose schedules POST /schedule remembers (oldest dropped)
    batch_size: int = 8  # probes per forward pass in a job

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HeadcastError(f"{field.name} must be a positive integer, got {value!r}")
