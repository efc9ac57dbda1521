"""The report's model work: extraction, ablations and the probe-size refits, gathered into `Findings`.

Everything slow happens here (extraction is cached by content in HEADCAST_CACHE); what comes out are
tables that `measures` and `claims` read without touching a model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from headcast.contract import ExtractionSettings
from headcast.errors import HeadcastError
from headcast.experiments.layout import probe_file
from headcast.experiments.report.measures import (
    correlations,
    depth_profile,
    head_sets,
    visual_sets_along_training,
    within_run_by_data,
)
from headcast.experiments.report.settings import ReportSettings
from headcast.experiments.report.tables import Findings, Zoo
from headcast.experiments.suite import write_probes
from headcast.extract import cache_root, read_probes
from headcast.schema import ANSWER_TOKENS, FEATURE_SCHEMA_VERSION


def ablation_means(checkpoint, zoo: Zoo, settings: ReportSettings) -> dict | None:
    """What `mean` ablation replaces each head with: its mean output over the zoo's own probe set.

    Zero ablation needs nothing (None).
    """
    if settings.mode != "mean":
        return None
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract import head_output_means, read_probes

    probes = read_probes(zoo.layout.probes)
    return head_output_means(checkpoint, probes, settings.batch_size)


def ablation_results(
    zoo: Zoo, per_head: pd.DataFrame, settings: ReportSettings, progress: bool = True
) -> pd.DataFrame:
    """Accuracy per run's final checkpoint, head set and benchmark, scored with the evaluator's rules."""

    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract import (
        accuracy_without_heads,
        encoded_suite,
        load_checkpoint,
        load_suite,
        model_shape,
    )

    suite = load_suite(zoo.layout.benchmarks)
    # as the zoo was scored
    answer_tokens = int(zoo.stamp.get("config", {}).get("answer_tokens", ANSWER_TOKENS))
    if settings.ablation_items:
        suite = {name: items[: settings.ablation_items] for name, items in suite.items()}
    rows = []
    for run, final in tqdm(list(zoo.finals().items()), desc="ablate", unit="run", disable=not progress):
        checkpoint = load_checkpoint(zoo.folder(final), device="cpu")
        n_layers, n_heads = model_shape(checkpoint)
        means = ablation_means(checkpoint, zoo, settings)
        encoded = encoded_suite(checkpoint, suite, settings.batch_size)
        for entry in head_sets(per_head[per_head["checkpoint"] == final], settings):
            accuracy = accuracy_without_heads(
                checkpoint,
                suite,
                entry["heads"],
                settings.mode,
                means,
                settings.batch_size,
                max_new_tokens=answer_tokens,
                encoded=encoded,
            )
            for benchmark, value in accuracy.items():
                rows.append(
                    {
                        "run": run,
                        "checkpoint": final,
                        "kind": entry["kind"],
                        "k": entry["k"],
                        "seed": entry["seed"],
                        "layers": entry.get("layers", 0),
                        "total_heads": n_layers * n_heads,
                        "heads": ",".join(f"{layer}:{head}" for layer, head in entry["heads"]),
                        "benchmark": benchmark,
                        "accuracy": value,
                    }
                )
    table = pd.DataFrame(rows)
    baseline = table[table["kind"] == "none"].set_index(["run", "benchmark"])["accuracy"]
    keys = pd.MultiIndex.from_arrays([table["run"], table["benchmark"]])
    table["change"] = table["accuracy"] - baseline.reindex(keys).to_numpy()
    return table


def probe_pool(zoo: Zoo, size: int) -> tuple[Path, str]:
    """A probe set of at least `size` items: the zoo's own, else a larger one written on other images."""

    own = zoo.layout.probes
    if len(read_probes(own)) >= size:
        return own, "the zoo's own probe set"
    config, seed = zoo.stamp["config"], int(zoo.stamp["seed"]) + 1  # another seed: other images
    folder = cache_root() / "report-probes" / f"seed{seed}-n{size}-r{config['resolution']}-g{config['grid']}"
    if not probe_file(folder).exists():
        write_probes(folder, seed, size, config["resolution"], config["grid"])
    source = f"{size} extra unlabeled probes written by the zoo's probe writer (seed {seed})"
    return probe_file(folder), source


