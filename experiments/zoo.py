"""`headcast zoo build`: the ground truth of the whole product, built on a CPU.

Builds, into one folder, a suite of synthetic benchmarks, an unlabeled probe set, and many tiny LLaVA
checkpoints along training whose benchmark scores are then measured; `experiments.layout.ZooLayout`
says where each piece lives.

Every piece is written atomically and skipped when present, so an interrupted build resumes; the
stamp refuses to mix two different configurations in one folder.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from headcast.errors import HeadcastError
from headcast.experiments.layout import ZooLayout
from headcast.experiments.presets import ZooConfig, load_config
from headcast.experiments.scenes import AUX_TASKS, BENCHMARKS, CHANCE, TASKS, make_mixture
from headcast.experiments.suite import write_probes, write_suite
from headcast.extract import evaluate_checkpoint, load_suite, scores_of, write_items, write_scores
from headcast.files import atomic_output
from headcast.predictor import last_checkpoints, read_scores

STAMP_VERSION = 2  # 2: per-item results


def _stamp(out: Path, config: ZooConfig, seed: int) -> None:
    """Write DIR/zoo.json, or refuse when DIR holds a zoo built from other settings."""
    built_from = {k: v for k, v in config.raw.items() if k != "report"}  # the report does not change the zoo
    stamp = {"version": STAMP_VERSION, "preset": config.name, "seed": seed, "config": built_from}
    path = ZooLayout(out).stamp
    if path.exists():
        old = json.loads(path.read_text())
        if old != stamp:
            raise HeadcastError(
                f"{out} holds a zoo built with preset {old.get('preset')!r}, seed {old.get('seed')}; "
                "pass another --out or delete that folder"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, stamp)


def _write_json(path: Path, data: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _seed(seed: int, *parts: Any) -> int:
    """A stable sub-seed for one stage (Python's hash() changes between processes)."""
    return (seed * 1_000_003 + zlib.crc32(repr(parts).encode())) % 2**31


def _lm_key(spec) -> str:
    return f"{spec.family}-{spec.layers}x{spec.heads}-kv{spec.kv_heads}-d{spec.head_dim}"


def _save_tensors(path: Path, tensors: dict) -> None:
    # here, not at the top: loads torch only when this runs
    from safetensors.torch import save_file

    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)


def _load_tensors(path: Path) -> dict:
    # here, not at the top: loads torch only when this runs
    from safetensors.torch import load_file

    return load_file(path)


def _atomic_checkpoint(model, processor, final: Path, meta: dict) -> None:
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments.modeling import save_checkpoint

    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, processor, tmp)
    ZooLayout.run_meta(tmp).write_text(json.dumps(meta, indent=1, sort_keys=True))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def build(preset: str, out: str | Path, seed: int = 0, threads: int = 1, jobs: int = 1) -> Path:
    """Build (or finish building) the zoo of `preset` into `out`; returns the path of scores.csv.

    Runs `jobs` jobs at a time (the vision tower, one language model per LM shape, then each run
    trained and scored as soon as its weights are there), each in its own process on `threads` CPU
    threads (default 1): these models are so small that a second thread gains little, while two
    processes each spinning two OpenMP threads on a 2-core machine run ~50x slower. Every run is seeded
    on its own, so the result does not depend on `jobs`.
    """
    # here, not at the top: loads torch only when this runs
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _build(preset, Path(out), seed, threads, max(1, jobs))
    finally:
        torch.set_num_threads(previous)


