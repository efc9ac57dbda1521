"""lmms-eval tasks as a suite: headcast answers and scores them as real lmms-eval 0.7.3 does.

These run real lmms-eval (the optional `headcast[lmms-eval]`, which CI installs) on a tiny checkpoint
over local task YAMLs, and compare headcast's per-item values with lmms-eval's `--log_samples` logs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.lmms_eval import read_lmms_eval, read_lmms_eval_items
from headcast.predictor.scores import read_items
from tests.lmms_tasks import write_task_folder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lmms_eval") is None,
    reason="lmms-eval is not installed (pip install 'headcast[lmms-eval]'; CI installs it)",
)

SHORT_ANSWER = "\\nAnswer the question using a single word or phrase."
TASKS = "zoo_count,zoo_short"


@pytest.fixture(scope="module")
def harness_run(tiny_checkpoint, tiny_probes, tmp_path_factory):
    """A task folder, a checkpoint, and real lmms-eval's `--log_samples` output for both tasks."""
    root = tmp_path_factory.mktemp("harness")
    tasks = write_task_folder(root / "tasks", {"count": tiny_probes})
    write_task_folder(root / "tasks", {"short": tiny_probes}, post_prompt=SHORT_ANSWER, max_new_tokens=3)
    checkpoint = tiny_checkpoint("llava-1.5-7b")
    env = os.environ | {"HF_DATASETS_CACHE": str(root / "datasets"), "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "lmms_eval", "--model", "llava_hf"]
    command += ["--model_args", f"pretrained={checkpoint},device=cpu,device_map=cpu"]
    command += ["--include_path", str(tasks), "--tasks", TASKS, "--batch_size", "1"]
    command += ["--output_path", str(root / "results"), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=root)
    if not list((root / "results").rglob("*_results.json")):  # lmms-eval exits 0 even after errors
        pytest.fail(f"lmms-eval wrote no results:\n{done.stderr[-3000:]}")
    return tasks, checkpoint, root / "results"


def test_evaluate_on_tasks_gives_each_item_the_value_lmms_eval_logged(harness_run, tmp_path):
    tasks, checkpoint, results = harness_run
    out = tmp_path / "scores.csv"
    command = ["evaluate", str(checkpoint), "--tasks", TASKS, "--include-path", str(tasks), "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "headcast", *command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    ours = read_items(tmp_path / "scores.items.parquet").set_index(["benchmark", "item"])
    logged = read_lmms_eval_items(results).set_index(["benchmark", "item"])
    assert sorted(ours.index) == sorted(logged.index)  # task names and lmms-eval's doc_ids
    assert (ours["correct"] == logged.loc[ours.index, "correct"]).all()
    assert (ours["answer"] == logged.loc[ours.index, "answer"]).all()  # the filtered response itself
    assert ours["prob"].between(0, 1).all()  # single-token targets: the gold answer's probability

    scores = pd.read_csv(out).set_index("benchmark")["score"]
    harness = read_lmms_eval(results).set_index("benchmark")["score"]
    assert scores.round(2).to_dict() == harness.round(2).to_dict()


def test_a_multiple_choice_task_is_refused_in_one_line(tiny_probes, tmp_path):
    from headcast.extract import load_tasks

    folder = write_task_folder(tmp_path / "tasks", {"choice": tiny_probes})
    yaml = folder / "zoo_choice.yaml"
    text = yaml.read_text().replace("output_type: generate_until", "output_type: multiple_choice")
    yaml.write_text(text + 'doc_to_choice: ["1", "2", "3"]\n')
    with pytest.raises(HeadcastError, match="is a multiple_choice task") as refused:
        load_tasks(["zoo_choice"], folder)
    assert "\n" not in str(refused.value)


def test_truth_from_lmms_evals_simple_llava_hf_cannot_anchor_a_task(harness_run, tmp_path):
    from headcast.extract import load_tasks
    from headcast.predictor.lmms_provenance import task_provenance
    from headcast.predictor.task_anchors import write_task_anchors

    tasks, _, results = harness_run
    provenance = task_provenance(results)
    assert provenance["zoo_count"]["backend"] == "chat"
    loaded = load_tasks(["zoo_count"], tasks)
    simple = {"zoo_count": provenance["zoo_count"] | {"backend": "simple"}}
    with pytest.raises(HeadcastError, match="rerun lmms-eval without --force_simple"):
        write_task_anchors({"zoo_count": ["0"]}, loaded, tasks, simple, tmp_path / "anchors.jsonl")


def test_a_task_renders_its_own_prompt_instruction_and_generation_settings(harness_run):
    from headcast.extract import load_tasks

    tasks, _, results = harness_run
    loaded = load_tasks(["zoo_short"], tasks)["zoo_short"]
    item = loaded.item("0")
    text = next(part["text"] for part in item.messages[0]["content"] if part["type"] == "text")
    logged = json.loads(next(results.rglob("*_samples_zoo_short.jsonl")).read_text().splitlines()[0])
    assert text == logged["input"]
    assert text.endswith("Answer the question using a single word or phrase.")
    assert loaded.generation_kwargs["max_new_tokens"] == 3
    assert (loaded.metric, loaded.filter) == ("exact_match", "none")


def test_anchors_from_a_changed_task_configuration_are_refused(tiny_probes, tmp_path):
    from headcast.extract import load_tasks
    from headcast.predictor.task_anchors import TaskAnchors, write_task_anchors

    folder = write_task_folder(tmp_path / "tasks", {"count": tiny_probes})
    loaded = load_tasks(["zoo_count"], folder)
    out = write_task_anchors({"zoo_count": ["0", "3"]}, loaded, folder, {}, tmp_path / "anchors.jsonl")
    assert TaskAnchors.read(out).keys == [("zoo_count", "0"), ("zoo_count", "3")]
    assert set(TaskAnchors.read(out).tasks()) == {"zoo_count"}  # unchanged: accepted

    yaml = folder / "zoo_count.yaml"
    yaml.write_text(yaml.read_text().replace('post_prompt: ""', 'post_prompt: " Answer briefly."'))
    with pytest.raises(HeadcastError, match="configured differently"):
        TaskAnchors.read(out).tasks()


def test_an_unknown_task_is_one_line(harness_run):
    tasks, checkpoint, _ = harness_run
    command = ["evaluate", str(checkpoint), "--tasks", "zoo_nothing", "--include-path", str(tasks)]
    done = subprocess.run([sys.executable, "-m", "headcast", *command], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"headcast: error: no lmms-eval task 'zoo_nothing' below {Path(tasks)}"
    ]


def test_a_task_scores_an_answer_as_the_harness_does_reasoning_blocks_cut(tiny_probes, tmp_path):
    from headcast.extract import load_tasks

    folder = write_task_folder(tmp_path / "tasks", {"count": tiny_probes})
    task = load_tasks(["zoo_count"], folder)["zoo_count"]
    assert task.item("0").target == "1"
    assert task.score("0", "1 square")[0] == 1.0
    assert task.score("0", "<think>two, or 3</think>1")[0] == 1.0  # lmms-eval's CLI default tags
    assert task.score("0", "2")[0] == 0.0
    with pytest.raises(HeadcastError, match="has no doc_id '6'"):
        task.score("6", "1")
