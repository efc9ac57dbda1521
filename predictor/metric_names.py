"""How predicted scores are named as MLflow metrics: one naming for the training callback and service jobs.

    [<prefix>/]pred/<benchmark>           predicted score (percent)
    [<prefix>/]pred/<benchmark>_lower     interval bounds
    [<prefix>/]pred/<benchmark>_upper
    [<prefix>/]pred/<benchmark>_answered  1 when the benchmark's anchor items were answered (hybrid models)
    [<prefix>/]pred/ood                   1 when the row is out of the predictor's training distribution
    [<prefix>/]feature/<name>             feature values the caller chose to log
    [<prefix>/]seconds                    what the measurement and prediction cost

The callback logs under a prefix (`headcast/` by default) because its metrics share a run with the
trainer's own; a service job's run is its own, so it logs without one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


def metric_key(*parts: str, sep: str = ".") -> str:
    """Join name parts, each cut to the narrow alphabet MLflow allows in metric names."""
    return sep.join(re.sub(r"[^A-Za-z0-9_\-. :/]", "_", p) for p in parts)


def prediction_metrics(
    prediction: Mapping[str, Mapping[str, Any]],
    features: Mapping[str, Any] | None = None,
    seconds: float | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Metrics of one prediction (a row of `prediction_json`: benchmark -> score, lower, upper, ood[,
    answered]), the finite numbers among `features`, and `seconds`; missing values are left out."""

    def key(*parts: str) -> str:
        return metric_key(*(p for p in (prefix, *parts) if p), sep="/")

    metrics: dict[str, float] = {}
    for benchmark, entry in prediction.items():
        for field, suffix in (
            ("score", ""),
            ("lower", "_lower"),
            ("upper", "_upper"),
            ("answered", "_answered"),
        ):
            value = entry.get(field)
            if value is not None:
                metrics[key("pred", f"{benchmark}{suffix}")] = float(value)
    if prediction:  # the OOD flag is the row's, repeated under each benchmark
        metrics[key("pred", "ood")] = float(any(entry["ood"] for entry in prediction.values()))
    for name, value in (features or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key("feature", name)] = float(value)
    if seconds is not None:
        metrics[key("seconds")] = float(seconds)
    return metrics
