"""Stage 2: feature rows and benchmark scores to fitted, tracked, served predictions.

This is the stage's public face: the experiments use these names and nothing deeper. They load on
first use, so that importing the package stays cheap (no MLflow, LightGBM or scikit-learn until a
name that needs them is used); type checkers and editors follow the imports under TYPE_CHECKING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headcast.lazy import public_names

if TYPE_CHECKING:
    from headcast.predictor.anchor_predictor import AnchorPredictor
    from headcast.predictor.anchors import write_anchor_probes
    from headcast.predictor.dataset import (
        MIN_GROUPS,
        Dataset,
        build_dataset,
        last_checkpoints,
        run_of,
        step_of,
    )
    from headcast.predictor.evaluation import (
        held_out_predictions,
        mean_baseline,
        score_predictions,
        within_run_spearman,
    )
    from headcast.predictor.frontier import format_frontier, measure_frontier
    from headcast.predictor.item_results import load_item_results
    from headcast.predictor.metric_names import metric_key
    from headcast.predictor.models import HeadcastPredictor, label_free_feature_sets
    from headcast.predictor.registry import CHAMPION, REGISTERED_NAME, configure_tracking
    from headcast.predictor.regressors import COARSE_RIDGE_ALPHAS, REGRESSORS
    from headcast.predictor.runs import chart_view_link, log_run_predictions, predicted_steps
    from headcast.predictor.schedule import (
        CONFIDENCE_SIGNALS,
        EXPECTED_ERROR_RULE,
        SIGNALS,
        EvaluationScheduler,
        evenly_spaced,
        last_only,
        trajectory_errors,
    )
    from headcast.predictor.scores import read_scores
    from headcast.predictor.splits import (
        PROTOCOLS,
        GroupFolds,
        OneGroupHeldOut,
        during_training_folds,
        run_folds,
    )
    from headcast.predictor.tracking import fit_and_track, format_report, log_frontier, use_experiment

_PUBLIC = {  # name -> the module that defines it
    "AnchorPredictor": "headcast.predictor.anchor_predictor",
    "write_anchor_probes": "headcast.predictor.anchors",
    "build_dataset": "headcast.predictor.dataset",
    "Dataset": "headcast.predictor.dataset",
    "last_checkpoints": "headcast.predictor.dataset",
    "MIN_GROUPS": "headcast.predictor.dataset",
    "run_of": "headcast.predictor.dataset",
    "step_of": "headcast.predictor.dataset",
    "held_out_predictions": "headcast.predictor.evaluation",
    "mean_baseline": "headcast.predictor.evaluation",
    "score_predictions": "headcast.predictor.evaluation",
    "within_run_spearman": "headcast.predictor.evaluation",
    "format_frontier": "headcast.predictor.frontier",
    "measure_frontier": "headcast.predictor.frontier",
    "load_item_results": "headcast.predictor.item_results",
    "metric_key": "headcast.predictor.metric_names",
    "HeadcastPredictor": "headcast.predictor.models",
    "label_free_feature_sets": "headcast.predictor.models",
    "CHAMPION": "headcast.predictor.registry",
    "configure_tracking": "headcast.predictor.registry",
    "REGISTERED_NAME": "headcast.predictor.registry",
    "COARSE_RIDGE_ALPHAS": "headcast.predictor.regressors",
    "REGRESSORS": "headcast.predictor.regressors",
    "chart_view_link": "headcast.predictor.runs",
    "log_run_predictions": "headcast.predictor.runs",
    "predicted_steps": "headcast.predictor.runs",
    "CONFIDENCE_SIGNALS": "headcast.predictor.schedule",
    "EXPECTED_ERROR_RULE": "headcast.predictor.schedule",
    "EvaluationScheduler": "headcast.predictor.schedule",
    "evenly_spaced": "headcast.predictor.schedule",
    "last_only": "headcast.predictor.schedule",
    "SIGNALS": "headcast.predictor.schedule",
    "trajectory_errors": "headcast.predictor.schedule",
    "read_scores": "headcast.predictor.scores",
    "during_training_folds": "headcast.predictor.splits",
    "GroupFolds": "headcast.predictor.splits",
    "OneGroupHeldOut": "headcast.predictor.splits",
    "PROTOCOLS": "headcast.predictor.splits",
    "run_folds": "headcast.predictor.splits",
    "fit_and_track": "headcast.predictor.tracking",
    "format_report": "headcast.predictor.tracking",
    "log_frontier": "headcast.predictor.tracking",
    "use_experiment": "headcast.predictor.tracking",
}
__all__ = [  # noqa: RUF022 (in the order of _PUBLIC)
    "AnchorPredictor",
    "write_anchor_probes",
    "build_dataset",
    "Dataset",
    "last_checkpoints",
    "MIN_GROUPS",
    "run_of",
    "step_of",
    "held_out_predictions",
    "mean_baseline",
    "score_predictions",
    "within_run_spearman",
    "format_frontier",
    "measure_frontier",
    "load_item_results",
    "metric_key",
    "HeadcastPredictor",
    "label_free_feature_sets",
    "CHAMPION",
    "configure_tracking",
    "REGISTERED_NAME",
    "COARSE_RIDGE_ALPHAS",
    "REGRESSORS",
    "chart_view_link",
    "log_run_predictions",
    "predicted_steps",
    "CONFIDENCE_SIGNALS",
    "EXPECTED_ERROR_RULE",
    "EvaluationScheduler",
    "evenly_spaced",
    "last_only",
    "SIGNALS",
    "trajectory_errors",
    "read_scores",
    "during_training_folds",
    "GroupFolds",
    "OneGroupHeldOut",
    "PROTOCOLS",
    "run_folds",
    "fit_and_track",
    "format_report",
    "log_frontier",
    "use_experiment",
]

__getattr__ = public_names(__name__, _PUBLIC)
