"""The README's "Bring your own model" commands, run as written on zoo checkpoints and lmms-eval output."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest

from headcast.cli import main

README = Path(__file__).parents[1] / "README.md"
LMMS_EVAL = Path(__file__).parent / "data" / "lmms-eval" / "results-all"  # 70 small-zoo checkpoints


def readme_commands() -> list[list[str]]:
    """The `headcast ...` lines of the README's "Bring your own model" block, continuations joined."""
    section = README.read_text().split("## Bring your own model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith("headcast ")]


def expanded(args: list[str]) -> list[str]:
    """Shell globbing, as the user's shell does it."""
    return [path for arg in args for path in (sorted(glob.glob(arg)) if "*" in arg else [arg])]


def as_dataset(suite: Path, out: Path) -> None:
    """The smoke zoo's benchmarks as one Parquet dataset, images embedded as Hugging Face writes them."""
    datasets = pytest.importorskip("datasets")
    rows = []
    for file in sorted(suite.glob("*.jsonl")):
        for line in file.read_text().splitlines():
            item = json.loads(line)
            rows.append(
                {
                    "image": str(file.parent / item["image"]),
                    "question": item["question"],
                    "answer": item["answer"],
                    "task": file.stem,
                }
            )
    rows = rows * 2  # the README samples 96 items; the smoke zoo has 64
    table = datasets.Dataset.from_pandas(pd.DataFrame(rows)).cast_column("image", datasets.Image())
    table.to_parquet(out)


def link_checkpoint(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=os.link)  # same content, so extraction is cached


@pytest.fixture
def user_folder(smoke_zoo, tmp_path, monkeypatch):
    """A user's working folder: checkpoints named as in the lmms-eval output, which names them absolutely."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    as_dataset(smoke_zoo / "benchmarks", tmp_path / "my-benchmark.parquet")
    ours = sorted(p.parent for p in (smoke_zoo / "checkpoints").glob("*/*/config.json"))
    results = tmp_path / "lmms-eval-results"
    for index, report_file in enumerate(sorted(LMMS_EVAL.rglob("*_results.json"))):
        report = json.loads(report_file.read_text())
        name = report["model_name"]  # the checkpoint's path under the folder lmms-eval ran in
        link_checkpoint(ours[index % len(ours)], tmp_path / "checkpoints" / name)
        absolute = str(tmp_path / "checkpoints" / name)
        report["config"]["model_args"] = report["config"]["model_args"].replace(
            f"pretrained={name},", f"pretrained={absolute},"
        )
        out = results / absolute.replace("/", "__") / report_file.name
        out.parent.mkdir(parents=True)
        out.write_text(json.dumps(report))
    link_checkpoint(ours[-1], tmp_path / "new-checkpoints" / "run" / "000500")
    return tmp_path


def test_the_readme_path_goes_from_checkpoints_and_lmms_eval_output_to_predictions(user_folder, capsys):
    commands = readme_commands()
    assert [c[0] for c in commands] == ["probes", "extract", "fit", "predict"]
    for command in commands:
        assert main(expanded(command)) == 0, command
    printed = capsys.readouterr().out
    assert "chosen:" in printed and "zoo_pope_random" in printed and "zoo_spatial" in printed
    features = pd.read_parquet(user_folder / "features.parquet")
    assert len(features) == 70 and "llava-llama-2x2-800/000160" in set(features["checkpoint"])
