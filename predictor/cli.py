"""`headcast fit` and `headcast predict`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from extract.contract import check_probe_set, extraction_options, fitted_contract
from extract.errors import HeadcastError
from extract.features import QUERY_POSITIONS, read_features

DEFAULT_MODEL = "models:/headcast-predictor@champion"


def add_predictor_parsers(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit",
        help="learn benchmark scores from feature rows, tracked in MLflow",
        description="Evaluate each estimator with whole training runs held out, log everything to MLflow "
        "and register the best as headcast-predictor@champion.",
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
    fit.add_argument("--experiment", default="headcast", help="MLflow experiment name")
    fit.add_argument("--benchmarks", help="comma-separated benchmarks to fit (default: all in the scores)")
    fit.add_argument(
        "--estimators",
        default="auto,ridge,lightgbm,knn",
        help="comma-separated estimators to compare; the champion is auto (chosen per benchmark inside "
        "the training folds) when listed, else the lowest held-out MAE",
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
        default=8,
        metavar="K",
        help="anchor items per benchmark (default 8; with --items)",
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
    fit.add_argument("--no-register", action="store_true", help="evaluate and log only")
    fit.set_defaults(func=run_fit)

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
        help="anchor probe file from 'headcast fit --anchors-out': the checkpoint answers these items too, "
        "and benchmarks whose anchors are all answered get the anchored (hybrid) estimate",
    )
    predict.add_argument(
        "--answers", type=Path, help="with --features: per-probe answers from 'headcast extract --answers'"
    )
    predict.add_argument("--model", default=DEFAULT_MODEL, help=f"MLflow model URI (default {DEFAULT_MODEL})")
    predict.add_argument(
        "--query",
        choices=QUERY_POSITIONS,
        help="query position (default: the one the model's features were extracted with, from its "
        "extraction contract; another is an error)",
    )
    predict.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    predict.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="dtype (default auto: the model's contract's, else float32 on CPU and half on GPU)",
    )
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=run_predict)


def _load_fit_inputs(args: argparse.Namespace):
    """The dataset, the item count behind each score, the probe count, and the scores themselves."""
    from predictor.checkpoints import rename_checkpoints
    from predictor.dataset import build_dataset
    from predictor.scores import read_scores

    features, settings = read_features(args.features)
    scores = read_scores(args.scores, args.allow_partial, args.keep_latest)
    scores = rename_checkpoints(scores, features["checkpoint"].tolist(), args.checkpoint_root)
    benchmarks = [b for b in (args.benchmarks or "").split(",") if b] or None
    dataset = build_dataset(features, scores, settings, benchmarks)
    items = scores.pivot_table(index="checkpoint", columns="benchmark", values="n", aggfunc="max")
    items = items.reindex(index=dataset.scores.index, columns=dataset.benchmarks)
    probe_counts = {s.get("n_probes") for s in settings.values()} - {None}
    return dataset, items, (probe_counts.pop() if len(probe_counts) == 1 else None), scores


def format_report(report, benchmarks: list[str]) -> str:
    """Held-out MAE / Spearman per benchmark for each estimator, and the baselines' MAE."""
    lines = [
        f"{'benchmark':<22}"
        + "".join(f"{name:>20}" for name in report.metrics)
        + "".join(f"{name:>18}" for name in report.baselines)
    ]
    lines.append(
        f"{'':<22}"
        + "".join(f"{'MAE / Spearman':>20}" for _ in report.metrics)
        + "".join(f"{'MAE':>18}" for _ in report.baselines)
    )
    for b in benchmarks:
        cells = "".join(
            f"{m.loc[b, 'mae']:>12.2f} / {m.loc[b, 'spearman']:>5.2f}" for m in report.metrics.values()
        )
        lines.append(f"{b:<22}{cells}" + "".join(f"{s[b]:>18.2f}" for s in report.baselines.values()))
    return "\n".join(lines)


