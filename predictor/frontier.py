"""The cost–error frontier: held-out error against the number of answered items per benchmark.

For each budget k (answered items per benchmark) and each protocol, every checkpoint is estimated
by estimators fitted without it, and compared with what the same forward passes buy otherwise:

- `subset`: the plain mean of k random items (exact expectation over draws, hypergeometric);
- `subset_regression`: the same k random items, then a ridge from their answers to the full score
  learnt on the training checkpoints' answers to those items (Zhang, Dorner and Hardt 2025's strong
  baseline; expectation over `RANDOM_DRAWS` draws);
- `anchors`: the weighted accuracy on k anchor items chosen from the training checkpoints;
- `heads`, `confidence`: no answers at all, a regression on head metrics or on the model's own
  confidence over the probe set (k = 0 only);
- `hybrid_without_heads`: anchors, their answers' probabilities, IRT and confidence, combined as
  `AnchorPredictor` chooses inside the training folds (at k = 0: confidence);
- `hybrid`: the same, where head metrics may enter when they help inside the training folds;
- `irt_static`: the static anchors scored by IRT alone, its ability prior from confidence;
- `adaptive`: the same IRT and prior, but each checkpoint's items chosen in rounds by information at
  its current estimate (`predictor.adaptive`), with the rounds (prefills) it took.

Beside MAE: the share of held-out checkpoint pairs each estimator orders right, by how far apart
they truly are (`ORDERING_GAPS`), and the hybrid's error when a total of items is spent where its
intervals narrow most (`predictor.allocation`) rather than k per benchmark.

The protocols (`new-run`, `new-family`, `during-training`, `stronger`) and their folds are
`predictor.splits`'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from headcast.predictor.adaptive import ADAPTIVE_ROUND, AdaptiveAnchors, ask_in_rounds
from headcast.predictor.allocation import allocate_items
from headcast.predictor.anchor_predictor import AnchorPredictor
from headcast.predictor.dataset import Dataset
from headcast.predictor.evaluation import ordering_counts, subset_abs_error
from headcast.predictor.item_results import BenchmarkItems
from headcast.predictor.models import (
    COVERAGE,
    HeadcastPredictor,
    conformal_quantile,
    label_free_feature_sets,
)
from headcast.predictor.regressors import COARSE_RIDGE_ALPHAS
from headcast.predictor.splits import protocol_folds
from headcast.schema import confidence_feature_columns, head_feature_columns

BUDGETS = (0, 2, 4, 8, 16, 32)
# The frontier's estimators: ways to a score at a budget of answered items (anchored, or label-free at
# k = 0), not the per-benchmark regressors of `predictor.regressors`. The text's per-benchmark lines
# show those that use the answered items.
FRONTIER_ESTIMATORS = (
    "subset",
    "subset_regression",
    "anchors",
    "heads",
    "confidence",
    "hybrid_without_heads",
    "hybrid",
    "irt_static",
    "adaptive",
)
DETAIL_ESTIMATORS = ("subset", "subset_regression", "anchors", "hybrid_without_heads", "hybrid")
ORDERING_GAPS = (1.0, 3.0, 5.0, 10.0)  # points apart: pairs at least this far apart are counted
RANDOM_DRAWS = 20  # random item sets per budget; the same sets for every checkpoint, fold and benchmark


@dataclasses.dataclass
class Frontier:
    """Held-out MAE per benchmark, estimator and budget (NaN where an estimator needs no or some items)."""

    protocol: str
    budgets: tuple[int, ...]
    mae: pd.DataFrame  # index (benchmark, estimator), columns budgets
    chosen: pd.DataFrame  # hybrid's chosen method per fold, benchmark and k
    coverage: pd.DataFrame  # `hybrid`'s share of held-out scores inside its COVERAGE conformal interval
    errors: pd.DataFrame  # index (benchmark, estimator, k), columns held-out checkpoints: expected |error|
    ordering: pd.DataFrame  # index (estimator, gap), columns budgets: share of held-out pairs ordered right
    pairs: pd.Series  # gap -> held-out pairs (summed over benchmarks) at least that many points apart
    allocation: pd.DataFrame  # index total items; the hybrid's mean MAE with k each or allocated, items spent
    rounds: pd.Series  # k -> prefill rounds the adaptive anchors took (0: a static budget)

    def mean(self) -> pd.DataFrame:
        """MAE averaged over benchmarks: rows estimators, columns budgets."""
        return self.mae.groupby(level="estimator", sort=False).mean()

    def standard_error(self) -> pd.DataFrame:
        """The MAE's standard error over held-out checkpoints, shaped like `mae`."""
        se = self.errors.std(axis=1, ddof=1) / np.sqrt(self.errors.notna().sum(axis=1))
        return se.unstack("k").reindex(index=self.mae.index, columns=self.mae.columns)

    def as_json(self) -> dict:
        def clean(values) -> list[float | None]:
            return [None if pd.isna(v) else round(float(v), 3) for v in values]

        def by_benchmark(table: pd.DataFrame) -> dict[str, dict[str, list[float | None]]]:
            out: dict[str, dict[str, list[float | None]]] = {}
            for (benchmark, estimator), row in table.iterrows():
                out.setdefault(str(benchmark), {})[str(estimator)] = clean(row.to_numpy())
            return out

        ordering: dict[str, dict[str, list[float | None]]] = {}
        for (estimator, gap), row in self.ordering.iterrows():
            ordering.setdefault(str(estimator), {})[f"{gap:g}"] = clean(row.to_numpy())
        return {
            "protocol": self.protocol,
            "k": list(self.budgets),
            "mae": by_benchmark(self.mae),
            "mae_se": by_benchmark(self.standard_error()),
            "hybrid_coverage": clean(self.coverage.mean().to_numpy()),
            "ordering": ordering,
            "ordering_pairs": {f"{gap:g}": int(n) for gap, n in self.pairs.items()},
            "adaptive_rounds": [int(n) for n in self.rounds],
            "allocation": {
                "total": [int(t) for t in self.allocation.index],
                **{column: clean(self.allocation[column]) for column in self.allocation.columns},
            },
        }


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


