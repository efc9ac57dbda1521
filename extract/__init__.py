"""Stage 1: load a checkpoint, run a probe set, record attention, reduce to head metrics and a feature row.

This is the stage's public face: the predictor and the experiments use these names and nothing deeper.
They load on first use, so that importing the package (or its torch-free modules) stays cheap for the
predictor and the service; type checkers and editors follow the imports under TYPE_CHECKING.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headcast.contract import ExtractionSettings
    from headcast.extract.harness_answers import answer_task_items
    from headcast.extract.harness_tasks import HarnessTask, load_tasks
    from headcast.extract.loading import Checkpoint, load_checkpoint
    from headcast.extract.pipeline import (
        HeadMetrics,
        answers_table,
        extract_features,
        extract_head_metrics,
        live_dtype,
        measure_live_model,
        per_head_tables,
    )
    from headcast.extract.probes import Probe, probe_set_hash, read_probes
    from headcast.extract.prompts import build_prompt

_PUBLIC = {
    "ExtractionSettings": "headcast.contract",
    "HeadMetrics": "headcast.extract.pipeline",
    "extract_features": "headcast.extract.pipeline",
    "extract_head_metrics": "headcast.extract.pipeline",
    "measure_live_model": "headcast.extract.pipeline",
    "live_dtype": "headcast.extract.pipeline",
    "answers_table": "headcast.extract.pipeline",
    "per_head_tables": "headcast.extract.pipeline",
    "Probe": "headcast.extract.probes",
    "read_probes": "headcast.extract.probes",
    "probe_set_hash": "headcast.extract.probes",
    "Checkpoint": "headcast.extract.loading",
    "load_checkpoint": "headcast.extract.loading",
    "build_prompt": "headcast.extract.prompts",
    "HarnessTask": "headcast.extract.harness_tasks",
    "load_tasks": "headcast.extract.harness_tasks",
    "answer_task_items": "headcast.extract.harness_answers",
}

__all__ = [  # noqa: RUF022 (grouped as _PUBLIC is)
    "ExtractionSettings",
    "HeadMetrics",
    "extract_features",
    "extract_head_metrics",
    "measure_live_model",
    "live_dtype",
    "answers_table",
    "per_head_tables",
    "Probe",
    "read_probes",
    "probe_set_hash",
    "Checkpoint",
    "load_checkpoint",
    "build_prompt",
    "HarnessTask",
    "load_tasks",
    "answer_task_items",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'headcast.extract' has no attribute {name!r}")
