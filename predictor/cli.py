"""`headcast fit`, `headcast predict` and `headcast predict-runs`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from headcast.arguments import (
    add_dtype_flag,
    add_experiment_flag,
    add_jobs_flag,
    add_model_flag,
    add_placement_flags,
    add_query_flag,
    placement,
)
from headcast.errors import HeadcastError
from headcast.files import check_writable
from headcast.predictor.checkpoints import rename_checkpoints
from headcast.predictor.dataset import build_dataset
from headcast.predictor.item_results import DEFAULT_ANCHORS, load_item_results
from headcast.predictor.registry import CHAMPION, DEFAULT_MODEL, REGISTERED_NAME
from headcast.predictor.regressors import ESTIMATORS
from headcast.predictor.scores import read_items, read_scores
from headcast.predictor.task_cli import write_fitted_task_anchors
from headcast.predictor.training_tables import UPDATED_FROM_TAG, PreviousFit, TrainingTables
from headcast.schema import PER_HEAD_COLUMNS
from headcast.tables import read_features, read_table

ANSWER_TABLE_COLUMNS = ("checkpoint", "item", "task", "correct", "prob")  # what `_answers_of` joins
DEFAULT_ESTIMATORS = ",".join(ESTIMATORS)


def add_predictor_parsers(subparsers: argparse._SubParsersAction) -> None:
    _add_fit_parser(subparsers)
    _add_predict_parser(subparsers)
    _add_predict_runs_parser(subparsers)


def _add_fit_parser(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit",
        help="learn benchmark scores from feature rows, tracked in MLflow",
        description="Evaluate each estimator with whole training runs held out, log everything to MLflow "
        f"and register the best as {REGISTERED_NAME}@{CHAMPION}.",
    )
    fit.add_argument("--features", required=True, type=Path, help="feature table from 'headcast extract'")
    fit.add_argument("--scores", required=True, type=Path, help="scores CSV or a folder of lmms-eval results")
    fit.add_argument(
        "--checkpoint-root",
        type=Path,
        metavar="DIR",
        help="the folder relative checkpoint names stand under: scores and items naming checkpoints by "
        "absolute path (as lmms-eval's pretrained=) match features named relative to it",
    )
    fit.add_argument(
        "--allow-partial",
        action="store_true",
        help="use lmms-eval --limit runs where no full run of the checkpoint and task exists",
    )
    fit.add_argument(
        "--keep-latest",
        action="store_true",
        help="where lmms-eval scored a checkpoint and task twice, use the latest run",
    )
    add_experiment_flag(fit, "headcast", "MLflow experiment name")
    fit.add_argument("--benchmarks", help="comma-separated benchmarks to fit (default: all in the scores)")
    fit.add_argument(
        "--estimators",
        help=f"comma-separated estimators to compare (default {DEFAULT_ESTIMATORS}, or the updated fit's); "
        "the champion is auto (chosen per benchmark inside the training folds) when listed, else the "
        "lowest held-out MAE",
    )
    fit.add_argument("--per-head", type=Path, help="per-head table, to log layer x head heatmaps")
    fit.add_argument(
        "--items",
        type=Path,
        help="per-item results (Parquet/CSV from 'headcast evaluate', or a folder of lmms-eval --log_samples "
        "output): learn anchor items and the hybrid estimator, and measure the cost-error frontier",
    )
    fit.add_argument(
        "--anchors",
        type=int,
        metavar="K",
        help=f"anchor items per benchmark (default {DEFAULT_ANCHORS}, or the updated fit's; with --items)",
    )
    fit.add_argument(
        "--anchors-out",
        type=Path,
        metavar="FILE.jsonl",
        help="write the anchor items as a probe file for 'headcast predict --anchors' (needs --suite)",
    )
    fit.add_argument(
        "--suite", type=Path, help="folder of <benchmark>.jsonl files the per-item results are on"
    )
    fit.add_argument(
        "--tasks",
        help="instead of --suite: the comma-separated lmms-eval tasks the per-item results are on; the "
        "anchor file then names their documents, answered through the tasks (needs headcast[lmms-eval])",
    )
    fit.add_argument("--include-path", type=Path, metavar="DIR", help="folder of local lmms-eval task YAMLs")
    fit.add_argument(
        "--update",
        nargs="?",
        const=DEFAULT_MODEL,
        metavar="MODEL",
        help="add these features, scores (and items) to those MODEL (default: the champion) was fitted on, "
        "newer rows replacing older, and fit again with its settings: how the real scores of a training "
        "run's benchmarked checkpoints reach the predictions of its later ones",
    )
    fit.add_argument("--no-register", action="store_true", help="evaluate and log only")
    jobs_help = "processes for the held-out fits and the frontier (default: CPU count)"
    add_jobs_flag(fit, os.cpu_count() or 1, jobs_help)
    fit.set_defaults(func=run_fit)


def _add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict",
        help="predict a checkpoint's benchmark scores",
        description="Predict benchmark scores, with intervals and an out-of-distribution flag, from a "
        "checkpoint folder (extracted through the cache) or from a feature table.",
    )
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("checkpoint", nargs="?", type=Path, metavar="CKPT_DIR")
    source.add_argument("--features", type=Path, help="feature table instead of a checkpoint")
    predict.add_argument("--probes", type=Path, help="probe set (needed with a checkpoint)")
    predict.add_argument(
        "--anchors",
        type=Path,
        help="anchor file from 'headcast fit --anchors-out' (probes, or lmms-eval documents answered "
        "through their tasks): the checkpoint answers these items too, and benchmarks whose anchors are "
        "all answered get the anchored (hybrid) estimate",
    )
    predict.add_argument(
        "--answers", type=Path, help="with --features: per-probe answers from 'headcast extract --answers'"
    )
    predict.add_argument(
        "--adaptive",
        type=Path,
        metavar="SUITE_DIR",
        help="instead of --anchors: ask items of this suite (the fit's --suite) in rounds of one prefill, "
        "each chosen by what the checkpoint answered so far",
    )
    predict.add_argument(
        "--target-width",
        type=float,
        metavar="W",
        help="with --adaptive: stop a benchmark once its 90%% interval is at most +-W points",
    )
    predict.add_argument(
        "--max-items",
        type=int,
        default=16,
        metavar="N",
        help="with --adaptive: at most N items per benchmark (default 16)",
    )
    add_model_flag(predict, DEFAULT_MODEL)
    add_query_flag(
        predict,
        None,
        "query position (default: the one the model's features were extracted with, from its "
        "extraction contract; another is an error)",
    )
    add_placement_flags(predict)
    add_dtype_flag(predict, "dtype (auto: the model's contract's, else float32 on CPU and half on GPU)")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=run_predict)


def _add_predict_runs_parser(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser(
        "predict-runs",
        help="add predicted scores to training runs already in MLflow",
        description="For every run of an MLflow experiment whose checkpoints folder (the output_dir param "
        "transformers' MLflow callback logs) is on this machine, predict each checkpoint not yet predicted "
        "and log pred/<benchmark> with its interval at the checkpoint's step.",
    )
    add_experiment_flag(runs, None, "MLflow experiment holding the training runs", required=True)
    runs.add_argument("--probes", required=True, type=Path, help="the probe set the model was fitted on")
    runs.add_argument("--anchors", type=Path, help="anchor probe file from 'headcast fit --anchors-out'")
    add_model_flag(runs, DEFAULT_MODEL)
    runs.add_argument(
        "--param", default="output_dir", help="run param naming the checkpoints folder (default output_dir)"
    )
    add_placement_flags(runs)
    add_dtype_flag(runs)
    runs.set_defaults(func=run_predict_runs)


def _new_tables(args: argparse.Namespace) -> TrainingTables:
    """The feature rows, scores and per-item results given on the command line, in the features' names."""
    features, settings = read_features(args.features)
    names = features["checkpoint"].tolist()
    scores = read_scores(args.scores, args.allow_partial, args.keep_latest)
    scores = rename_checkpoints(scores, names, args.checkpoint_root)
    items = None
    if args.items:
        items = read_items(args.items, args.allow_partial, args.keep_latest)
        items = rename_checkpoints(items, names, args.checkpoint_root, what="per-item result")
    return TrainingTables(features, settings, scores, items)


