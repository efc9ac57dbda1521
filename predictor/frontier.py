"""The cost–error frontier: held-out error against the number of answered items per benchmark.

For each budget k (answered items per benchmark) and each protocol, every checkpoint is estimated
by estimators fitted without it, and compared with what the same forward passes buy otherwise:

- `subset`: the accuracy on k random items (exact expectation over draws, hypergeometric);
- `anchors`: the weighted accuracy on k anchor items chosen from the training checkpoints;
- `heads`, `confidence`: no answers at all, a regression on head metrics or on the model's own
  confidence over the probe set (k = 0 only);
- `hybrid_without_heads`: anchors, their answers' probabilities, IRT and confidence, combined as
  `AnchorPredictor` chooses inside the training folds (at k = 0: confidence);
- `hybrid`: the same, where head metrics may enter when they help inside the training folds.

The protocols (`new-run`, `new-family`, `during-training`, `stronger`) and their folds are
`predictor.splits`'.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from headcast.predictor.anchor_predictor import AnchorPredictor
from headcast.predictor.dataset import Dataset
from headcast.predictor.evaluation import subset_abs_error
from headcast.predictor.item_results import BenchmarkItems
from headcast.predictor.models import (
    COVERAGE,
    HeadcastPredictor,
    conformal_quantile,
    label_free_feature_sets,
)
from headcast.predictor.splits import protocol_folds
from headcast.schema import confidence_feature_columns, head_feature_columns

BUDGETS = (0, 2, 4, 8, 16, 32)
# The frontier's estimators: ways to a score at a budget of answered items (anchored, or label-free at
# k = 0), not the per-benchmark regressors of `predictor.regressors`. The text's per-benchmark lines
# show those that use the answered items.
FRONTIER_ESTIMATORS = ("subset", "anchors", "heads", "confidence", "hybrid_without_heads", "hybrid")
DETAIL_ESTIMATORS = ("subset", "anchors", "hybrid_without_heads", "hybrid")


@dataclasses.dataclass
class Frontier:
    """Held-out MAE per benchmark, estimator and budget (NaN where an estimator needs no or some items)."""

    protocol: str
    budgets: tuple[int, ...]
    mae: pd.DataFrame  # index (benchmark, estimator), columns budgets
    chosen: pd.DataFrame  # hybrid's chosen method per fold, benchmark and k
    coverage: pd.DataFrame  # `hybrid`'s share of held-out scores inside its COVERAGE conformal interval

    def mean(self) -> pd.DataFrame:
        """MAE averaged over benchmarks: rows estimators, columns budgets."""
        return self.mae.groupby(level="estimator", sort=False).mean()

    def as_json(self) -> dict:
        def clean(values) -> list[float | None]:
            return [None if pd.isna(v) else round(float(v), 3) for v in values]

        mae: dict[str, dict[str, list[float | None]]] = {}
        for (benchmark, estimator), row in self.mae.iterrows():
            mae.setdefault(str(benchmark), {})[str(estimator)] = clean(row.to_numpy())
        coverage = clean(self.coverage.mean().to_numpy())
        return {"protocol": self.protocol, "k": list(self.budgets), "mae": mae, "hybrid_coverage": coverage}


def _label_free(dataset: Dataset, train: np.ndarray, test: np.ndarray) -> dict[str, pd.DataFrame]:
    """k = 0: heads alone, confidence alone, and both as the label-free hybrid (chosen in the folds)."""
    x, y, g = dataset.features, dataset.scores, dataset.groups
    heads, confidence = head_feature_columns(x.columns), confidence_feature_columns(x.columns)
    sets = {"heads": [heads]}
    if confidence:
        sets |= {"confidence": [confidence], "hybrid": list(label_free_feature_sets(x.columns).values())}
    out = {}
    for name, feature_sets in sets.items():
        model = HeadcastPredictor("auto", feature_sets=feature_sets)
        model.fit(x.iloc[train], y.iloc[train], g.iloc[train])
        out[name] = model.predict(x.iloc[test])
    out["hybrid_without_heads"] = out.get("confidence", out["heads"] * np.nan)
    out.setdefault("hybrid", out["heads"])
    return out


def _with_answers(
    data: BenchmarkItems,
    features: dict[str, np.ndarray],
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    budgets: tuple[int, ...],
) -> list[dict]:
    """k > 0 for one benchmark and fold: anchors, hybrid without heads and hybrid, per budget.

    One BLAS/OpenMP thread: the matrices are small, and threads fighting over cores cost 5-7x.
    """
    with threadpool_limits(limits=1):
        return _answers_per_budget(data, features, groups, train, test, budgets)


def _answers_per_budget(data, features, groups, train, test, budgets) -> list[dict]:
    rows = []
    sets = list(features)
    for k in budgets:
        model = AnchorPredictor(k).fit(
            data.rows(train), {n: f[train] for n, f in features.items()}, groups[train]
        )
        correct, prob = data.correct[test][:, model.anchors_], data.prob[test][:, model.anchors_]
        test_features = {n: f[test] for n, f in features.items()}
        without_heads = model.chosen_by_set_.get("confidence", model.chosen_by_set_[""])
        for estimator, method in (
            ("anchors", "anchors"),
            ("hybrid_without_heads", without_heads),
            ("hybrid", model.chosen_by_set_[sets[-1]] if sets else without_heads),
        ):
            rows.append(
                {
                    "k": k,
                    "estimator": estimator,
                    "method": method,
                    "test": test,
                    "predicted": model.predict(correct, prob, test_features, method),
                    "half_width": conformal_quantile(model.cv_residuals_[method], COVERAGE),
                }
            )
    return rows


def measure_frontier(
    dataset: Dataset,
    items: dict[str, BenchmarkItems],
    protocol: str = "new-run",
    budgets: tuple[int, ...] = BUDGETS,
    jobs: int = 1,
) -> Frontier:
    """Held-out MAE of every estimator at every budget under `protocol` (items rows follow `dataset`)."""
    folds = protocol_folds(dataset, protocol)
    x = dataset.features
    sets = label_free_feature_sets(x.columns)
    features = {name: x[columns].to_numpy(float) for name, columns in sets.items()}
    groups = dataset.groups.to_numpy()
    answered = tuple(k for k in budgets if k > 0)
    tasks = [(b, f) for b in dataset.benchmarks for f in range(len(folds))]
    results = Parallel(n_jobs=jobs)(
        delayed(_with_answers)(items[b], features, groups, *folds[f], answered) for b, f in tasks
    )
    tested = np.concatenate([test for _, test in folds])
    predicted: dict[
        tuple[str, str, int], pd.Series
    ] = {}  # (benchmark, estimator, k) -> predictions over `tested` rows, in fold order
    width: dict[tuple[str, int], pd.Series] = {}  # (benchmark, k) -> `hybrid`'s interval half-width per row
    chosen = []
    for (benchmark, fold), rows in zip(tasks, results, strict=True):
        for row in rows:
            key = (benchmark, row["estimator"], row["k"])
            predicted.setdefault(key, pd.Series(np.nan, index=x.index))
            predicted[key].iloc[row["test"]] = row["predicted"]
            if row["estimator"] == "hybrid":
                chosen.append({"fold": fold, "benchmark": benchmark, "k": row["k"], "method": row["method"]})
                width.setdefault((benchmark, row["k"]), pd.Series(np.nan, index=x.index))
                width[(benchmark, row["k"])].iloc[row["test"]] = row["half_width"]
    if 0 in budgets:
        label_free = Parallel(n_jobs=jobs)(
            delayed(_label_free)(dataset, train, test) for train, test in folds
        )
        for (_, test), tables in zip(folds, label_free, strict=True):
            for estimator, table in tables.items():
                for benchmark in dataset.benchmarks:
                    key = (benchmark, estimator, 0)
                    predicted.setdefault(key, pd.Series(np.nan, index=x.index))
                    predicted[key].iloc[test] = table[benchmark].to_numpy()
                    if estimator == "hybrid":
                        # bounds are clipped to [0, 100]: the unclipped side has the half-width
                        score = table[benchmark]
                        half = np.maximum(
                            table[f"{benchmark}_upper"] - score, score - table[f"{benchmark}_lower"]
                        )
                        width.setdefault((benchmark, 0), pd.Series(np.nan, index=x.index))
                        width[(benchmark, 0)].iloc[test] = half.to_numpy()
    index = pd.MultiIndex.from_product(
        [dataset.benchmarks, FRONTIER_ESTIMATORS], names=["benchmark", "estimator"]
    )
    mae = pd.DataFrame(np.nan, index=index, columns=list(budgets))
    for benchmark in dataset.benchmarks:
        actual = pd.Series(items[benchmark].score, index=x.index).iloc[tested]
        for k in answered:
            data = items[benchmark].rows(tested)
            right, n = data.correct.sum(1).astype(int), np.full(len(tested), data.correct.shape[1])
            mae.loc[(benchmark, "subset"), k] = subset_abs_error(right, n, k).mean()
        for (b, estimator, k), values in predicted.items():
            if b == benchmark:
                mae.loc[(benchmark, estimator), k] = float(np.abs(values.iloc[tested] - actual).mean())
    coverage = pd.DataFrame(np.nan, index=dataset.benchmarks, columns=list(budgets))
    for (benchmark, k), half in width.items():
        actual = pd.Series(items[benchmark].score, index=x.index).iloc[tested]
        error = np.abs(predicted[(benchmark, "hybrid", k)].iloc[tested] - actual)
        coverage.loc[benchmark, k] = float((error <= half.iloc[tested] + 1e-9).mean())
    return Frontier(protocol, tuple(budgets), mae, pd.DataFrame(chosen), coverage)


def format_frontier(result: Frontier, detail_budgets: tuple[int, ...] = (8, 16)) -> str:
    """The frontier as text: the mean over benchmarks at every budget, then each benchmark at a few."""

    def cell(value: float) -> str:
        return f"{value:>8.1f}" if pd.notna(value) else f"{'-':>8}"

    budgets = list(result.budgets)
    width = max(len(e) for e in FRONTIER_ESTIMATORS) + 2
    lines = [f"mean MAE over benchmarks ({result.protocol}); columns: answered items per benchmark"]
    lines.append(f"{'':<{width}}" + "".join(f"{f'k={k}':>8}" for k in budgets))
    for estimator, row in result.mean().iterrows():
        lines.append(f"{estimator:<{width}}" + "".join(cell(row[k]) for k in budgets))
    coverage = result.coverage.mean()
    lines.append(
        f"{f'hybrid {COVERAGE:.0%} cover':<{width}}"
        + "".join(f"{coverage[k]:>8.2f}" if pd.notna(coverage[k]) else f"{'-':>8}" for k in budgets)
    )
    shown = [k for k in detail_budgets if k in budgets]
    if shown:
        benchmarks = list(result.mae.index.get_level_values("benchmark").unique())
        lines.append("")
        lines.append(
            f"per benchmark, k = {', '.join(map(str, shown))}: subset / anchors / hybrid (no heads) / hybrid"
        )
        for benchmark in benchmarks:
            table = result.mae.xs(benchmark, level="benchmark")
            parts = [" / ".join(f"{table.loc[e, k]:.1f}" for e in DETAIL_ESTIMATORS) for k in shown]
            lines.append(f"{benchmark:<{width}}" + "    ".join(parts))
    return "\n".join(lines)
