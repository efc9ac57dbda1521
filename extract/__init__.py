"""Stage 1: load a checkpoint, run a probe set, record attention, reduce to head metrics and a feature row.

This is the stage's public face: the predictor and the experiments use these names and nothing deeper.
They load on first use, so that importing the package (or its torch-free modules) stays cheap for the
predictor and the service; type checkers and editors follow the imports under TYPE_CHECKING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headcast.lazy import public_names

if TYPE_CHECKING:
    from headcast.extract.ablated_accuracy import accuracy_without_heads, encoded_suite, model_shape
    from headcast.extract.evaluate import (
        evaluate_checkpoint,
        items_path,
        load_suite,
        scores_of,
        write_items,
        write_scores,
    )
    from headcast.extract.features import depth_bins, feature_row
    from headcast.extract.harness_answers import answer_task_items
    from headcast.extract.harness_tasks import HarnessTask, load_tasks, task_names
    from headcast.extract.head_ablation import head_output_means, random_heads
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
    from headcast.extract.plots import head_heatmap, save_figure
    from headcast.extract.probes import Probe, probe_set_hash, read_probes
    from headcast.extract.prompts import build_prompt
    from headcast.extract.storage import cache_root

_PUBLIC = {  # name -> the module that defines it
    "accuracy_without_heads": "headcast.extract.ablated_accuracy",
    "encoded_suite": "headcast.extract.ablated_accuracy",
    "model_shape": "headcast.extract.ablated_accuracy",
    "evaluate_checkpoint": "headcast.extract.evaluate",
    "items_path": "headcast.extract.evaluate",
    "load_suite": "headcast.extract.evaluate",
    "scores_of": "headcast.extract.evaluate",
    "write_items": "headcast.extract.evaluate",
    "write_scores": "headcast.extract.evaluate",
    "depth_bins": "headcast.extract.features",
    "feature_row": "headcast.extract.features",
    "head_output_means": "headcast.extract.head_ablation",
    "random_heads": "headcast.extract.head_ablation",
    "Checkpoint": "headcast.extract.loading",
    "load_checkpoint": "headcast.extract.loading",
    "answers_table": "headcast.extract.pipeline",
    "extract_features": "headcast.extract.pipeline",
    "extract_head_metrics": "headcast.extract.pipeline",
    "HeadMetrics": "headcast.extract.pipeline",
    "live_dtype": "headcast.extract.pipeline",
    "measure_live_model": "headcast.extract.pipeline",
    "per_head_tables": "headcast.extract.pipeline",
    "head_heatmap": "headcast.extract.plots",
    "save_figure": "headcast.extract.plots",
    "Probe": "headcast.extract.probes",
    "probe_set_hash": "headcast.extract.probes",
    "read_probes": "headcast.extract.probes",
    "build_prompt": "headcast.extract.prompts",
    "cache_root": "headcast.extract.storage",
    "HarnessTask": "headcast.extract.harness_tasks",
    "load_tasks": "headcast.extract.harness_tasks",
    "task_names": "headcast.extract.harness_tasks",
    "answer_task_items": "headcast.extract.harness_answers",
}
__all__ = [  # noqa: RUF022 (in the order of _PUBLIC)
    "accuracy_without_heads",
    "encoded_suite",
    "model_shape",
    "evaluate_checkpoint",
    "items_path",
    "load_suite",
    "scores_of",
    "write_items",
    "write_scores",
    "depth_bins",
    "feature_row",
    "head_output_means",
    "random_heads",
    "Checkpoint",
    "load_checkpoint",
    "answers_table",
    "extract_features",
    "extract_head_metrics",
    "HeadMetrics",
    "live_dtype",
    "measure_live_model",
    "per_head_tables",
    "head_heatmap",
    "save_figure",
    "Probe",
    "probe_set_hash",
    "read_probes",
    "build_prompt",
    "cache_root",
    "HarnessTask",
    "load_tasks",
    "task_names",
    "answer_task_items",
]

__getattr__ = public_names(__name__, _PUBLIC)