def run_fit(args: argparse.Namespace) -> int:
    # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor.tracking import fit_and_track, format_report

    if args.anchors is not None and args.anchors < 1:
        raise HeadcastError(f"--anchors must be at least 1 item per benchmark, got {args.anchors}")
    if args.anchors_out and not (args.items and (args.suite or args.tasks)):
        raise HeadcastError(
            "--anchors-out needs --items (to choose anchors) and --suite or --tasks (where the items are)"
        )
    if args.suite and args.tasks:
        raise HeadcastError("pass --suite DIR or --tasks NAMES, not both")
    if args.anchors_out:
        check_writable(args.anchors_out)  # now, not after the fit
    previous = PreviousFit.of_model(args.update) if args.update else None
    earlier = previous.params if previous is not None else {}  # an update's settings, unless given now
    estimators = _estimators(args.estimators or earlier.get("estimators"))
    anchors = args.anchors or int(earlier.get("anchors_per_benchmark", DEFAULT_ANCHORS))
    tables = _new_tables(args)
    if previous is not None:
        added = len(set(tables.features["checkpoint"]) - set(previous.tables.features["checkpoint"]))
        tables = previous.tables.updated(tables)
        print(
            f"updating version {previous.version} (fit run {previous.run_id}): {added} new checkpoint(s), "
            f"{len(tables.features)} in all"
        )
    benchmarks = [b for b in (args.benchmarks or earlier.get("benchmarks", "")).split(",") if b] or None
    dataset, item_counts, probe_count, item_results = _fit_inputs(tables, benchmarks)
    per_head = None
    if args.per_head:
        fix = "write it with 'headcast extract --per-head'"
        per_head = read_table(args.per_head, "per-head table", PER_HEAD_COLUMNS, fix)
    report = fit_and_track(
        dataset,
        args.experiment,
        estimators,
        probe_count,
        item_counts,
        per_head,
        register=not args.no_register,
        item_results=item_results,
        anchors_per_benchmark=anchors,
        jobs=args.jobs,
        run_name="fit" if previous is None else "fit-update",
        tags={} if previous is None else {UPDATED_FROM_TAG: previous.run_id},
    )
    tables.log(report.run_id)
    print(format_report(report, dataset.benchmarks))
    if item_results is not None:
        # here, not at the top: loads matplotlib, MLflow, scikit-learn, SciPy only when this runs
        from headcast.predictor.frontier import format_frontier, measure_frontier
        from headcast.predictor.tracking import log_frontier

        result = measure_frontier(dataset, item_results, jobs=args.jobs)
        log_frontier(result, report.run_id)
        print(f"\n{format_frontier(result)}")
        if args.anchors_out and args.tasks:
            write_fitted_task_anchors(
                report.run_id, args.tasks, args.include_path, args.items, args.anchors_out
            )
        elif args.anchors_out:
            _write_anchors(report.run_id, args.suite, args.anchors_out)
    registered = f"; registered {REGISTERED_NAME} version {report.model_version} as @{CHAMPION}"
    print(f"chosen: {report.chosen} (MLflow run {report.run_id}{registered if report.model_version else ''})")
    return 0