def probe_size_curve(
    zoo: Zoo, settings: ReportSettings, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Held-out MAE (runs held out) of the predictor fitted on features from nested probe subsets.

    Per-sample metrics do not depend on which other probes share the set, so the features of a
    subset are the features of its samples: one extraction on the largest set serves every size.
    Returns (MAE per size, draw and benchmark; mean-score baseline MAE per benchmark; probe source).
    """
    # here, not at the top: loads scikit-learn, SciPy, torch, transformers only when this runs
    from headcast.extract import extract_features, feature_row, read_probes
    from headcast.predictor import (
        MIN_GROUPS,
        build_dataset,
        held_out_predictions,
        mean_baseline,
        run_folds,
        score_predictions,
    )

    runs = len(zoo.finals())
    if runs < MIN_GROUPS:
        raise HeadcastError(f"the zoo has {runs} runs; held-out error needs at least {MIN_GROUPS}")
    largest = max(settings.probe_sizes)
    path, source = probe_pool(zoo, largest)
    probes = read_probes(path)[:largest]
    extraction = ExtractionSettings(batch_size=32)
    _, metrics = extract_features(zoo.folders, probes, extraction, zoo.names, progress)
    meta = {m.checkpoint: m.settings for m in metrics}
    rows, baseline = [], None
    for size in sorted(s for s in settings.probe_sizes if s <= len(probes)):
        for draw in range(settings.probe_draws):
            order = np.random.default_rng(draw).permutation(len(probes))[:size]
            table = pd.DataFrame(
                [
                    {"checkpoint": m.checkpoint, "schema_version": FEATURE_SCHEMA_VERSION}
                    | feature_row(m.samples[order], extraction.thresholds)
                    for m in metrics
                ]
            )
            dataset = build_dataset(table, zoo.scores, meta)
            folds = run_folds(dataset)
            if baseline is None:
                baseline = score_predictions(dataset, mean_baseline(dataset, folds))["mae"]
            mae = score_predictions(dataset, held_out_predictions(dataset, settings.estimator, folds))["mae"]
            rows += [{"probes": size, "draw": draw, "benchmark": b, "mae": float(v)} for b, v in mae.items()]
    if baseline is None:  # no --probe-sizes fits the pool, so nothing was measured
        raise HeadcastError(
            f"{path} holds {len(probes)} probes, fewer than the smallest --probe-sizes "
            f"({min(settings.probe_sizes)}); pass smaller sizes"
        )
    return pd.DataFrame(rows), baseline.rename("mae").to_frame(), source


def measure(zoo: Zoo, settings: ReportSettings, progress: bool = True) -> tuple[Findings, pd.DataFrame]:
    """Run every measurement of the report; returns the findings and the checkpoints' feature table."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract import extract_features, per_head_tables, read_probes

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    probes = read_probes(zoo.layout.probes)
    extraction = ExtractionSettings(batch_size=32)
    features, metrics = extract_features(zoo.folders, probes, extraction, zoo.names, progress)
    per_head = per_head_tables(metrics, extraction.thresholds)
    seconds["extraction"] = time.perf_counter() - t
    profile = depth_profile(per_head, settings.visual_rate)
    training = visual_sets_along_training(per_head, settings.visual_rate)
    wide = zoo.wide.loc[zoo.names]
    corr = correlations(features, wide)
    by_data = within_run_by_data(features, wide, zoo.run_data())
    t = time.perf_counter()
    ablation = ablation_results(zoo, per_head, settings, progress)
    seconds["ablations"] = time.perf_counter() - t
    t = time.perf_counter()
    curve = baseline = None
    try:
        curve, baseline, source = probe_size_curve(zoo, settings, progress)
    except HeadcastError as err:  # e.g. fewer than three runs: no grouped cross-validation
        source = str(err)
    seconds["probe-size curve"] = time.perf_counter() - t
    findings = Findings(
        zoo=zoo,
        settings=settings,
        profile=profile,
        training=training,
        corr=corr,
        by_data=by_data,
        ablation=ablation,
        curve=curve,
        curve_baseline=baseline,
        curve_source=source,
        n_probes=len(probes),
        seconds=seconds,
    )
    return findings, features
