"""Parity of headcast's task path with real lmms-eval 0.7.3 on zoo checkpoints, and the frontier on it.

    python benchmarks/bench_harness_parity.py --zoo zoo/small [--checkpoints 4] [--items 64] [--frontier]

Local task YAMLs over the first `--items` of the zoo's `benchmarks/<name>.jsonl` (the fixture's recipe,
`dataset_path: json`), each benchmark twice: with the bare question (`zoo_<name>`) and with the
short-answer instruction lmms-eval's real short-answer tasks append (`zoo_<name>_short`). On the
last checkpoint of each of the first `--checkpoints` runs, real lmms-eval (`python -m lmms_eval
--model llava_hf --log_samples`) and `headcast evaluate --tasks` answer every document; reported:
agreements per task, every disagreement (both answers), whether the aggregate scores are equal, and
for comparison how often headcast's own first-word evaluator on the bare question gives lmms-eval's
short-answer verdict. `--frontier` then fits on the task path's per-item truth (the short-answer
variants, every document) of every checkpoint of the zoo and prints the cost-error frontier (error
against answered items per benchmark), then the same fit on headcast's own evaluator's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pandas as pd  # noqa: E402

from headcast.predictor.lmms_eval import read_lmms_eval, read_lmms_eval_items  # noqa: E402
from headcast.predictor.scores import read_items  # noqa: E402
from tests.lmms_tasks import write_task_folder  # noqa: E402

BENCHMARKS = ("spatial", "count_object", "pope_random", "attribute")
SHORT_ANSWER = "\\nAnswer the question using a single word or phrase."


def headcast(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "headcast", *args], check=True, cwd=REPO)


def lmms_eval(checkpoint: Path, tasks: Path, names: str, out: Path, cache: Path) -> None:
    """One real lmms-eval run of a checkpoint (it exits 0 even after errors: the report must exist)."""
    reports = out.rglob("*_results.json")
    if any(f"pretrained={checkpoint}," in json.loads(r.read_text())["config"]["model_args"] for r in reports):
        return  # logged by an earlier run of this benchmark in the same --work folder
    env = os.environ | {"HF_DATASETS_CACHE": str(cache), "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "lmms_eval", "--model", "llava_hf"]
    command += ["--model_args", f"pretrained={checkpoint},device=cpu,device_map=cpu"]
    command += ["--include_path", str(tasks), "--tasks", names, "--batch_size", "1"]
    command += ["--output_path", str(out), "--log_samples"]
    before = set(out.rglob("*_results.json"))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if not set(out.rglob("*_results.json")) - before:
        raise SystemExit(f"lmms-eval wrote no results for {checkpoint}:\n{done.stderr[-3000:]}")


def trimmed_suite(zoo: Path, work: Path, items: int) -> Path:
    """The first `items` items of each benchmark, image paths absolute, as a suite folder of its own."""
    suite = work / "benchmarks"
    suite.mkdir(parents=True, exist_ok=True)
    for benchmark in BENCHMARKS:
        source = zoo / "benchmarks" / f"{benchmark}.jsonl"
        lines = [json.loads(line) for line in source.read_text().splitlines()[:items]]
        for line in lines:
            line["image"] = str(source.parent / line["image"])
        (suite / source.name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return suite


def parity(zoo: Path, work: Path, runs: int, items: int) -> dict:
    tasks = work / "tasks"
    suite = trimmed_suite(zoo, work, items)
    sources = {b: suite / f"{b}.jsonl" for b in BENCHMARKS}
    write_task_folder(tasks, sources)
    write_task_folder(tasks, {f"{b}_short": s for b, s in sources.items()}, post_prompt=SHORT_ANSWER)
    names = ",".join(f"zoo_{b}{v}" for b in BENCHMARKS for v in ("", "_short"))
    folders = sorted((zoo / "checkpoints").iterdir())[:runs]
    checkpoints = [sorted(p.parent for p in run.glob("*/config.json"))[-1] for run in folders]
    for checkpoint in checkpoints:
        lmms_eval(checkpoint, tasks, names, work / "results", work / "datasets")
    headcast("evaluate", *map(str, checkpoints), "--tasks", names, "--include-path", str(tasks),
             "--out", str(work / "scores.csv"))  # fmt: skip
    headcast("evaluate", *map(str, checkpoints), "--benchmarks", str(suite),
             "--out", str(work / "own.csv"))  # fmt: skip

    key = ["checkpoint", "benchmark", "item"]
    theirs = read_lmms_eval_items(work / "results").set_index(key)
    ours = read_items(work / "scores.items.parquet").set_index(key)
    joined = ours.merge(theirs, left_index=True, right_index=True, how="outer", suffixes=("", "_lmms"))
    agree = joined["correct"] == joined["correct_lmms"]
    same_text = joined["answer"] == joined["answer_lmms"]
    per_task = joined.assign(agree=agree).groupby(level="benchmark")["agree"].agg(["sum", "size"])
    disagreements = joined[~agree | ~same_text].reset_index()
    scores = pd.read_csv(work / "scores.csv").set_index(["checkpoint", "benchmark"])["score"]
    harness = read_lmms_eval(work / "results").set_index(["checkpoint", "benchmark"])["score"]
    own = read_items(work / "own.items.parquet")  # headcast's first-word evaluator, bare question
    own = own[own["benchmark"].isin(BENCHMARKS)]
    own = own.assign(benchmark="zoo_" + own["benchmark"] + "_short").set_index(key)
    short = theirs[theirs.index.get_level_values("benchmark").str.endswith("_short")]
    own_items = _by_doc_id(own, suite)
    own_vs_short = (own_items["correct"] == short.loc[own_items.index, "correct"]).agg(["sum", "size"])
    return {
        "checkpoints": [str(c.relative_to(zoo / "checkpoints")) for c in checkpoints],
        "items": int(agree.size),
        "agree": int(agree.sum()),
        "same_filtered_text": int(same_text.sum()),
        "per_task": {t: f"{int(r['sum'])}/{int(r['size'])}" for t, r in per_task.iterrows()},
        "disagreements": disagreements[[*key, "correct", "correct_lmms", "answer", "answer_lmms"]].to_dict(
            "records"
        ),
        "aggregates_equal": bool((scores.round(2) == harness.reindex(scores.index).round(2)).all()),
        "own_evaluator_vs_lmms_short_answer": f"{int(own_vs_short['sum'])}/{int(own_vs_short['size'])}",
    }


def _by_doc_id(own: pd.DataFrame, suite: Path) -> pd.DataFrame:
    """headcast's own per-item table re-keyed from item ids to lmms-eval's doc_id (the line number)."""
    rows = own.reset_index()
    doc_ids = {}
    for benchmark in BENCHMARKS:
        lines = (suite / f"{benchmark}.jsonl").read_text().splitlines()
        task = f"zoo_{benchmark}_short"
        doc_ids |= {(task, json.loads(line)["id"]): str(i) for i, line in enumerate(lines)}
    rows["item"] = [doc_ids[(b, i)] for b, i in zip(rows["benchmark"], rows["item"], strict=True)]
    return rows.set_index(["checkpoint", "benchmark", "item"])


def frontier(zoo: Path, work: Path, jobs: int) -> None:
    """Fit on the task path's per-item truth of every zoo checkpoint; the fit prints the frontier.

    The checkpoints are answered by `jobs` single-threaded `headcast evaluate` processes side by side:
    tiny models on a shared CPU run several times faster so than one process with every thread.
    """
    tasks = work / "tasks"
    names = ",".join(f"zoo_{b}_short" for b in BENCHMARKS)
    root = zoo / "checkpoints"
    checkpoints = sorted(str(p.parent) for p in root.glob("*/*/config.json"))
    probes = zoo / "probes" / "probes.jsonl"
    headcast("extract", *checkpoints, "--probes", str(probes), "--relative-to", str(root),
             "--out", str(work / "features.parquet"), "--quiet")  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    shares = [checkpoints[i::jobs] for i in range(jobs)]
    evaluate = [sys.executable, "-m", "headcast", "evaluate", "--tasks", names, "--include-path", str(tasks)]
    running = [
        subprocess.Popen([*evaluate, *share, "--out", str(work / f"part{i}.csv")], cwd=REPO, env=env)
        for i, share in enumerate(shares)
    ]
    if any(process.wait() for process in running):
        raise SystemExit("headcast evaluate failed on the zoo's checkpoints")
    pd.concat([pd.read_csv(work / f"part{i}.csv") for i in range(jobs)]).to_csv(work / "all.csv", index=False)
    parts = [read_items(work / f"part{i}.items.parquet") for i in range(jobs)]
    pd.concat(parts).to_parquet(work / "all.items.parquet", index=False)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    headcast("fit", "--features", str(work / "features.parquet"), "--scores", str(work / "all.csv"),
             "--items", str(work / "all.items.parquet"), "--checkpoint-root", str(root),
             "--tasks", names, "--include-path", str(tasks), "--anchors-out", str(work / "anchors.jsonl"),
             "--experiment", "harness-parity", "--no-register")  # fmt: skip
    print("\nfor comparison, the same zoo with headcast's own evaluator as the truth (as the demo fits):")
    headcast("fit", "--features", str(work / "features.parquet"), "--scores", str(zoo / "scores.csv"),
             "--items", str(zoo / "scores.items.parquet"), "--benchmarks", ",".join(BENCHMARKS),
             "--experiment", "harness-parity-own", "--no-register")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=REPO / "zoo" / "small")
    parser.add_argument("--checkpoints", type=int, default=4, help="runs whose last checkpoint is compared")
    parser.add_argument("--items", type=int, default=64, help="first items of each benchmark (default 64)")
    parser.add_argument("--frontier", action="store_true", help="also fit on every checkpoint's task truth")
    parser.add_argument("--jobs", type=int, default=2, help="evaluate processes for --frontier (default 2)")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="harness-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    result = parity(args.zoo.resolve(), work, args.checkpoints, args.items)
    print(json.dumps(result, indent=None if args.json else 1, default=str))
    if args.frontier:
        frontier(args.zoo.resolve(), work, args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
