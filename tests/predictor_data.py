"""Synthetic feature rows and scores with a known relation, for predictor tests (no models needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from headcast.extract.features import feature_columns
from headcast.schema import FEATURE_SCHEMA_VERSION

BENCHMARKS = {"count": 20.0, "pope": 50.0}  # benchmark -> chance level
STEPS = (10, 30, 100, 300, 1000)


def synthetic_tables(n_runs: int = 8, seed: int = 0, noise: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs of checkpoints whose ability shows in two features and drives every score."""
    rng = np.random.default_rng(seed)
    columns = feature_columns()
    features, scores = [], []
    for run in range(n_runs):
        ceiling = rng.uniform(0.2, 1.0)
        for step in STEPS:
            ability = ceiling * np.log10(step) / 3
            values = rng.normal(0.3, 0.05, len(columns))
            values[columns.index("all.visual_mass.mean")] = 0.2 + 0.5 * ability
            values[columns.index("all.concentration.mean")] = 0.1 + 0.6 * ability
            name = f"run{run}/{step}"
            row = dict(zip(columns, values, strict=True))
            features.append({"checkpoint": name, "schema_version": FEATURE_SCHEMA_VERSION} | row)
            for benchmark, chance in BENCHMARKS.items():
                score = chance + (95 - chance) * ability + rng.normal(0, noise)
                scores.append(
                    {
                        "checkpoint": name,
                        "benchmark": benchmark,
                        "score": float(np.clip(score, 0, 100)),
                        "n": 200,
                    }
                )
    return pd.DataFrame(features), pd.DataFrame(scores)
