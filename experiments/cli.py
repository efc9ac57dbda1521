"""`headcast zoo build|table`: build the synthetic zoo (and log its training runs to MLflow), print its
score table. The work is in `experiments.zoo`, imported when a command runs."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from headcast.arguments import add_experiment_flag, add_jobs_flag, add_seed_flag
from headcast.errors import HeadcastError
from headcast.experiments.zoo import build, markdown_table
from headcast.experiments.zoo_tracking import log_training_runs


def run_build(args: argparse.Namespace) -> None:
    t = time.perf_counter()

    scores = build(args.preset, args.out, args.seed, args.threads, args.jobs)
    print(f"built the {args.preset} zoo in {time.perf_counter() - t:.0f} s; scores in {scores}")
    if args.experiment:
        runs = log_training_runs(args.out, args.experiment)
        print(f"{len(runs)} training runs in MLflow experiment {args.experiment!r}")


def run_table(args: argparse.Namespace) -> None:
    path = Path(args.dir) / "scores.csv" if Path(args.dir).is_dir() else Path(args.dir)
    if not path.is_file():
        raise HeadcastError(f"no scores table at {path}; run `headcast zoo build` first")

    print(markdown_table(path, final_only=not args.all))


def add_zoo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast zoo build|table`: build the synthetic model zoo, print its score table."""
    parser = subparsers.add_parser(
        "zoo", help="build the synthetic zoo of tiny LLaVA models and its benchmarks"
    )
    commands = parser.add_subparsers(dest="zoo_command", required=True)
    b = commands.add_parser("build", help="train the checkpoints, write benchmarks, probes and scores.csv")
    b.add_argument(
        "--preset", default="small", help="smoke (tests), small (demo, default), full, or a YAML path"
    )
    b.add_argument("--out", required=True, help="folder to build into (resumes an interrupted build)")
    add_seed_flag(b, "seed of every image, weight and batch (default: 0)")
    b.add_argument("--threads", type=int, default=1, help="CPU threads for torch per job (default: 1)")
    add_jobs_flag(b, os.cpu_count() or 1, "runs trained at once (default: CPU count)")
    add_experiment_flag(
        b,
        "headcast-zoo",
        "MLflow experiment to log the training runs to (config, scores per checkpoint); '' for none",
        empty_means_none=True,
    )
    b.set_defaults(func=run_build)
    t = commands.add_parser("table", help="print the score table (last checkpoint per run) as markdown")
    t.add_argument("dir", help="a zoo folder or a scores.csv")
    t.add_argument("--all", action="store_true", help="every checkpoint, not only each run's last")
    t.set_defaults(func=run_table)
    return parser
