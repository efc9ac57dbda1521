"""The extraction stage's commands: `headcast extract` (checkpoints + probe set -> FEATURES.parquet, with
per-head tables, heatmaps, answers), `headcast probes build`, `headcast evaluate` and `headcast ablate`.
The work is done by library modules, imported when a command runs, so parsing stays quick."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from headcast.arguments import (
    add_batch_size_flag,
    add_device_flag,
    add_dtype_flag,
    add_placement_flags,
    add_query_flag,
    add_ray_flags,
    add_seed_flag,
    fraction,
    placement,
    positive_int,
    ray_options,
)
from headcast.contract import ExtractionSettings
from headcast.errors import HeadcastError
from headcast.extract.ablated_accuracy import ablate_suite, model_shape
from headcast.extract.evaluate import evaluate, items_path, load_suite
from headcast.extract.harness_evaluate import evaluate_tasks
from headcast.extract.harness_tasks import task_names
from headcast.extract.plots import head_heatmap, save_figure
from headcast.extract.probe_sets import build_probe_set
from headcast.extract.probes import read_probes
from headcast.files import atomic_output, check_writable
from headcast.schema import CONTRACT_COLUMN, VisualHeadThresholds
from headcast.tables import write_features


def add_extract_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="record visual-head metrics of checkpoints on a probe set",
        description="Record per-head attention metrics of each checkpoint on a probe set and write one "
        "architecture-independent feature row per checkpoint.",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT_DIR")
    parser.add_argument("--probes", required=True, type=Path, help="probe set (JSONL)")
    parser.add_argument("--out", required=True, type=Path, help="feature table to write (.parquet)")
    parser.add_argument(
        "--per-head", type=Path, help="also write per-(layer, head) means (.parquet) and heatmaps"
    )
    parser.add_argument(
        "--answers",
        type=Path,
        metavar="FILE.parquet",
        help="also write each checkpoint's first-token answer and its confidence per probe (.parquet); "
        "probes with an `answer` also get `correct` and `prob` (the gold answer's probability)",
    )
    add_query_flag(parser, "last-prompt", "recorded query position")
    add_batch_size_flag(parser, 8, "probes per forward pass")
    add_placement_flags(parser)
    add_dtype_flag(parser)
    parser.add_argument(
        "--relative-to", type=Path, help="name checkpoints by their path relative to this folder (e.g. a zoo)"
    )
    parser.add_argument(
        "--visual-mass-threshold",
        type=fraction,
        default=VisualHeadThresholds.visual_mass,
        metavar="X",
        help="a head is visual on a probe when its attention share on the image is at least this (0 to 1)",
    )
    parser.add_argument(
        "--concentration-threshold",
        type=fraction,
        default=VisualHeadThresholds.concentration,
        metavar="X",
        help="... and its attention on the image is at least this concentrated (0 to 1)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_flags(parser)
    parser.add_argument(
        "--probes-per-task",
        type=positive_int,
        metavar="N",
        help="with --ray, split each checkpoint's probe set into tasks of N probes (default: one task)",
    )
    parser.set_defaults(func=run_extract)


def checkpoint_name(path: Path, relative_to: Path | None) -> str:
    if relative_to is None:
        return str(path)
    try:
        return path.resolve().relative_to(relative_to.resolve()).as_posix()
    except ValueError:
        raise HeadcastError(
            f"checkpoint {path} is not inside --relative-to {relative_to}; "
            "pass the folder that holds them all"
        ) from None


def heatmap_path(per_head: Path, checkpoint: str) -> Path:
    """Where `--per-head` puts a checkpoint's heatmap: beside the table, named after both."""
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", checkpoint).strip("-")
    return per_head.with_name(f"{per_head.stem}-{slug}.png")


def check_outputs(outputs: dict[str, Path | None], inputs: dict[str, Path]) -> None:
    """Every output writable and distinct from the others and from the inputs, before any work is done."""
    seen = {path.resolve(): flag for flag, path in inputs.items()}
    for flag, path in outputs.items():
        if path is None:
            continue
        if (other := seen.get(path.resolve())) is not None:
            raise HeadcastError(f"{flag} {path} is also {other}; give each output a path of its own")
        seen[path.resolve()] = flag
        check_writable(path)


