"""Service jobs with lmms-eval anchors: the task folder, whose code a job runs, must lie in a served root."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from headcast.predictor.service.errors import ServiceError
from headcast.predictor.service.paths import job_paths
from headcast.predictor.service.schemas import JobRequest


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    (root / "ckpt").mkdir(parents=True)
    (root / "ckpt" / "config.json").write_text("{}")
    Image.new("RGB", (8, 8)).save(root / "image.png")
    (root / "probes.jsonl").write_text(json.dumps({"id": "a", "image": "image.png", "question": "q"}) + "\n")
    (root / "tasks").mkdir()
    return root


def anchor_file(root, include_path) -> str:
    line = {"id": "0", "task": "zoo_spatial", "harness": "lmms-eval", "include_path": str(include_path)}
    (root / "anchors.jsonl").write_text(json.dumps(line | {"task_config": "0" * 64}) + "\n")
    return "anchors.jsonl"


def test_a_task_folder_inside_the_roots_is_accepted(served):
    body = JobRequest(checkpoint="ckpt", probes="probes.jsonl", anchors=anchor_file(served, served / "tasks"))
    assert job_paths(body, [served.resolve()]).anchors == (served / "anchors.jsonl").resolve()


def test_a_task_folder_outside_the_roots_is_refused_with_403(served, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    body = JobRequest(checkpoint="ckpt", probes="probes.jsonl", anchors=anchor_file(served, outside))
    with pytest.raises(ServiceError) as refused:
        job_paths(body, [served.resolve()])
    assert refused.value.status == 403 and "anchors line 1: task folder" in str(refused.value)
