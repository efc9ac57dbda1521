"""`headcast report --zoo DIR --out REPORT_DIR`: measure, draw, write the Markdown, log to MLflow."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from headcast.arguments import add_experiment_flag
from headcast.experiments.report.settings import ESTIMATORS_CHOICES, MODES, ReportSettings, settings_from_yaml
from headcast.experiments.report.tracking import EXPERIMENT
from headcast.experiments.report.write import DEFAULTS, write_report


def settings_from_args(args: argparse.Namespace) -> ReportSettings:
    """The settings file (or the defaults), with the options given on the command line on top."""
    base = settings_from_yaml(args.settings) if args.settings is not None else DEFAULTS
    given = {
        "ks": None if args.k is None else tuple(args.k),
        "seeds": args.seeds,
        "probe_sizes": None if args.probe_sizes is None else tuple(args.probe_sizes),
        "probe_draws": args.probe_draws,
        "estimator": args.estimator,
        "mode": args.mode,
    }
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def run_report(args: argparse.Namespace) -> int:
    # here, not at the top: loads torch, transformers only when this runs
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    settings = settings_from_args(args)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # tiny models: more threads only fight over shared cores
    try:
        experiment = None if args.no_mlflow else args.experiment
        markdown = write_report(args.zoo, args.out, settings, args.markdown, experiment, not args.quiet)
    finally:
        torch.set_num_threads(previous)
    print(f"wrote {markdown} (figures and tables in {args.out})")
    return 0


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast report --zoo DIR --out REPORT_DIR`: the paper's claims checked on a zoo, as Markdown."""
    parser = subparsers.add_parser(
        "report",
        help="check the paper's visual-head claims on a zoo; writes a Markdown report with figures",
        description="Where visual heads sit, whether they track the benchmarks, what removing them costs, "
        "and how prediction error falls with probe-set size, on a built zoo.",
    )
    d = DEFAULTS
    parser.add_argument("--zoo", required=True, type=Path, help="a zoo folder (headcast zoo build)")
    parser.add_argument("--out", required=True, type=Path, help="folder for figures, tables and report.md")
    parser.add_argument("--markdown", type=Path, help="write the Markdown here instead (links stay relative)")
    parser.add_argument(
        "--settings",
        type=Path,
        help="YAML of report settings (thresholds included), or a zoo config with a `report:` mapping; "
        "the options below override it",
    )
    parser.add_argument("--k", type=int, nargs="+", help=f"top-k heads ablated (default {list(d.ks)})")
    parser.add_argument("--seeds", type=int, help=f"random head sets per k (default {d.seeds})")
    parser.add_argument(
        "--probe-sizes", type=int, nargs="+", help=f"probe-set sizes (default {list(d.probe_sizes)})"
    )
    parser.add_argument("--probe-draws", type=int, help=f"subsets per size (default {d.probe_draws})")
    parser.add_argument(
        "--estimator",
        choices=ESTIMATORS_CHOICES,
        help=f"predictor for the probe curve (default {d.estimator})",
    )
    parser.add_argument(
        "--mode", choices=MODES, help=f"ablation: zero heads or use their mean output (default {d.mode})"
    )
    add_experiment_flag(parser, EXPERIMENT, f"MLflow experiment (default {EXPERIMENT})")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (default: 1, as zoo build)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_report)
    return parser
