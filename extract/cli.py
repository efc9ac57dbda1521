"""`headcast extract`: checkpoints + probe set -> FEATURES.parquet (+ per-head table, heatmaps, answers)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from extract.contract import CONTRACT_COLUMN
from extract.errors import HeadcastError
from extract.features import QUERY_POSITIONS, VisualHeadThresholds, write_features
from extract.plots import head_heatmap, save_figure
from extract.probes import read_probes
from extract.storage import atomic_output, check_writable
from headcast.arguments import fraction, positive_int


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
    parser.add_argument(
        "--query", choices=QUERY_POSITIONS, default="last-prompt", help="recorded query position"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, metavar="N", help="probes per forward pass"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
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
    from extract.pipeline import (  # torch: only when used
        ExtractionSettings,
        answers_table,
        extract_features,
        per_head_tables,
    )

    settings = ExtractionSettings(
        query=args.query,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        thresholds=VisualHeadThresholds(args.visual_mass_threshold, args.concentration_threshold),
    )
    from transformers.utils import logging

    logging.disable_progress_bar()  # our own bars say what is happening
    probes = read_probes(args.probes)
    names = [checkpoint_name(path, args.relative_to) for path in args.checkpoints]
    heatmaps = {f"a --per-head heatmap ({n})": heatmap_path(args.per_head, n) for n in names if args.per_head}
    check_outputs(
        {"--out": args.out, "--per-head": args.per_head, "--answers": args.answers} | heatmaps,
        {"--probes": args.probes},
    )
    table, metrics = extract_features(args.checkpoints, probes, settings, names, progress=not args.quiet)
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
