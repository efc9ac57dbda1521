"""What real lmms-eval 0.7.3 output says about how its per-item truth was made: the anchors' contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from headcast.errors import HeadcastError
from headcast.predictor.lmms_provenance import task_provenance

SAMPLES = Path(__file__).parent / "data" / "lmms-eval" / "results-with-samples"


def test_each_task_keeps_its_hashes_metric_prompt_settings_and_harness_version():
    provenance = task_provenance(SAMPLES)
    assert set(provenance) >= {"zoo_spatial", "zoo_count_object", "zoo_pope_random"}
    spatial = provenance["zoo_spatial"]
    assert spatial["metric"] == "exact_match,none" and spatial["model"] == "llava_hf"
    assert len(spatial["task_hash"]) == 64 and len(spatial["doc_hashes"]) == 1
    assert spatial["chat_template_sha"] is None and spatial["system_instruction_sha"] is None
    assert spatial["harness_version"].startswith("unknown")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chat_template_sha": "ab" * 32}, "custom chat template"),
        ({"system_instruction_sha": "cd" * 32}, "custom system instruction"),
        ({"config": {"model": "qwen2_vl", "model_args": "pretrained=x"}}, "lmms-eval model 'qwen2_vl'"),
    ],
)
def test_truth_made_under_prompt_settings_headcast_does_not_reproduce_is_refused(tmp_path, change, message):
    folder = shutil.copytree(SAMPLES, tmp_path / "results")
    report_file = next(folder.rglob("*_results.json"))
    report = json.loads(report_file.read_text())
    report_file.write_text(json.dumps(report | change))
    with pytest.raises(HeadcastError, match=message):
        task_provenance(folder)
