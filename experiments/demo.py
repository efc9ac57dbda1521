"""`headcast demo`: the whole claim, measured end to end on this machine.

Builds (or reuses) a zoo, extracts head features for every checkpoint, fits predictors with
whole training runs held out, and compares headcast's held-out error with the cheap
alternatives: the mean score, the benchmark run on as many items as the probe set has
forward passes, and the training step alone. Then the cost–error frontier: at every budget of
answered items per benchmark, random items, anchor items and the hybrid estimators, under the
protocols asked for. Everything lands in MLflow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from headcast.arguments import add_experiment_flag, add_jobs_flag, add_seed_flag, experiment_name
from headcast.contract import ExtractionSettings
from headcast.experiments.layout import ZooLayout
from headcast.experiments.report import settings_from_config, write_report
from headcast.experiments.zoo import build, load_config
from headcast.experiments.zoo_tracking import log_training_runs
from headcast.extract import read_probes
from headcast.files import atomic_output
from headcast.predictor import last_checkpoints
from headcast.tables import write_features

if TYPE_CHECKING:
    from headcast.predictor.dataset import Dataset
    from headcast.predictor.tracking import FitReport


def extract_zoo(zoo: Path, progress: bool = True) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Features and per-head tables of every zoo checkpoint, written beside the zoo (cached)."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract import extract_features, per_head_tables

    layout = ZooLayout(zoo)
    folders = layout.checkpoint_folders()
    names = [layout.checkpoint_name(f) for f in folders]
    settings = ExtractionSettings()
    table, metrics = extract_features(folders, read_probes(layout.probes), settings, names, progress)
    per_head = per_head_tables(metrics, settings.thresholds)
    write_features(table, {m.checkpoint: m.settings for m in metrics}, layout.features)  # for reuse
    with atomic_output(layout.per_head) as tmp:
        per_head.to_parquet(tmp, index=False)
    return table, {m.checkpoint: m.settings for m in metrics}, per_head


def summary(report, dataset) -> dict:
    """The demo's JSON: per benchmark, headcast's held-out MAE and Spearman next to each baseline."""
    chosen = report.metrics[report.chosen]
    benchmarks = {}
    for b in dataset.benchmarks:
        entry = {
            "headcast": {
                "mae": round(float(chosen.loc[b, "mae"]), 3),
                "spearman": round(float(chosen.loc[b, "spearman"]), 3),
                "coverage": round(float(chosen.loc[b, "coverage"]), 3),
            }
        }
        entry |= {name: {"mae": round(float(mae[b]), 3)} for name, mae in report.baselines.items()}
        benchmarks[b] = entry
    return {
        "benchmarks": benchmarks,
        "estimator": report.chosen,
        "checkpoints": len(dataset.features),
        "runs": int(dataset.groups.nunique()),
        "model_version": report.model_version,
        "mlflow_run_id": report.run_id,
    }


def predicted_vs_actual_table(report, dataset, last_only: bool = True) -> str:
    """Held-out predictions next to measured scores (each run's last checkpoint by default)."""

    rows = dataset.scores.index
    if last_only:
        rows = sorted(last_checkpoints(dataset.scores.index).values())
    width = max(len(r) for r in rows) + 2
    header = f"{'checkpoint':<{width}}" + "".join(f"{b[:16]:>18}" for b in dataset.benchmarks)
    lines = [header, f"{'':<{width}}" + "".join(f"{'predicted/actual':>18}" for _ in dataset.benchmarks)]
    for row in rows:
        cells = "".join(
            f"{report.predictions.loc[row, b]:>10.1f} /{dataset.scores.loc[row, b]:>5.1f}"
            for b in dataset.benchmarks
        )
        lines.append(f"{row:<{width}}{cells}")
    return "\n".join(lines)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - started


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{round(seconds % 60):02d}"


def provenance(zoo: Path, seed: int) -> dict:
    """Where the demo's numbers come from, so a reader can tell why theirs differ.

    The same seed gives the same zoo on one machine, but float kernels differ between CPUs, so another
    CPU trains another zoo: equal `scores_sha256` means the zoo, hence every table, is the same.
    """
    # here, not at the top: loads torch only when this runs
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "seed": seed,
        "scores_sha256": hashlib.sha256(ZooLayout(zoo).scores.read_bytes()).hexdigest()[:12],
    }


