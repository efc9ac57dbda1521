"""Job paths must lie inside one of the service's `--root` folders, after `..` and symlinks.

The probe file's images count too: they are read relative to it, so one of them could lead out. So does
an lmms-eval anchor file's task folder, whose task code a job runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from headcast.predictor.service.errors import ServiceError
from headcast.predictor.service.schemas import JobRequest


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


def probe_images_inside(probes: Path, roots: Sequence[Path]) -> None:
    """Probe images are relative to the JSONL file; one that leads out of the roots is refused too."""
    with probes.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                item = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue  # read_probes names malformed lines, in the job
            if isinstance(item, dict) and isinstance(item.get("image"), str):
                inside_roots(probes.parent / item["image"], roots, f"probes line {number}: image")
            if isinstance(item, dict) and isinstance(item.get("include_path"), str):  # lmms-eval task code
                inside_roots(item["include_path"], roots, f"anchors line {number}: task folder")


@dataclasses.dataclass(frozen=True)
class JobPaths:
    checkpoint: Path
    probes: Path
    anchors: Path | None


def job_paths(body: JobRequest, roots: Sequence[Path]) -> JobPaths:
    """The request's paths, resolved and checked: 403 outside the roots, 404 missing, 422 unreadable."""
    checkpoint = inside_roots(body.checkpoint, roots, "checkpoint")
    probes = inside_roots(body.probes, roots, "probes")
    anchors = None if body.anchors is None else inside_roots(body.anchors, roots, "anchors")
    try:
        if not (checkpoint / "config.json").is_file():
            raise ServiceError(
                404, f"checkpoint {body.checkpoint[:200]!r} is not a folder with a config.json"
            )
        if not probes.is_file():
            raise ServiceError(404, f"probe file {body.probes[:200]!r} does not exist")
        probe_images_inside(probes, roots)
        if anchors is not None:
            if not anchors.is_file():
                raise ServiceError(404, f"anchor file {str(body.anchors)[:200]!r} does not exist")
            probe_images_inside(anchors, roots)
    except OSError as err:  # e.g. a name too long, a folder we may not read
        raise ServiceError(422, f"cannot read {err.filename or 'the paths'} ({err.strerror})") from None
    return JobPaths(checkpoint, probes, anchors)