def run_extract(args: argparse.Namespace) -> int:
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract.pipeline import answers_table, extract_features, per_head_tables

    device, device_map = placement(args)
    settings = ExtractionSettings(
        query=args.query,
        batch_size=args.batch_size,
        device=device,
        dtype=args.dtype,
        thresholds=VisualHeadThresholds(args.visual_mass_threshold, args.concentration_threshold),
        device_map=device_map,
    )
    # here, not at the top: loads transformers only when this runs
    from transformers.utils import logging

    logging.disable_progress_bar()  # our own bars say what is happening
    probes = read_probes(args.probes)
    names = [checkpoint_name(path, args.relative_to) for path in args.checkpoints]
    heatmaps = {f"a --per-head heatmap ({n})": heatmap_path(args.per_head, n) for n in names if args.per_head}
    check_outputs(
        {"--out": args.out, "--per-head": args.per_head, "--answers": args.answers} | heatmaps,
        {"--probes": args.probes},
    )
    table, metrics = extract_features(
        args.checkpoints,
        probes,
        settings,
        names,
        progress=not args.quiet,
        ray=ray_options(args),
        probes_per_task=args.probes_per_task,
    )
    if args.per_head is not None:
        per_head = per_head_tables(metrics, settings.thresholds)
        with atomic_output(args.per_head) as tmp:
            per_head.to_parquet(tmp, index=False)
        for m in metrics:
            figure = head_heatmap(per_head[per_head["checkpoint"] == m.checkpoint], m.checkpoint)
            save_figure(figure, heatmap_path(args.per_head, m.checkpoint))
    if args.answers is not None:
        with atomic_output(args.answers) as tmp:
            answers_table(metrics).to_parquet(tmp, index=False)
    thresholds = {
        "visual_mass_threshold": args.visual_mass_threshold,
        "concentration_threshold": args.concentration_threshold,
    }
    write_features(table, {m.checkpoint: m.settings | thresholds for m in metrics}, args.out)
    n_features = table.shape[1] - len({"checkpoint", "schema_version", CONTRACT_COLUMN} & set(table.columns))
    print(f"wrote {len(table)} feature row(s) x {n_features} features to {args.out}")
    return 0