def _fit_inputs(tables: TrainingTables, benchmarks: list[str] | None):
    """The dataset, the item count behind each score, the probe count, and the per-item results."""
    dataset = build_dataset(tables.features, tables.scores, tables.settings, benchmarks)
    counts = tables.scores.pivot_table(index="checkpoint", columns="benchmark", values="n", aggfunc="max")
    counts = counts.reindex(index=dataset.scores.index, columns=dataset.benchmarks)
    probe_counts = {s.get("n_probes") for s in tables.settings.values()} - {None}
    item_results = None if tables.items is None else load_item_results(tables.items, tables.scores, dataset)
    return dataset, counts, (probe_counts.pop() if len(probe_counts) == 1 else None), item_results


def _estimators(names: str | None) -> list[str]:
    estimators = [e for e in (names or DEFAULT_ESTIMATORS).split(",") if e]
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown or not estimators:
        raise HeadcastError(f"unknown estimator(s) {sorted(unknown)}; choose from {', '.join(ESTIMATORS)}")
    return estimators


def _write_anchors(run_id: str, suite: Path, out: Path) -> None:
    # here, not at the top: loads MLflow only when this runs
    import mlflow

    # here, not at the top: loads scikit-learn only when this runs
    from headcast.predictor.anchors import write_anchor_probes

    anchors = mlflow.artifacts.load_dict(f"runs:/{run_id}/anchors.json")
    write_anchor_probes(anchors, suite, out)
    print(f"anchor probe file: {out} ({sum(map(len, anchors.values()))} items)")