def random_item_estimates(
    data: BenchmarkItems, train: np.ndarray, test: np.ndarray, k: int, draws: int = RANDOM_DRAWS
) -> tuple[np.ndarray, np.ndarray]:
    """[draws, test rows] from `draws` sets of k random items: their plain mean, and a regression.

    The regression is a ridge from the set's answers (and their mean) to the full score, learnt on
    the training rows' answers to the same items. Draw d takes the same items wherever it is called
    with the same k, so a pair of checkpoints in different folds is compared on one item set.
    """
    rng = np.random.default_rng([RANDOM_DRAWS, k])
    mean, regression = np.empty((draws, len(test))), np.empty((draws, len(test)))
    for draw in range(draws):
        chosen = rng.choice(data.correct.shape[1], size=min(k, data.correct.shape[1]), replace=False)
        answers = data.correct[:, chosen]
        design = np.column_stack([answers, answers.mean(1)])
        with np.errstate(divide="ignore", invalid="ignore"):  # items every training row answers alike
            ridge = RidgeCV(alphas=COARSE_RIDGE_ALPHAS).fit(design[train], data.score[train])
        mean[draw] = 100 * answers[test].mean(1)
        regression[draw] = np.clip(ridge.predict(design[test]), 0, 100)
    return mean, regression


def _with_answers(
    data: BenchmarkItems,
    features: dict[str, np.ndarray],
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    budgets: tuple[int, ...],
) -> list[dict]:
    """k > 0 for one benchmark and fold: random items, anchors, hybrid without heads and hybrid, per budget.

    One BLAS/OpenMP thread: the matrices are small, and threads fighting over cores cost 5-7x.
    """
    with threadpool_limits(limits=1):
        return _answers_per_budget(data, features, groups, train, test, budgets)


