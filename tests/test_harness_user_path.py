"""The README's lmms-eval task path, run as written: checkpoints and task YAMLs to answered anchors.

The user's folder holds the smoke zoo's checkpoints, its probe set and their features, made by the
README's own extract line; the task YAMLs follow the lmms-eval fixture's recipe over the zoo's
benchmark files. Per-item truth comes from `headcast evaluate --tasks`
(lmms-eval's own values, as test_harness_tasks checks against real lmms-eval).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil

import pandas as pd
import pytest

from headcast.cli import main
from tests.lmms_tasks import write_task_folder
from tests.test_readme_user_path import README, expanded, link_checkpoint, readme_commands

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lmms_eval") is None,
    reason="lmms-eval is not installed (pip install 'headcast[lmms-eval]'; CI installs it)",
)


def task_commands() -> list[list[str]]:
    """The `headcast ...` lines of the README's lmms-eval task block (the section's second block)."""
    section = README.read_text().split("## Bring your own model", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[1]
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith("headcast ")]


@pytest.fixture
def user_folder(smoke_zoo, tmp_path, monkeypatch):
    """Checkpoints under checkpoints/, a probe set under probes/, a new checkpoint, the task YAMLs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for config in sorted((smoke_zoo / "checkpoints").glob("*/*/config.json")):
        link_checkpoint(
            config.parent, tmp_path / "checkpoints" / config.parent.relative_to(config.parents[2])
        )
    link_checkpoint(config.parent, tmp_path / "new-checkpoints" / "run" / "000500")
    shutil.copytree(smoke_zoo / "probes", tmp_path / "probes")
    benchmarks = smoke_zoo / "benchmarks"
    sources = {name: benchmarks / f"{name}.jsonl" for name in ("spatial", "count_object")}
    write_task_folder(tmp_path / "tasks", sources)
    return tmp_path


def test_the_readme_task_path_gives_a_new_checkpoint_the_anchored_estimate(user_folder, capsys):
    extract = next(c for c in readme_commands() if c[0] == "extract")  # the features, as the user made them
    assert main(expanded(extract)) == 0
    commands = task_commands()
    assert [c[0] for c in commands] == ["evaluate", "fit", "predict"]
    capsys.readouterr()
    for command in commands:
        assert main(expanded(command)) == 0, command

    items = pd.read_parquet(user_folder / "task-scores.items.parquet")
    assert set(items["benchmark"]) == {"zoo_spatial", "zoo_count_object"}
    assert set(items["item"]) == {str(i) for i in range(8)}  # lmms-eval's doc_ids
    anchors = [json.loads(line) for line in (user_folder / "anchors.jsonl").read_text().splitlines()]
    assert {a["task"] for a in anchors} == {"zoo_spatial", "zoo_count_object"}
    assert all(a["harness"] == "lmms-eval" and len(a["task_config"]) == 64 for a in anchors)
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(predicted) >= {"zoo_spatial", "zoo_count_object"}
    assert all(predicted[t]["answered"] for t in ("zoo_spatial", "zoo_count_object"))