def _build(preset: str, out: Path, seed: int, threads: int, jobs: int) -> Path:
    config = load_config(preset)
    _stamp(out, config, seed)
    layout = ZooLayout(out)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    res, grid = config.resolution, config.grid

    if not layout.benchmarks.exists():
        write_suite(layout.benchmarks, seed, config.benchmark_items, res, grid)
    if not layout.probe_dir.exists():
        write_probes(layout.probe_dir, seed, config.probe_items, res, grid)
    timings["data"] = time.perf_counter() - started

    layout.cache.mkdir(exist_ok=True)
    arguments = (preset, out, seed)
    pretraining: dict[str, tuple] = {}
    if not layout.vision_weights.exists():
        pretraining["vision"] = (_vision_job, (*arguments, threads), set())
    unscored = {p.parent.name for p in layout.checkpoint_folders() if not layout.checkpoint_items(p).exists()}
    untrained = [r for r in config.runs if not layout.run_done(r.name).exists()]
    for run in untrained:  # one language model per LM shape, shared by the runs of that shape
        if not _lm_file(out, run.spec).exists():
            pretraining.setdefault(
                f"language {_lm_key(run.spec)}", (_language_job, (*arguments, run.name, threads), set())
            )
    runs = [r for r in config.runs if r.name in unscored or r in untrained]
    training = {
        f"run {r.name}": (_run_job, (*arguments, r.name, threads), {"vision", f"language {_lm_key(r.spec)}"})
        for r in sorted(runs, key=_training_cost, reverse=True)  # longest first: the last to finish is short
    }
    for job_timings in _run_dependent(pretraining | training, jobs):
        timings |= job_timings
    _training_sets.cache_clear()  # encoded data is large; the zoo is built
    _benchmark_suite.cache_clear()

    rows = zoo_items(out)
    timings["total"] = time.perf_counter() - started
    if runs or pretraining:  # a call that only reuses the zoo keeps the record of its build
        timings["jobs"] = jobs
        _write_json(layout.build_times, timings)
    write_items(rows, layout.items)
    return write_scores(scores_of(rows), layout.scores)


def _training_cost(run) -> float:
    """A run's training time, roughly: steps times layers, AnyRes seeing five crops per image."""
    return (run.curriculum + run.steps) * run.spec.layers * (5 if run.spec.arch == "llava_next" else 1)


def _run_dependent(tasks: dict[str, tuple], jobs: int) -> Iterator[dict[str, float]]:
    """Run `tasks` (name -> (job, arguments, names it waits for)), each once those have finished; yield
    each job's timings as it ends.

    With `jobs` > 1 the jobs run in that many spawned processes, kept for the whole build (each spawn
    imports torch again), so a run starts as soon as its language model is there rather than when every
    language model is; their own progress bars are off (they would interleave) and one bar counts jobs.
    """
    if not tasks:
        return
    waiting = {name: (job, args, needs & tasks.keys()) for name, (job, args, needs) in tasks.items()}
    finished: set[str] = set()
    in_process = jobs == 1 or len(tasks) == 1
    # spawn, not fork: a forked child of a process that already ran torch can deadlock in OpenMP.
    pool = (
        _InProcess()
        if in_process
        else ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=get_context("spawn"))
    )
    running: dict[Future, str] = {}
    try:
        with tqdm(total=len(tasks), desc="zoo jobs", unit="job") as bar:
            while waiting or running:
                for name, (job, args, needs) in list(waiting.items()):
                    if needs <= finished:
                        running[pool.submit(job, *args, progress=in_process)] = name
                        del waiting[name]
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished.add(running.pop(future))
                    bar.update()
                    yield future.result()
    finally:
        pool.shutdown(cancel_futures=True)