def _answers_per_budget(data, features, groups, train, test, budgets) -> list[dict]:
    rows = []
    sets = list(features)
    for k in budgets:
        mean, regression = random_item_estimates(data, train, test, k)
        rows += [
            {"k": k, "estimator": "subset", "test": test, "predicted": mean},
            {"k": k, "estimator": "subset_regression", "test": test, "predicted": regression},
        ]
        model = AnchorPredictor(k).fit(
            data.rows(train), {n: f[train] for n, f in features.items()}, groups[train]
        )
        correct, prob = data.correct[test][:, model.anchors_], data.prob[test][:, model.anchors_]
        test_features = {n: f[test] for n, f in features.items()}
        without_heads = model.chosen_by_set_.get("confidence", model.chosen_by_set_[""])
        prior = "confidence" if "confidence" in features else None
        for estimator, method in (
            ("anchors", "anchors"),
            ("hybrid_without_heads", without_heads),
            ("hybrid", model.chosen_by_set_[sets[-1]] if sets else without_heads),
            ("irt_static", f"irt+{prior}" if prior else "irt"),
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
        adaptive, rounds = adaptive_estimates(data, features.get("confidence"), groups, train, test, k)
        rows.append({"k": k, "estimator": "adaptive", "test": test, "predicted": adaptive, "rounds": rounds})
    return rows


def adaptive_estimates(
    data: BenchmarkItems,
    features: np.ndarray | None,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    k: int,
) -> tuple[np.ndarray, int]:
    """Adaptive anchors' estimates of the test rows at k items (rounds of `ADAPTIVE_ROUND` items), and
    the rounds (prefills) that took: items chosen per checkpoint from its own answers so far."""
    train_features, test_features = (None, None) if features is None else (features[train], features[test])
    model = AdaptiveAnchors().fit(data.rows(train), train_features, groups[train])
    priors = model.prior_means(test_features, len(test))
    scores, rounds = np.empty(len(test)), 0
    for position, row in enumerate(test):

        def answer(wanted: Mapping[str, np.ndarray], row: int = row) -> dict[str, np.ndarray]:
            return {"": data.correct[row, wanted[""]]}

        estimates, rounds = ask_in_rounds(
            {"": model},
            {"": priors[position]},
            answer,
            max_items=k,
            round_size=ADAPTIVE_ROUND,
        )
        scores[position] = estimates[""].score
    return scores, rounds


def _allocation(
    errors: pd.DataFrame, width: dict[tuple[str, int], pd.Series], folds, benchmarks, budgets
) -> pd.DataFrame:
    """The hybrid's mean MAE at totals of k items per benchmark: spent k each, or by `allocate_items`.

    Each fold allocates from its own widths (learnt inside its training folds); the held-out rows then
    take the hybrid's error at their benchmark's allocated k.
    """
    hybrid = errors.xs("hybrid", level="estimator")
    rows = {}
    for each in (k for k in budgets if k > 0):
        total, equal, allocated, spent = each * len(benchmarks), [], [], []
        for _, test in folds:
            names = width[(benchmarks[0], 0)].index[test]  # the fold's held-out checkpoints
            fold_widths = pd.DataFrame(
                {k: [float(width[(b, k)].iloc[test].median()) for b in benchmarks] for k in budgets},
                index=benchmarks,
            )
            chosen = allocate_items(fold_widths, total)
            equal.append(hybrid.loc[[(b, each) for b in benchmarks], names].to_numpy())
            allocated.append(hybrid.loc[[(b, chosen[b]) for b in benchmarks], names].to_numpy())
            spent.append(int(chosen.sum()))
        rows[total] = {
            "equal": float(np.concatenate(equal, axis=1).mean()),
            "allocated": float(np.concatenate(allocated, axis=1).mean()),
            "spent": float(np.mean(spent)),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["equal", "allocated", "spent"])


def measure_frontier(
    dataset: Dataset,
    items: dict[str, BenchmarkItems],
    protocol: str = "new-run",
    budgets: tuple[int, ...] = BUDGETS,
    jobs: int = 1,
) -> Frontier:
    """Held-out MAE of every estimator at every budget under `protocol` (items rows follow `dataset`).

    Budgets above the smallest benchmark's item count are left out: past answering every item, more
    items buy nothing, and each budget costs as much as any other to measure.
    """
    fewest = min(len(items[b].items) for b in dataset.benchmarks)
    budgets = tuple(k for k in budgets if k <= fewest)
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
    # (benchmark, estimator, k) -> [draws, rows] predictions (one draw unless random), NaN where untested
    predicted: dict[tuple[str, str, int], np.ndarray] = {}
    width: dict[tuple[str, int], pd.Series] = {}  # (benchmark, k) -> `hybrid`'s interval half-width per row

    def put(key: tuple[str, str, int], test: np.ndarray, values: np.ndarray) -> None:
        values = np.atleast_2d(values)
        predicted.setdefault(key, np.full((len(values), len(x)), np.nan))[:, test] = values

    chosen: list[dict] = []
    rounds: dict[int, int] = {}  # k -> prefill rounds of the adaptive anchors
    for (benchmark, fold), rows in zip(tasks, results, strict=True):
        for row in rows:
            put((benchmark, row["estimator"], row["k"]), row["test"], row["predicted"])
            if "rounds" in row:  # every benchmark's round is the same prefill: the most any needs
                rounds[row["k"]] = max(rounds.get(row["k"], 0), row["rounds"])
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
                    put((benchmark, estimator, 0), test, table[benchmark].to_numpy())
                    if estimator == "hybrid":
                        # bounds are clipped to [0, 100]: the unclipped side has the half-width
                        score = table[benchmark]
                        half = np.maximum(
                            table[f"{benchmark}_upper"] - score, score - table[f"{benchmark}_lower"]
                        )
                        width.setdefault((benchmark, 0), pd.Series(np.nan, index=x.index))
                        width[(benchmark, 0)].iloc[test] = half.to_numpy()
    names = x.index[tested]
    errors: dict[tuple[str, str, int], np.ndarray] = {}
    ordering: dict[tuple[str, int], np.ndarray] = {}  # summed over benchmarks: pairs ordered right, per gap
    pairs: dict[tuple[str, int], np.ndarray] = {}  # and pairs, per gap
    for (benchmark, estimator, k), values in predicted.items():
        actual = items[benchmark].score[tested]
        guess = values[:, tested]
        if estimator == "subset":  # the exact expectation over draws, not the draws' sample of it
            data = items[benchmark].rows(tested)
            right, n = data.correct.sum(1).astype(int), np.full(len(tested), data.correct.shape[1])
            errors[(benchmark, estimator, k)] = subset_abs_error(right, n, k)
        else:
            errors[(benchmark, estimator, k)] = np.abs(guess - actual).mean(0)
        count, right_pairs = ordering_counts(actual, guess, ORDERING_GAPS)
        ordering[(estimator, k)] = ordering.get((estimator, k), 0) + right_pairs
        pairs[(estimator, k)] = pairs.get((estimator, k), 0) + count
    error_table = pd.DataFrame.from_dict(errors, orient="index", columns=names)
    error_table.index = pd.MultiIndex.from_tuples(error_table.index, names=["benchmark", "estimator", "k"])
    index = pd.MultiIndex.from_product(
        [dataset.benchmarks, FRONTIER_ESTIMATORS], names=["benchmark", "estimator"]
    )
    mae = error_table.mean(axis=1).unstack("k").reindex(index=index, columns=list(budgets))
    order_index = pd.MultiIndex.from_product([FRONTIER_ESTIMATORS, ORDERING_GAPS], names=["estimator", "gap"])
    shares = pd.DataFrame(np.nan, index=order_index, columns=list(budgets))
    for (estimator, k), right_pairs in ordering.items():
        shares.loc[estimator, k] = right_pairs / np.maximum(pairs[(estimator, k)], 1)
    pair_counts = pd.Series(next(iter(pairs.values())), index=ORDERING_GAPS) if pairs else pd.Series()
    coverage = pd.DataFrame(np.nan, index=dataset.benchmarks, columns=list(budgets))
    for (benchmark, k), half in width.items():
        actual = items[benchmark].score[tested]
        error = np.abs(predicted[(benchmark, "hybrid", k)][0, tested] - actual)
        coverage.loc[benchmark, k] = float((error <= half.iloc[tested].to_numpy() + 1e-9).mean())
    allocation = (
        _allocation(error_table, width, folds, dataset.benchmarks, budgets)
        if 0 in budgets and answered
        else pd.DataFrame(columns=["equal", "allocated", "spent"])
    )
    return Frontier(
        protocol,
        tuple(budgets),
        mae,
        pd.DataFrame(chosen),
        coverage,
        errors=error_table,
        ordering=shares,
        pairs=pair_counts,
        allocation=allocation,
        rounds=pd.Series(rounds, dtype=int).reindex(list(budgets), fill_value=0),
    )


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
    rounds = "".join(f"{n:>8}" if n else f"{'-':>8}" for n in result.rounds)
    lines.append(f"{'adaptive rounds':<{width}}{rounds}")
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
            f"per benchmark, k = {', '.join(map(str, shown))}: "
            "subset / subset_regression / anchors / hybrid (no heads) / hybrid"
        )
        for benchmark in benchmarks:
            table = result.mae.xs(benchmark, level="benchmark")
            parts = [" / ".join(f"{table.loc[e, k]:.1f}" for e in DETAIL_ESTIMATORS) for k in shown]
            lines.append(f"{benchmark:<{width}}" + "    ".join(parts))
    if not result.ordering.dropna(how="all").empty:
        gaps = " / ".join(f"{gap:g}" for gap in ORDERING_GAPS)
        counts = " / ".join(str(int(n)) for n in result.pairs)
        lines += ["", f"held-out pairs ordered right (%), at least {gaps} points apart ({counts} pairs)"]
        lines.append(f"{'':<{width}}" + "".join(f"{f'k={k}':>16}" for k in budgets))
        for estimator in FRONTIER_ESTIMATORS:
            table = result.ordering.xs(estimator, level="estimator")
            cells = [
                "/".join(f"{100 * v:.0f}" for v in table[k]) if table[k].notna().all() else "-"
                for k in budgets
            ]
            lines.append(f"{estimator:<{width}}" + "".join(f"{c:>16}" for c in cells))
    if not result.allocation.empty:
        lines += ["", "hybrid, mean MAE at a total of items: k per benchmark / where intervals narrow most"]
        for total, row in result.allocation.iterrows():
            lines.append(
                f"{f'{total} items':<{width}}{row['equal']:>8.1f} / {row['allocated']:.1f}"
                f" ({row['spent']:.0f} spent)"
            )
    return "\n".join(lines)
