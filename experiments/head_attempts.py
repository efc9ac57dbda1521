"""Where do head metrics earn a place in the estimate? Four attempts, measured on a built zoo.

`python -m headcast.experiments.head_attempts zoo/small` prints, all held out by whole runs:
1. every hybrid method forced (no selection), with confidence only and with heads added, per k;
2. per-head features (not summarised) within one architecture, against the summary row;
3. during training: the change in head metrics (or confidence) since the run's last benchmarked
   checkpoint, against carrying its last score forward;
4. heads against confidence on the checkpoints where confidence says least (its lowest third).
The numbers go to docs/estimation.md; nothing here is used by the product.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from headcast.experiments.demo import extract_zoo
from headcast.experiments.layout import ZooLayout
from headcast.predictor import (
    COARSE_RIDGE_ALPHAS,
    AnchorPredictor,
    Dataset,
    GroupFolds,
    HeadcastPredictor,
    OneGroupHeldOut,
    build_dataset,
    during_training_folds,
    label_free_feature_sets,
    load_item_results,
    read_scores,
)
from headcast.schema import confidence_feature_columns, head_feature_columns


def load(zoo: Path) -> tuple[Dataset, dict, pd.DataFrame]:

    layout = ZooLayout(zoo)
    features, settings, per_head = extract_zoo(zoo, progress=False)
    scores = read_scores(layout.scores)
    dataset = build_dataset(features, scores, settings)
    return dataset, load_item_results(layout.items, scores, dataset), per_head


def forced_methods(dataset: Dataset, items: dict, budgets=(4, 8, 16)) -> pd.DataFrame:
    """Held-out MAE (mean over benchmarks) of each method, no selection: rows methods, columns k."""
    x = dataset.features
    sets = {name: x[columns].to_numpy(float) for name, columns in label_free_feature_sets(x.columns).items()}
    groups = dataset.groups.to_numpy()
    folds = list(GroupFolds(5).split(x, groups=groups))
    errors: dict[tuple[str, int], list[float]] = {}
    for k in budgets:
        for _benchmark, data in items.items():
            predicted: dict[str, np.ndarray] = {}
            for train, test in folds:
                model = AnchorPredictor(k).fit(
                    data.rows(train), {n: f[train] for n, f in sets.items()}, groups[train]
                )
                methods = [m for m in model.cv_mae_ if not m.startswith("features+")]
                for method in methods:
                    predicted.setdefault(method, np.full(len(x), np.nan))[test] = model.predict(
                        data.correct[test][:, model.anchors_],
                        data.prob[test][:, model.anchors_],
                        {n: f[test] for n, f in sets.items()},
                        method,
                    )
            for method, values in predicted.items():
                errors.setdefault((method, k), []).append(float(np.abs(values - data.score).mean()))
    table = pd.Series({key: np.mean(v) for key, v in errors.items()}).unstack()
    return table.round(2)


def per_head_within_one_shape(dataset: Dataset, per_head: pd.DataFrame, items: dict) -> pd.DataFrame:
    """Runs of the most common shape: label-free MAE with per-head columns, summary row, confidence."""
    shapes = per_head.groupby("checkpoint").apply(lambda t: (t["layer"].max() + 1, t["head"].max() + 1))
    shape = shapes.value_counts().idxmax()
    rows = shapes.index[shapes == shape].intersection(dataset.features.index)
    wide = per_head.set_index("checkpoint").loc[rows]
    metrics = ["visual_mass", "text_mass", "region_mass", "concentration", "visual_head_rate"]
    raw = wide.pivot_table(index=wide.index, columns=["layer", "head"], values=metrics)
    raw.columns = [f"{m}.L{layer}H{head}" for m, layer, head in raw.columns]
    x = dataset.features.loc[rows]
    y, g = dataset.scores.loc[rows], dataset.groups.loc[rows]
    candidates = {
        "per-head (raw)": raw.loc[rows],
        "summary heads": x[head_feature_columns(x.columns)],
        "confidence": x[confidence_feature_columns(x.columns)],
        "confidence + per-head": pd.concat([x[confidence_feature_columns(x.columns)], raw.loc[rows]], axis=1),
    }
    out = {}
    for name, features in candidates.items():
        predicted = []
        for train, test in OneGroupHeldOut().split(features, groups=g):
            model = HeadcastPredictor("ridge").fit(features.iloc[train], y.iloc[train], g.iloc[train])
            predicted.append(model.predict(features.iloc[test])[dataset.benchmarks])
        out[name] = (pd.concat(predicted).loc[rows] - y).abs().mean()
    table = pd.DataFrame(out)
    table.loc["mean"] = table.mean()
    table.attrs["shape"] = (
        f"{shape[0]} layers x {shape[1]} heads, {g.nunique()} runs, {len(rows)} checkpoints"
    )
    return table.round(2)


def changes_during_training(dataset: Dataset) -> pd.DataFrame:
    """During training: later checkpoints from the last benchmarked one, by carrying or by feature changes.

    A ridge learns score changes from feature changes on consecutive checkpoints of the training folds.
    """
    x, y = dataset.features, dataset.scores
    groups, steps = dataset.groups, dataset.steps
    heads, confidence = head_feature_columns(x.columns), confidence_feature_columns(x.columns)
    errors: dict[str, list[pd.DataFrame]] = {}
    for train, test in during_training_folds(dataset):
        train_rows = x.index[train]
        pairs = []  # (earlier, later) within a run, among training rows
        for _, run in steps.loc[train_rows].groupby(groups.loc[train_rows]):
            ordered = run.sort_values().index
            pairs += list(itertools.pairwise(ordered))
        last_known = {}
        for checkpoint in x.index[test]:
            known = steps.loc[train_rows][groups.loc[train_rows] == groups[checkpoint]]
            last_known[checkpoint] = known.idxmax()
        anchor = pd.Index([last_known[c] for c in x.index[test]])
        carried = pd.DataFrame(y.loc[anchor].to_numpy(), index=x.index[test], columns=y.columns)
        errors.setdefault("carry last score", []).append((carried - y.iloc[test]).abs())
        for name, columns in (("+ change in heads", heads), ("+ change in confidence", confidence)):
            earlier, later = [p[0] for p in pairs], [p[1] for p in pairs]
            dx = x.loc[later, columns].to_numpy() - x.loc[earlier, columns].to_numpy()
            dy = y.loc[later].to_numpy() - y.loc[earlier].to_numpy()
            scale = dx.std(0) + 1e-9
            model = RidgeCV(alphas=COARSE_RIDGE_ALPHAS).fit(np.nan_to_num(dx / scale), dy)
            change = x.loc[x.index[test], columns].to_numpy() - x.loc[anchor, columns].to_numpy()
            guess = carried + model.predict(np.nan_to_num(change / scale))
            errors.setdefault(name, []).append((guess.clip(0, 100) - y.iloc[test]).abs())
    table = pd.DataFrame({name: pd.concat(parts).mean() for name, parts in errors.items()})
    table.loc["mean"] = table.mean()
    return table.round(2)


def where_confidence_is_weak(dataset: Dataset) -> pd.DataFrame:
    """Label-free MAE of heads, confidence and both, by thirds of the checkpoints' mean confidence."""
    x, y, g = dataset.features, dataset.scores, dataset.groups
    sets = label_free_feature_sets(x.columns)
    models = {
        "heads": [head_feature_columns(x.columns)],
        "confidence": [sets["confidence"]],
        "confidence then heads": list(sets.values()),
    }
    folds = list(GroupFolds(5).split(x, groups=g))
    thirds = pd.qcut(x["confidence.mean"], 3, labels=["lowest third", "middle third", "highest third"])
    out = {}
    for name, feature_sets in models.items():
        predicted = []
        for train, test in folds:
            model = HeadcastPredictor("auto", feature_sets=feature_sets).fit(
                x.iloc[train], y.iloc[train], g.iloc[train]
            )
            predicted.append(model.predict(x.iloc[test])[dataset.benchmarks])
        error = (pd.concat(predicted).loc[x.index] - y).abs().mean(axis=1)
        out[name] = error.groupby(thirds, observed=True).mean()
    return pd.DataFrame(out).round(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo", type=Path)
    args = parser.parse_args()
    dataset, items, per_head = load(args.zoo)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    with threadpool_limits(limits=1):
        print(
            "1. every method forced, runs held out (mean MAE over benchmarks)\n",
            forced_methods(dataset, items),
        )
        within = per_head_within_one_shape(dataset, per_head, items)
        print(
            f"\n2. per-head features within one shape ({within.attrs['shape']}), label-free ridge\n", within
        )
        print(
            "\n3. during training, from the last benchmarked checkpoint\n", changes_during_training(dataset)
        )
        print("\n4. label-free MAE by thirds of mean confidence\n", where_confidence_is_weak(dataset))


if __name__ == "__main__":
    main()