class _InProcess(Executor):
    """An executor that runs each job at once, here: one job at a time shows its own progress bars."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _lm_file(out: Path, spec) -> Path:
    return ZooLayout(out).language_weights(_lm_key(spec))


def _find_run(config: ZooConfig, name: str):
    return next(r for r in config.runs if r.name == name)


def _training_tasks(config: ZooConfig) -> tuple[str, ...]:
    """The benchmarked tasks plus any training-only task the mixture weights."""

    return TASKS + tuple(t for t in AUX_TASKS if config.mixture.get(t))


def _as_worker(threads: int, progress: bool) -> None:
    """Set a job's process up: `threads` torch threads; no progress bars of its own unless it runs alone
    (a worker's bars, save_pretrained's included, would interleave with the others')."""
    # here, not at the top: loads torch, transformers only when this runs
    import torch
    from transformers.utils import logging

    torch.set_num_threads(threads)
    if not progress:
        logging.disable_progress_bar()


def _vision_job(preset: str, out: Path, seed: int, threads: int, progress: bool) -> dict[str, float]:
    """Pretrain (and cache) the CLIP vision tower every run starts from."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments import train

    _as_worker(threads, progress)
    t = time.perf_counter()
    config = load_config(preset)
    vcfg = config.vision
    items = make_mixture(f"{seed}-vision", vcfg["items"], config.grid)
    images = [it.scene.render(config.resolution) for it in items]
    state = train.pretrain_vision(
        config.runs[0].spec,
        items,
        images,
        vcfg["steps"],
        vcfg["lr"],
        _seed(seed, "vision"),
        progress=progress,
    )
    _save_tensors(ZooLayout(out).vision_weights, state)
    return {"vision": time.perf_counter() - t}


def _language_job(
    preset: str, out: Path, seed: int, run_name: str, threads: int, progress: bool
) -> dict[str, float]:
    """Pretrain (and cache) the language model of `run_name`'s LM shape."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments import train

    _as_worker(threads, progress)
    t = time.perf_counter()
    config = load_config(preset)
    spec = _find_run(config, run_name).spec
    lcfg = config.language
    items = make_mixture(f"{seed}-text", lcfg["items"], config.grid, _training_tasks(config), config.mixture)
    state = train.pretrain_language(
        spec, items, lcfg["steps"], lcfg["lr"], _seed(seed, "language", _lm_key(spec)), progress=progress
    )
    _save_tensors(_lm_file(out, spec), state)
    return {f"language {_lm_key(spec)}": time.perf_counter() - t}


@functools.cache
def _training_sets(
    preset: str, seed: int, arch: str, image_size: int, patch_size: int, anyres_grid: int
) -> tuple:
    """Caption, instruction and curriculum data encoded for one processor; cached per process."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments import train
    from headcast.experiments.modeling import build_processor

    config = load_config(preset)
    spec = next(
        r.spec
        for r in config.runs
        if (r.spec.arch, r.spec.image_size, r.spec.patch_size, r.spec.anyres_grid)
        == (arch, image_size, patch_size, anyres_grid)
    )
    processor = build_processor(spec, train.zoo_tokenizer())

    def encoded(items, mode):
        return train.encode(processor, items, [it.scene.render(config.resolution) for it in items], mode)

    caption = make_mixture(f"{seed}-caption", config.caption_items, config.grid)
    instruct = make_mixture(
        f"{seed}-instruct", config.instruct_items, config.grid, _training_tasks(config), config.mixture
    )
    curriculum = None
    if config.curriculum:
        weights = config.curriculum["mixture"]
        items = make_mixture(
            f"{seed}-curriculum", config.curriculum["items"], config.grid, tuple(weights), weights
        )
        curriculum = encoded(items, "qa")
    return encoded(caption, "caption"), encoded(instruct, "qa"), curriculum


def _run_job(
    preset: str, out: Path, seed: int, run_name: str, threads: int, progress: bool
) -> dict[str, float]:
    """Train one run (unless trained) and score its checkpoints, in one process: no second start-up."""
    _as_worker(threads, progress)
    layout = ZooLayout(out)
    timings = {}
    if not layout.run_done(run_name).exists():
        t = time.perf_counter()
        _train_run(preset, out, seed, run_name, progress)
        timings[f"train {run_name}"] = time.perf_counter() - t
    t = time.perf_counter()
    _score_run(preset, out, run_name)
    return timings | {f"score {run_name}": time.perf_counter() - t}


def _train_run(preset: str, out: Path, seed: int, run_name: str, progress: bool) -> None:
    """Train one run from the cached vision and language weights, saving its checkpoints."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments import train

    config = load_config(preset)
    run = _find_run(config, run_name)
    spec = run.spec
    caption, instruct, curriculum = _training_sets(
        preset, seed, spec.arch, spec.image_size, spec.patch_size, spec.anyres_grid
    )
    layout = ZooLayout(out)
    meta = {
        "run": run.name,
        "strategy": run.strategy,
        "data": run.data,
        "steps": run.curriculum + run.steps,
        "curriculum": run.curriculum,
        "spec": dataclasses.asdict(spec),
    }

    def save(model, processor, step):
        _atomic_checkpoint(model, processor, layout.checkpoint(run.name, step), meta | {"step": step})

    train.train_run(
        run,
        _load_tensors(layout.vision_weights),
        _load_tensors(_lm_file(out, spec)),
        caption,
        instruct,
        save,
        _seed(seed, "run", run.name),
        curriculum_data=curriculum,
        progress=progress,
    )
    layout.run_done(run.name).write_text("")


@functools.cache
def _benchmark_suite(out: Path) -> tuple[dict, dict[str, Any]]:
    """The zoo's benchmarks and their encodings per processor, kept per process: a worker scores several
    runs, and reading and encoding 4,096 items with their images costs as much as scoring a checkpoint."""
    return load_suite(ZooLayout(out).benchmarks), {}


def _score_run(preset: str, out: Path, run_name: str) -> None:
    """Score every checkpoint of one run not scored yet (cached per checkpoint, so scoring resumes)."""
    config = load_config(preset)
    layout = ZooLayout(out)
    suite, encoded = _benchmark_suite(out)
    for path in layout.checkpoint_folders():
        cached = layout.checkpoint_items(path)
        if path.parent.name != run_name or cached.exists():
            continue
        name = layout.checkpoint_name(path)
        rows = evaluate_checkpoint(
            path, suite, device="cpu", batch_size=32, max_new_tokens=config.answer_tokens, encoded=encoded
        )
        with atomic_output(cached) as tmp:
            pd.DataFrame([{"checkpoint": name} | row for row in rows]).to_parquet(tmp, index=False)


def zoo_items(out: Path) -> list[dict]:
    """The per-item results of every checkpoint, from the evaluation cache."""

    layout = ZooLayout(out)
    tables = [pd.read_parquet(layout.checkpoint_items(path)) for path in layout.checkpoint_folders()]
    return pd.concat(tables, ignore_index=True).to_dict("records")


def markdown_table(scores_csv: str | Path, final_only: bool = True) -> str:
    """The score table as markdown: one row per run (its last checkpoint), plus a chance row."""

    rows = read_scores(scores_csv).to_dict("records")
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        table.setdefault(row["checkpoint"], {})[row["benchmark"]] = row["score"]
    if final_only:
        table = {c: table[c] for c in last_checkpoints(table).values()}
    benchmarks = [b for b in BENCHMARKS if any(b in r for r in table.values())]
    benchmarks += sorted({b for r in table.values() for b in r} - set(benchmarks))
    lines = ["| checkpoint | " + " | ".join(benchmarks) + " |", "|---" * (len(benchmarks) + 1) + "|"]
    for checkpoint, scores in table.items():
        lines.append(
            f"| {checkpoint} | " + " | ".join(f"{scores.get(b, float('nan')):.1f}" for b in benchmarks) + " |"
        )
    lines.append(
        "| *chance* | " + " | ".join(f"{100 * CHANCE.get(b, float('nan')):.1f}" for b in benchmarks) + " |"
    )
    all_rows: dict[str, list[float]] = {}
    for row in rows:
        all_rows.setdefault(row["benchmark"], []).append(row["score"])
    lines.append(
        "| *min-max, all checkpoints* | "
        + " | ".join(f"{min(all_rows[b]):.0f}-{max(all_rows[b]):.0f}" for b in benchmarks)
        + " |"
    )
    return "\n".join(lines)


__all__ = ["build", "load_config", "markdown_table", "zoo_items"]