def run_fit(args: argparse.Namespace) -> int:
    from predictor.models import ESTIMATORS
    from predictor.tracking import fit_and_track, log_scores

    estimators = [e for e in args.estimators.split(",") if e]
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown or not estimators:
        raise HeadcastError(f"unknown estimator(s) {sorted(unknown)}; choose from {', '.join(ESTIMATORS)}")
    if args.anchors < 1:
        raise HeadcastError(f"--anchors must be at least 1 item per benchmark, got {args.anchors}")
    if args.anchors_out and not (args.items and args.suite):
        raise HeadcastError(
            "--anchors-out needs --items (to choose anchors) and --suite (to copy the items from)"
        )
    dataset, items, probe_count, scores = _load_fit_inputs(args)
    item_results = None
    if args.items:
        from predictor.budget import load_item_results
        from predictor.checkpoints import rename_checkpoints
        from predictor.scores import read_items

        item_table = read_items(args.items, args.allow_partial, args.keep_latest)
        item_table = rename_checkpoints(
            item_table, list(dataset.scores.index), args.checkpoint_root, what="per-item result"
        )
        item_results = load_item_results(item_table, scores, dataset)
    per_head = pd.read_parquet(args.per_head) if args.per_head else None
    report = fit_and_track(
        dataset,
        args.experiment,
        estimators,
        probe_count,
        items,
        per_head,
        register=not args.no_register,
        item_results=item_results,
        anchors_per_benchmark=args.anchors,
    )
    log_scores(scores, report.run_id)
    print(format_report(report, dataset.benchmarks))
    if item_results is not None:
        from predictor.frontier import format_frontier, frontier
        from predictor.tracking import log_frontier

        result = frontier(dataset, item_results)
        log_frontier(result, report.run_id)
        print(f"\n{format_frontier(result)}")
        if args.anchors_out:
            _write_anchors(report.run_id, args.suite, args.anchors_out)
    registered = f"; registered headcast-predictor version {report.model_version} as @champion"
    print(f"chosen: {report.chosen} (MLflow run {report.run_id}{registered if report.model_version else ''})")
    return 0


def _write_anchors(run_id: str, suite: Path, out: Path) -> None:
    import mlflow

    from predictor.anchors import write_anchor_probes

    anchors = mlflow.artifacts.load_dict(f"runs:/{run_id}/anchors.json")
    write_anchor_probes(anchors, suite, out)
    print(f"anchor probe file: {out} ({sum(map(len, anchors.values()))} items)")


def load_model(uri: str):
    """The pyfunc model behind `uri`, or a one-line error saying how to make one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from predictor.tracking import configure_tracking

    configure_tracking()
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise HeadcastError(
            f"cannot load model {uri} ({reason}); run 'headcast fit' or 'headcast demo' first"
        ) from None


def _answers_of(answers: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The feature table with each checkpoint's anchor answers joined as columns."""
    from predictor.hybrid import answer_columns

    wide = answer_columns(answers)
    return table.join(wide, on="checkpoint") if not wide.empty else table


def run_predict(args: argparse.Namespace) -> int:
    from predictor.pyfunc import prediction_json

    model = load_model(args.model)
    fitted = fitted_contract(model.unwrap_python_model().predictor)
    if args.features is not None:
        if args.anchors is not None:
            raise HeadcastError(
                "--anchors needs a checkpoint; with --features pass --answers from 'headcast extract'"
            )
        table, _ = read_features(args.features)
        if args.answers is not None:
            table = _answers_of(pd.read_parquet(args.answers), table)
    else:
        if args.probes is None:
            raise HeadcastError("predicting from a checkpoint needs --probes PROBES.jsonl")
        import dataclasses

        from extract.pipeline import ExtractionSettings, answers_table, extract_features
        from extract.probes import probe_set_hash, read_probes

        # the model's own query, thresholds and dtype, and its probe set: checked before any extraction
        query, dtype, thresholds = extraction_options(fitted, args.query, args.dtype)
        probes = read_probes(args.probes)
        check_probe_set(fitted, probe_set_hash(probes), str(args.probes))
        settings = ExtractionSettings(query, device=args.device, dtype=dtype, thresholds=thresholds)
        table, _ = extract_features([args.checkpoint], probes, settings, progress=not args.json)
        if args.anchors is not None:  # one more small prefill: the answers on the anchor items
            from predictor.anchors import read_anchor_probes
            from predictor.hybrid import unanswered_anchors

            anchors = read_anchor_probes(args.anchors)
            answering = dataclasses.replace(settings, query="last-prompt")  # answer-mean gives no answers
            _, metrics = extract_features([args.checkpoint], anchors, answering, progress=not args.json)
            table = _answers_of(answers_table(metrics), table)
            missing = unanswered_anchors(model.unwrap_python_model().predictor, table.columns)
            if missing:
                raise HeadcastError(
                    f"{args.anchors} lacks {len(missing)} of the model's anchor items, e.g. {missing[0]!r}; "
                    "write the file for this model with 'headcast fit --anchors-out'"
                )
    try:
        predictions = model.predict(table.drop(columns=["checkpoint"]))
    except HeadcastError:
        raise
    except Exception as err:  # MLflow's schema enforcement: name the problem, no traceback
        raise HeadcastError(
            f"the features do not fit the model's schema ({str(err).splitlines()[0][:200]})"
        ) from None
    benchmarks = [
        c for c in predictions.columns if c != "ood" and not c.endswith(("_lower", "_upper", "_answered"))
    ]
    results = dict(zip(table["checkpoint"], prediction_json(predictions, benchmarks), strict=True))
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