def add_probes_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probes",
        help="make probe sets",
        description="Make probe sets (JSONL + images) for `headcast extract`.",
    )
    commands = parser.add_subparsers(dest="probes_command", required=True, metavar="SUBCOMMAND")
    build = commands.add_parser(
        "build",
        help="sample a probe set from a local dataset",
        description="Sample a probe set from a local dataset: a datasets save_to_disk folder, a Parquet file "
        "or folder of them, or an image folder with metadata.jsonl/metadata.csv. Never uses the network.",
    )
    build.add_argument("--dataset", required=True, type=Path, metavar="PATH")
    build.add_argument("--image-column", required=True, metavar="COL")
    build.add_argument("--question-column", required=True, metavar="COL")
    build.add_argument(
        "--answer-column", metavar="COL", help="strings; a list of answers gives its most common one"
    )
    build.add_argument("--box-column", metavar="COL", help="[x0, y0, x1, y1] in pixels")
    build.add_argument("--task-column", metavar="COL", help="stratify the sample by this column")
    build.add_argument("--id-column", metavar="COL", help="unique ids (default: <dataset name>-<row>)")
    build.add_argument("--split", help="split of a saved DatasetDict")
    build.add_argument("--n", required=True, type=int, help="number of items")
    add_seed_flag(build)
    build.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder for probes.jsonl + images/"
    )
    build.add_argument("--force", action="store_true", help="replace a non-empty --out")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:

    path = build_probe_set(
        args.dataset,
        args.out,
        image_column=args.image_column,
        question_column=args.question_column,
        answer_column=args.answer_column,
        box_column=args.box_column,
        task_column=args.task_column,
        id_column=args.id_column,
        n=args.n,
        seed=args.seed,
        split=args.split,
        force=args.force,
        progress=not args.quiet,
    )
    probes = read_probes(path)
    tasks = Counter(p.task for p in probes if p.task is not None)
    summary = f" ({', '.join(f'{t}: {c}' for t, c in sorted(tasks.items()))})" if tasks else ""
    print(f"wrote {len(probes)} probe(s){summary} to {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> None:

    if (args.benchmarks is None) == (args.tasks is None):
        raise HeadcastError("pass either --benchmarks DIR or --tasks NAMES (lmms-eval tasks), not both")
    if args.include_path is not None and args.tasks is None:
        raise HeadcastError("--include-path is for lmms-eval tasks; pass --tasks NAMES with it")
    device, device_map = placement(args)
    for out in (args.out, items_path(args.out)):  # now, not after scoring every checkpoint
        check_writable(out)
    for path in args.checkpoints:  # a checkpoint outside --relative-to: refused before any scoring
        checkpoint_name(Path(path), args.relative_to)

    def name_of(path: Path) -> str:
        return checkpoint_name(path, args.relative_to)

    if args.tasks is not None:
        tasks = task_names(args.tasks)
        evaluate_tasks(args.checkpoints, tasks, args.include_path, args.out, device, name_of, device_map)
    else:
        evaluate(
            args.checkpoints,
            args.benchmarks,
            args.out,
            device,
            args.batch_size,
            args.max_new_tokens,
            name_of,
            ray_options(args),
            device_map,
        )
    print(f"wrote {args.out} and its per-item results {items_path(args.out)}")


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast evaluate CKPT... --benchmarks DIR --out scores.csv`."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score checkpoints on a benchmark suite or lmms-eval tasks",
        description="Score checkpoint folders on a folder of benchmark JSONL files; "
        "writes checkpoint,benchmark,score,n and, beside it, a per-item Parquet table.",
    )
    parser.add_argument("checkpoints", nargs="+", help="checkpoint folders (Hugging Face format)")
    parser.add_argument("--benchmarks", help="folder of <benchmark>.jsonl files (or one file)")
    parser.add_argument(
        "--tasks",
        help="comma-separated lmms-eval tasks instead of --benchmarks: answered and scored as lmms-eval's "
        "llava_hf does (needs headcast[lmms-eval])",
    )
    parser.add_argument(
        "--include-path", type=Path, metavar="DIR", help="folder of local lmms-eval task YAMLs"
    )
    parser.add_argument(
        "--relative-to", type=Path, help="name checkpoints by their path relative to this folder (as extract)"
    )
    parser.add_argument("--out", default="scores.csv", help="CSV to write (default: scores.csv)")
    add_placement_flags(parser)
    add_batch_size_flag(parser, 64, "items per forward pass")
    parser.add_argument(
        "--max-new-tokens", type=int, default=4, help="tokens generated per answer (default: 4)"
    )
    add_ray_flags(parser)
    parser.set_defaults(func=run_evaluate)
    return parser


def run_ablate(args: argparse.Namespace) -> int:
    """The CLI: load once, parse heads against the model's shape, score each benchmark file."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.extract.head_ablation import head_output_means, parse_heads
    from headcast.extract.loading import load_checkpoint

    if args.mode == "mean" and args.probes is None:
        raise HeadcastError(
            "--mode mean needs the probe set to average head outputs over; pass --probes P.jsonl"
        )
    if args.random < 0:
        raise HeadcastError(f"--random must be 0 or more, got {args.random}")
    suite = load_suite(args.benchmark)
    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    heads = parse_heads(args.heads, *model_shape(checkpoint))
    if not heads:
        raise HeadcastError("--heads lists no head; pass e.g. --heads 0:1,2:3")
    means = (
        head_output_means(checkpoint, read_probes(args.probes), args.batch_size)
        if args.mode == "mean"
        else None
    )
    results = ablate_suite(
        checkpoint, suite, heads, args.mode, means, args.random, args.seed, args.batch_size
    )
    if args.json:
        out = [r.as_json() for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out))
        return 0
    for r in results:
        line = f"{r.benchmark} (n={r.n}, {r.mode} ablation of {len(r.heads)} head(s)): "
        line += f"accuracy {r.baseline:.1f}% -> {r.ablated:.1f}% ({r.ablated - r.baseline:+.1f})"
        if r.random:
            line += f"; {len(r.random)} random same-layer set(s): {r.random_mean:.1f} ± {r.random_std:.1f}%"
        print(line)
    return 0


def add_ablate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`headcast ablate CKPT_DIR --benchmark B.jsonl --heads L:H,... [--mode] [--random N --seed S]`."""
    parser = subparsers.add_parser(
        "ablate",
        help="score a benchmark with attention heads removed (vs random heads of the same layers)",
        description="Remove attention heads at their output (before the output projection) and score a "
        "benchmark with greedy exact match, with and without them, and with random same-layer heads.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CKPT_DIR", help="checkpoint folder (Hugging Face)")
    parser.add_argument(
        "--benchmark", required=True, type=Path, help="benchmark JSONL with answers (or a folder of them)"
    )
    parser.add_argument("--heads", required=True, help="heads to remove, 0-based LAYER:HEAD, comma-separated")
    parser.add_argument(
        "--mode",
        choices=("zero", "mean"),
        default="zero",
        help="zero the head, or its mean output (needs --probes)",
    )
    parser.add_argument(
        "--probes", type=Path, help="probe set (JSONL) whose mean head outputs --mode mean uses"
    )
    parser.add_argument(
        "--random", type=int, default=0, metavar="N", help="N random same-layer head sets to compare"
    )
    add_seed_flag(parser, "seed of the first random set (then S+1, ...)")
    add_batch_size_flag(parser, 64, "items per forward pass")
    add_device_flag(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (a list for a folder)")
    parser.set_defaults(func=run_ablate)
    return parser
