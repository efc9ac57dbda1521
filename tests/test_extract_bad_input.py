"""Bad input: one line naming the problem, a non-zero exit, and no output file."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from headcast.cli import main
from headcast.experiments.modeling import (
    PAPER_SHAPES,
    build_model,
    build_processor,
    build_tokenizer,
    save_checkpoint,
)
from headcast.extract.loading import load_checkpoint
from tests.tiny_probes import WORDS


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


@pytest.mark.parametrize(
    ("model_type", "fragment"),
    [
        ("gemma3", "'gemma3' is an image-text model outside the LLaVA family"),
        ("qwen2_vl", "'qwen2_vl' is an image-text model outside the LLaVA family"),
        ("bert", "'bert' model, not a supported vision-language model"),
        ("no-such-model", "'no-such-model' model, not a supported vision-language model"),
    ],
)
def test_a_model_type_outside_the_llava_family_is_refused(
    capsys, tmp_path, tiny_probes, model_type, fragment
):
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert fragment in message and "llava_onevision" in message


@pytest.mark.parametrize(
    ("text_model", "fragment"),
    [
        ("falcon", "does not route its attention through transformers' attention-function registry"),
        ("gemma2", "cannot run as SDPA"),
    ],
)
def test_a_language_model_whose_attention_cannot_be_recorded_is_refused(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, text_model, fragment
):
    folder = tmp_path / text_model
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"] = {"model_type": text_model}
    (folder / "config.json").write_text(json.dumps(config))
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert f"language model {text_model!r}" in message and fragment in message and "qwen2" in message


@pytest.mark.parametrize(
    ("shape", "relabel", "missing"),
    [
        ("llava-1.5-7b", {"model_type": "vipllava"}, "projector_layernorm"),
        ("llava-1.5-7b", {"text_config": {"model_type": "phi3"}}, "gate_up_proj"),  # a llama labelled phi3
    ],
)
def test_a_config_naming_another_architecture_than_its_weights_is_refused(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, shape, relabel, missing
):
    folder = tmp_path / "relabelled"
    shutil.copytree(tiny_checkpoint(shape), folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in relabel.items():
        config[key] = config[key] | value if isinstance(value, dict) else value
    (folder / "config.json").write_text(json.dumps(config))
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert "the weights do not cover" in message and "missing" in message and missing in message


def test_safetensors_of_unrelated_tensors_are_refused(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "unrelated"
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    save_file({"encoder.weight": torch.zeros(4, 4)}, folder / "model.safetensors", metadata={"format": "pt"})
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert "the weights do not cover the 'llava' model" in message and "'lm_head.weight'" in message


def test_a_weight_of_the_wrong_shape_is_refused_by_name(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "reshaped"
    shutil.copytree(tiny_checkpoint("llava-1.5-7b"), folder)
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("linear_1.weight"))
    weights[name] = torch.zeros(3, 3)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    message = run_failing(capsys, tmp_path, folder, tiny_probes)
    assert "linear_1.weight" in message and "has shape [3, 3]" in message


def test_an_lm_head_tied_to_the_embeddings_is_not_a_missing_weight(tiny_checkpoint):
    folder = tiny_checkpoint("llava-interleave-qwen-0.5b")  # Qwen2-0.5B ties them, as the real model does
    with safe_open(folder / "model.safetensors", framework="pt") as handle:
        assert not any("lm_head" in key for key in handle.keys())  # noqa: SIM118 (a safe_open handle)
    model = load_checkpoint(folder, device="cpu").model
    assert model.lm_head.weight is model.get_input_embeddings().weight


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_a_processor_needing_a_missing_library_is_one_line(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    folder = tmp_path / "onevision-processor"
    shutil.copytree(tiny_checkpoint("llava-onevision-qwen2-0.5b"), folder)
    processor = json.loads((folder / "processor_config.json").read_text())
    processor |= {"processor_class": "LlavaOnevisionProcessor", "num_image_tokens": 16}  # as real ones ship
    (folder / "processor_config.json").write_text(json.dumps(processor))
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor"}  # whose class needs torchvision
    (folder / "video_preprocessor_config.json").write_text(json.dumps(video))
    assert "requires the Torchvision library" in run_failing(capsys, tmp_path, folder, tiny_probes)


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