def zoo_job_seconds(layout: ZooLayout, since: float) -> dict[str, float] | None:
    """Seconds of work per kind of zoo job (vision, language models, training, scoring), summed over the
    jobs that ran side by side; None when the zoo was not built since `since` (a wall-clock time)."""
    path = layout.build_times
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    kinds = {"vision": "vision", "language": "language models", "train": "training", "score": "scoring"}
    totals: dict[str, float] = {}
    for job, seconds in json.loads(path.read_text()).items():
        kind = kinds.get(job.split(" ", 1)[0])
        if kind:
            totals[kind] = totals.get(kind, 0.0) + seconds
    return {kind: round(t, 1) for kind, t in totals.items()}


def format_stages(seconds: dict[str, float], zoo_jobs: dict[str, float] | None) -> str:
    """One line: each stage's wall time, and what the zoo's jobs spent when it was built now."""
    parts = []
    for stage, t in seconds.items():
        part = f"{stage} {_minutes(t)}"
        if stage == "zoo" and zoo_jobs:
            part += (
                " (job time, side by side: "
                + ", ".join(f"{k} {_minutes(v)}" for k, v in zoo_jobs.items())
                + ")"
            )
        parts.append(part)
    return ", ".join(parts) + f"; total {_minutes(sum(seconds.values()))}"


