"""The `headcast` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys

from headcast.errors import HeadcastError
from headcast.experiments.cli import add_zoo_parser
from headcast.experiments.demo import add_demo_parser
from headcast.experiments.report.cli import add_report_parser
from headcast.predictor.cli import add_predictor_parsers
from headcast.predictor.service.cli import add_serve_parser


def build_parser() -> argparse.ArgumentParser:
    # here, not at the top: loads FastAPI, matplotlib, MLflow, scikit-learn, SciPy only when this runs
    from headcast.extract.cli import (
        add_ablate_parser,
        add_evaluate_parser,
        add_extract_parser,
        add_probes_parser,
    )

    parser = argparse.ArgumentParser(
        prog="headcast",
        description="Predict a multimodal LLM's benchmark scores from its visual attention heads.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_extract_parser(subparsers)
    add_probes_parser(subparsers)
    add_predictor_parsers(subparsers)
    add_serve_parser(subparsers)
    add_demo_parser(subparsers)
    add_zoo_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_ablate_parser(subparsers)
    add_report_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' per-file bars: ours suffice
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its store set-up and registry chatter
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except HeadcastError as err:
        print(f"headcast: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "headcast: interrupted; finished work is cached, run the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