def run_predict(args: argparse.Namespace) -> int:
    # here, not at the top: loads MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor.predicting import PredictionPipeline, resolve_model, with_answers

    model = resolve_model(args.model)
    if args.features is not None:
        if args.anchors is not None:
            raise HeadcastError(
                "--anchors needs a checkpoint; with --features pass --answers from 'headcast extract'"
            )
        table, _ = read_features(args.features)
        if args.answers is not None:
            fix = "write it with 'headcast extract --answers'"
            table = with_answers(table, read_table(args.answers, "answer table", ANSWER_TABLE_COLUMNS, fix))
        results = model.predict_json(table)
    else:
        if args.probes is None:
            raise HeadcastError("predicting from a checkpoint needs --probes PROBES.jsonl")
        if args.adaptive is not None and args.anchors is not None:
            raise HeadcastError("pass --anchors FILE or --adaptive SUITE_DIR, not both")
        if args.max_items < 1 or (args.target_width is not None and not args.target_width > 0):
            raise HeadcastError("--max-items must be at least 1 and --target-width above 0 points")
        device, device_map = placement(args)
        pipeline = PredictionPipeline(
            model,
            args.probes,
            args.anchors,
            query=args.query,
            device=device,
            dtype=args.dtype,
            device_map=device_map,
        )
        if args.adaptive is not None:
            results, rounds = pipeline.adaptive(
                args.checkpoint, args.adaptive, args.max_items, args.target_width, progress=not args.json
            )
            if not args.json:
                print(f"adaptive anchors: {rounds} round(s) of one prefill each")
        else:
            results = pipeline([args.checkpoint], progress=not args.json)
    if args.json:
        print(json.dumps(next(iter(results.values())) if len(results) == 1 else results))
        return 0
    for checkpoint, scores in results.items():
        print(checkpoint)
        for b, s in scores.items():
            flag = "  (out of distribution)" if s["ood"] else ""
            via = "  (anchors answered)" if s.get("answered") else ""
            print(f"  {b:<22}{s['score']:6.1f}  [{s['lower']:5.1f}, {s['upper']:5.1f}]{flag}{via}")
    sys.stdout.flush()
    return 0


def run_predict_runs(args: argparse.Namespace) -> int:
    # here, not at the top: loads MLflow, scikit-learn, SciPy only when this runs
    from headcast.predictor.predicting import PredictionPipeline
    from headcast.predictor.runs import predict_runs

    device, device_map = placement(args)
    pipeline = PredictionPipeline(
        args.model, args.probes, args.anchors, device=device, dtype=args.dtype, device_map=device_map
    )
    done = predict_runs(args.experiment, pipeline, args.param)
    print(
        f"predicted {sum(done.values())} checkpoint(s) of {len(done)} run(s) in {args.experiment!r}; "
        "their scores are the runs' pred/<benchmark> metrics, with _lower/_upper bounds"
    )
    return 0
