"""Where to spend a few full evaluations per training run, measured on built zoos.

`python -m headcast.experiments.scheduling ZOO [ZOO ...]` prints, per zoo and over all of them, for
budgets of 1, 2 and 3 full evaluations per run, the mean over runs (and its standard error across
runs) of each run's trajectory MAE: every checkpoint's error, 0 where it was benchmarked, else the
error of its estimate as made at its step (label-free until the run has a real score, then the
scheduler's within-run estimator). Policies:

    evenly spaced        every (n / budget)-th checkpoint, the last included (at budget 1: last-only)
    last-only            the last `budget` checkpoints
    scheduler            `EvaluationScheduler` with confidence signals only (heads out of its
                         signals and of its within-run estimator): its expected-error rule, or a
                         fixed schedule where the training runs favour one
    rule only            the same, always its expected-error rule
    scheduler + heads    with the head-metric signals added
    no full evaluation   the label-free prediction of every checkpoint, for reference

The fixed schedules use the confidence scheduler's estimates, so they differ from it only in where the
budget goes. Whole runs are held out (5 folds): the label-free predictor and the schedulers are fitted
on the other runs, the label-free predictions the schedulers learn from are out of fold there too.
Reads the zoos (features through the extraction cache), writes nothing into them.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from headcast.contract import ExtractionSettings
from headcast.experiments.layout import ZooLayout
from headcast.extract import extract_features, read_probes
from headcast.predictor import (
    CONFIDENCE_SIGNALS,
    EXPECTED_ERROR_RULE,
    SIGNALS,
    Dataset,
    EvaluationScheduler,
    HeadcastPredictor,
    build_dataset,
    evenly_spaced,
    held_out_predictions,
    last_only,
    read_scores,
    run_folds,
    trajectory_errors,
)

BUDGETS = (1, 2, 3)
POLICIES = ("evenly spaced", "last-only", "scheduler", "rule only", "scheduler + heads")
LABEL_FREE_ONLY = "no full evaluation"


def zoo_dataset(zoo: Path) -> Dataset:
    """Features (default extraction settings, through the cache) and scores of a built zoo."""
    layout = ZooLayout(zoo)
    folders = layout.checkpoint_folders()
    names = [layout.checkpoint_name(f) for f in folders]
    table, metrics = extract_features(folders, read_probes(layout.probes), ExtractionSettings(), names, False)
    return build_dataset(table, read_scores(layout.scores), {m.checkpoint: m.settings for m in metrics})


def rows(dataset: Dataset, index: np.ndarray) -> Dataset:
    """The dataset's rows at positional `index`."""
    return dataclasses.replace(
        dataset,
        features=dataset.features.iloc[index],
        scores=dataset.scores.iloc[index],
        groups=dataset.groups.iloc[index],
        steps=dataset.steps.iloc[index],
        families=dataset.families.iloc[index],
    )


def trajectory_table(
    dataset: Dataset, estimator: str = "auto", budgets: Sequence[int] = BUDGETS
) -> pd.DataFrame:
    """Per held-out run, budget and policy: the trajectory MAE (mean over its checkpoints)."""
    records = []
    folds = run_folds(dataset)
    for train, test in tqdm(folds, desc="folds", leave=False):
        known = rows(dataset, train)
        inner = held_out_predictions(known, estimator, run_folds(known))
        fit = (known.features, known.scores, known.groups, known.steps, inner)
        predicted = HeadcastPredictor(estimator).fit(known.features, known.scores, known.groups)
        held = rows(dataset, test)
        label_free = predicted.predict(held.features)
        for budget in budgets:
            schedulers = {
                "scheduler": EvaluationScheduler(budget, CONFIDENCE_SIGNALS).fit(*fit),
                "rule only": EvaluationScheduler(
                    budget, CONFIDENCE_SIGNALS, policies=[EXPECTED_ERROR_RULE]
                ).fit(*fit),
                "scheduler + heads": EvaluationScheduler(budget, SIGNALS).fit(*fit),
            }
            for run, index in held.groups.groupby(held.groups).groups.items():
                n = len(index)
                plans = {"evenly spaced": evenly_spaced(budget, n), "last-only": last_only(budget, n)}
                for policy in POLICIES:
                    scheduler = schedulers.get(policy, schedulers["scheduler"])
                    errors = trajectory_errors(
                        scheduler.start(n),
                        held.features.loc[index],
                        held.scores.loc[index],
                        held.steps.loc[index],
                        label_free.loc[index],
                        plans.get(policy),
                    )
                    record = {"run": run, "budget": budget, "policy": policy, "mae": errors.mean()}
                    records.append(
                        record | {"estimator": scheduler.estimator_name_, "chosen": scheduler.policy_}
                    )
                alone = (label_free.loc[index, held.benchmarks] - held.scores.loc[index]).abs().mean(axis=1)
                records.append({"run": run, "budget": budget, "policy": LABEL_FREE_ONLY, "mae": alone.mean()})
    return pd.DataFrame(records)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± standard error across runs per policy and budget; heads minus confidence and the scheduler
    minus evenly spaced, paired by run."""
    wide = table.pivot_table(index=["budget", "run"], columns="policy", values="mae")
    wide["heads - confidence"] = wide["scheduler + heads"] - wide["scheduler"]
    wide["scheduler - evenly spaced"] = wide["scheduler"] - wide["evenly spaced"]
    grouped = wide.groupby(level="budget")
    mean, se = grouped.mean(), grouped.std(ddof=1) / np.sqrt(grouped.size().to_numpy()[:, None])
    cells = mean.round(2).astype(str) + " ± " + se.round(2).astype(str)
    return cells[[LABEL_FREE_ONLY, *POLICIES, "heads - confidence", "scheduler - evenly spaced"]].T


def chosen(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """How often each within-run estimator or policy (`what`) was chosen on the training folds, per
    scheduler and budget (counted over held-out runs)."""
    schedulers = table[table["policy"].str.startswith("scheduler")]
    return schedulers.groupby(["policy", "budget"])[what].value_counts().unstack(fill_value=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoos", type=Path, nargs="+")
    parser.add_argument(
        "--estimator", default="auto", help="the label-free predictor (default: the champion's)"
    )
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    tables = []
    with threadpool_limits(limits=1):
        for zoo in args.zoos:
            dataset = zoo_dataset(zoo)
            table = trajectory_table(dataset, args.estimator).assign(zoo=zoo.name)
            runs, checkpoints = dataset.groups.nunique(), len(dataset.features)
            print(
                f"\n{zoo.name}: {runs} runs, {checkpoints} checkpoints; trajectory MAE, mean ± SE across runs"
            )
            print(summarise(table))
            print("\nwithin-run estimator chosen (held-out runs)\n", chosen(table, "estimator"))
            print("\nwhere the budget went (held-out runs)\n", chosen(table, "chosen"))
            tables.append(table)
    if len(tables) > 1:
        pooled = pd.concat(tables).assign(run=lambda t: t["zoo"] + "/" + t["run"])
        print(f"\nall zoos ({pooled['run'].nunique()} runs)")
        print(summarise(pooled))


if __name__ == "__main__":
    main()