def run_demo(args: argparse.Namespace) -> int:
    # here, not at the top: loads MLflow, transformers only when this runs
    import mlflow
    from transformers.utils import logging

    # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor import (
        build_dataset,
        chart_view_link,
        fit_and_track,
        load_item_results,
        log_frontier,
        measure_frontier,
        read_scores,
        write_anchor_probes,
    )

    logging.disable_progress_bar()
    zoo = Path(args.zoo or Path("zoo") / args.preset)
    layout = ZooLayout(zoo)
    seconds: dict[str, float] = {}
    started = time.time()
    with _timed(seconds, "zoo"):
        scores_csv = build(args.preset, zoo, args.seed, jobs=args.jobs)
    with _timed(seconds, "extract"):
        features, settings, per_head = extract_zoo(zoo, progress=not args.json)
    with _timed(seconds, "fit"):
        scores = read_scores(scores_csv)
        dataset = build_dataset(features, scores, settings)
        items = scores.pivot_table(index="checkpoint", columns="benchmark", values="n", aggfunc="max")
        probe_count = len(read_probes(layout.probes))
        matrices = load_item_results(layout.items, scores, dataset)
        report = fit_and_track(
            dataset,
            args.experiment,
            probe_count=probe_count,
            items=items.loc[dataset.scores.index],
            per_head=per_head,
            estimators=args.estimators,
            run_name=f"demo-{args.preset}",
            item_results=matrices,
            jobs=args.jobs,
        )
    result = summary(report, dataset)
    with _timed(seconds, "training runs to MLflow"):
        result["training_runs"] = log_held_out_predictions(
            zoo, dataset, report.predictions, args.zoo_experiment
        )
        training_runs = mlflow.get_experiment_by_name(result["training_runs"])
        charts = chart_view_link(training_runs.experiment_id) if training_runs else None
        result["training_runs_charts"] = charts
        anchors = mlflow.artifacts.load_dict(f"runs:/{report.run_id}/anchors.json")
        result["anchors"] = str(write_anchor_probes(anchors, layout.benchmarks, layout.anchors))
    with _timed(seconds, "frontier"):
        frontiers = [
            measure_frontier(dataset, matrices, protocol, jobs=args.jobs) for protocol in args.protocols
        ]
        for result_of_protocol in frontiers:
            log_frontier(result_of_protocol, report.run_id)
    result["frontier"] = frontiers[0].as_json()
    if len(frontiers) > 1:
        result["frontiers"] = [f.as_json() for f in frontiers]
    report_settings = load_config(args.preset).raw.get("report")
    if report_settings is not None and args.report:  # presets that ask for it (full) check the paper's claims
        with _timed(seconds, "report"):
            result["report"] = str(write_report(zoo, layout.report, settings_from_config(report_settings)))
    result["seconds"] = {stage: round(t, 1) for stage, t in seconds.items()}
    result["zoo_jobs"] = zoo_job_seconds(layout, started)
    result["provenance"] = provenance(zoo, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    print_results(result, report, dataset, frontiers)
    return 0


def print_results(result: dict, report: FitReport, dataset: Dataset, frontiers: list) -> None:
    """What the demo shows a person: held-out predictions, per-benchmark errors, the frontiers."""
    # here, not at the top: loads MLflow, scikit-learn only when this runs
    from headcast.predictor import CHAMPION, REGISTERED_NAME, format_frontier, format_report

    print(f"\nheld-out predictions ({report.chosen}; every run predicted by a model that never saw it):")
    print(predicted_vs_actual_table(report, dataset))
    print(
        f"\nper benchmark, {dataset.groups.nunique()} runs x {len(dataset.features)} checkpoints, "
        "runs held out:"
    )
    print(format_report(report, dataset.benchmarks))
    beaten = sum(
        result["benchmarks"][b]["headcast"]["mae"] < result["benchmarks"][b]["mean_baseline"]["mae"]
        for b in dataset.benchmarks
    )
    print(
        f"\nheadcast ({report.chosen}) beats the mean baseline on {beaten}/{len(dataset.benchmarks)} "
        "benchmarks; "
        f"registered {REGISTERED_NAME} v{report.model_version} as @{CHAMPION} (MLflow run {report.run_id})."
    )
    for result_of_protocol in frontiers:
        print(f"\n{format_frontier(result_of_protocol)}")
    print(
        f"\nanchor items ({result['anchors']}): a new checkpoint answers them in one more prefill, "
        "'headcast predict CKPT --probes PROBES --anchors ANCHORS'"
    )
    print(
        f"training runs, held-out predictions beside measured scores: MLflow experiment "
        f"{result['training_runs']!r} ('.venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db')"
    )
    if result["training_runs_charts"]:
        print(f"their charts (the UI may open the experiment elsewhere): {result['training_runs_charts']}")
    if "report" in result:
        print(f"findings report: {result['report']}")
    print(f"\ntime per stage: {format_stages(result['seconds'], result.get('zoo_jobs'))}")
    machine = result["provenance"]
    print(
        f"these numbers come from this machine ({machine['cpu']}, {machine['cores']} cores, torch "
        f"{machine['torch']}) and seed {machine['seed']}; the zoo's scores.csv has sha256 "
        f"{machine['scores_sha256']}... Where the README's differ, compare its fingerprint: another CPU "
        "trains another zoo (docs/zoo.md#where-the-numbers-come-from)."
    )


def log_held_out_predictions(zoo: Path, dataset, predictions, experiment: str) -> str:
    """The zoo's training runs into MLflow (`experiments.zoo_tracking`), each with the held-out predictions
    of its checkpoints beside its measured scores; returns the experiment's name."""
    # here, not at the top: loads MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor import log_run_predictions, predicted_steps

    for name, run_id in log_training_runs(zoo, experiment).items():
        rows = predictions[(dataset.groups == name).to_numpy()]
        steps = dataset.steps[rows.index].astype(int)
        new = ~steps.isin(predicted_steps(run_id)).to_numpy()  # a rerun adds no second point
        if new.any():
            log_run_predictions(run_id, steps[new].tolist(), rows[new])
    return experiment


def _protocols(text: str) -> tuple[str, ...]:
    # here, not at the top: loads scikit-learn only when this runs
    from headcast.predictor import PROTOCOLS

    names = PROTOCOLS if text == "all" else tuple(p for p in text.split(",") if p)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown protocol {unknown[0] if unknown else text!r}; use {', '.join(PROTOCOLS)} or all"
        )
    return names


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build the zoo, extract, fit with runs held out, compare with baselines",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--preset", default="small", help="zoo preset: smoke, small or full (default small)")
    parser.add_argument("--zoo", type=Path, help="zoo folder (default zoo/<preset>)")
    add_seed_flag(parser)
    add_jobs_flag(parser, os.cpu_count() or 1, "zoo runs trained at once (default: CPU count)")
    add_experiment_flag(parser, "headcast-demo", "MLflow experiment of the fit")
    parser.add_argument(
        "--zoo-experiment",
        type=experiment_name,
        default="headcast-zoo",
        help="MLflow experiment of the zoo's training runs, with held-out predictions beside measured scores",
    )
    parser.add_argument(
        "--estimators",
        type=lambda text: tuple(e for e in text.split(",") if e),
        default=("auto",),
        help="label-free estimators to compare (default auto; e.g. auto,ridge,lightgbm,knn)",
    )
    parser.add_argument(
        "--protocols",
        type=_protocols,
        default=("new-run",),
        help="frontier protocols, comma-separated or 'all' (new-run, new-family, during-training, "
        "stronger; default new-run)",
    )
    parser.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the findings report that presets with a `report:` setting (full) write",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_demo)
