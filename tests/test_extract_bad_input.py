"""Bad input: one line naming the problem, a non-zero exit, and no output file."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from experiments.modeling import PAPER_SHAPES, build_model, build_processor, build_tokenizer, save_checkpoint
from experiments.tiny import WORDS
from headcast.cli import main


def run_failing(capsys, tmp_path, checkpoint, probes, *extra) -> str:
    out = tmp_path / "out" / "features.parquet"
    code = main(["extract", str(checkpoint), "--probes", str(probes), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert err[-1].startswith("headcast: error: ")
    return err[-1]


def write_probes(tmp_path, lines: list[str]):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def good_item(tiny_probes):
    item = json.loads(tiny_probes.read_text().splitlines()[0])
    item["image"] = str(tiny_probes.parent / item["image"])
    return item


def test_missing_checkpoint_folder(capsys, tmp_path, tiny_probes):
    assert "does not exist" in run_failing(capsys, tmp_path, tmp_path / "nope", tiny_probes)


def test_a_text_only_model_is_not_a_vision_language_model(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "llama"
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config["text_config"] | {"model_type": "llama"}))
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert "'llama' model, not a supported vision-language model" in message and "llava_next" in message


def test_corrupt_weights(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "not a readable safetensors file" in run_failing(capsys, tmp_path, folder, tiny_probes)


def test_pickle_weights_are_refused(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert "safetensors only" in run_failing(capsys, tmp_path, folder, tiny_probes)


def test_a_probe_line_that_is_not_json_is_named_by_number(capsys, tmp_path, tiny_checkpoint, good_item):
    probes = write_probes(tmp_path, [json.dumps(good_item), "{not json"])
    assert f"{probes}:2: not valid JSON" in run_failing(
        capsys, tmp_path, tiny_checkpoint("llava-1.5-7b"), probes
    )


def test_missing_and_unreadable_images(capsys, tmp_path, tiny_checkpoint, good_item):
    folder = tiny_checkpoint("llava-1.5-7b")
    missing = write_probes(tmp_path, [json.dumps(good_item | {"image": "missing.png"})])
    assert "missing.png does not exist" in run_failing(capsys, tmp_path, folder, missing)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    broken = write_probes(tmp_path, [json.dumps(good_item | {"image": "broken.png"})])
    assert "not a readable image" in run_failing(capsys, tmp_path, folder, broken)


def test_a_box_outside_the_image(capsys, tmp_path, tiny_checkpoint, good_item):
    probes = write_probes(tmp_path, [json.dumps(good_item | {"box": [0, 0, 400, 10]})])
    assert "is not inside the 40x32 image" in run_failing(
        capsys, tmp_path, tiny_checkpoint("llava-1.5-7b"), probes
    )


def test_an_empty_probe_set(capsys, tmp_path, tiny_checkpoint):
    probes = write_probes(tmp_path, [""])
    assert "has no items" in run_failing(capsys, tmp_path, tiny_checkpoint("llava-1.5-7b"), probes)


def test_answer_mean_needs_answers(capsys, tmp_path, tiny_checkpoint, good_item):
    probes = write_probes(tmp_path, [json.dumps({k: v for k, v in good_item.items() if k != "answer"})])
    message = run_failing(capsys, tmp_path, tiny_checkpoint("llava-1.5-7b"), probes, "--query", "answer-mean")
    assert "needs an answer on every probe" in message


def test_float16_overflow_in_attention_is_an_error_not_a_number(capsys, tmp_path, tiny_probes):
    spec, tokenizer = PAPER_SHAPES["llava-1.5-7b"], build_tokenizer(WORDS)
    model = build_model(spec, tokenizer)
    with torch.no_grad():  # queries beyond float16's range
        model.model.language_model.layers[0].self_attn.q_proj.weight.mul_(1e6)
    folder = save_checkpoint(model, build_processor(spec, tokenizer), tmp_path / "overflow")
    message = run_failing(capsys, tmp_path, folder, tiny_probes, "--dtype", "float16")
    assert "NaN/Inf in layer 0" in message and "--dtype float32" in message
