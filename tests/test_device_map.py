"""A checkpoint spread by a device map (accelerate's placement, layers offloaded included) records what it
records on one device: the same head metrics and the same answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.extract import load_checkpoint, read_probes
from headcast.extract.pipeline import measure_heads


def offloading_map(layers: int) -> dict[str, str]:
    """Every module on the CPU but the language model's second half of layers, which waits on disk and is
    loaded into place only for its own forward (accelerate's hooks)."""
    placement = {
        "model.vision_tower": "cpu",
        "model.multi_modal_projector": "cpu",
        "model.language_model.embed_tokens": "cpu",
        "model.language_model.norm": "cpu",
        "model.language_model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    for layer in range(layers):
        placement[f"model.language_model.layers.{layer}"] = "cpu" if layer < layers // 2 else "disk"
    return placement


@pytest.mark.parametrize("query", ["last-prompt", "first-generated"])
def test_layers_offloaded_by_a_device_map_record_the_same_metrics_and_answers(
    tiny_checkpoint, tiny_probes, tmp_path, query
):
    path = tiny_checkpoint("llava-1.5-7b")
    probes = read_probes(tiny_probes)
    whole = load_checkpoint(path, device="cpu")
    layers = whole.model.config.text_config.num_hidden_layers
    spread = load_checkpoint(path, device_map=offloading_map(layers), offload_folder=tmp_path / "offload")
    assert set(spread.model.hf_device_map.values()) == {"cpu", "disk"}

    expected, expected_answers = measure_heads(whole, probes, query, batch_size=4, progress=False)
    recorded, answers = measure_heads(spread, probes, query, batch_size=4, progress=False)
    np.testing.assert_allclose(recorded, expected, atol=1e-6, equal_nan=True)
    pd.testing.assert_frame_equal(answers, expected_answers, atol=1e-6)


def test_a_placement_accelerate_does_not_know_is_one_line(tiny_checkpoint):
    with pytest.raises(HeadcastError, match="unknown device map 'everywhere'; use auto, balanced"):
        load_checkpoint(tiny_checkpoint("llava-1.5-7b"), device_map="everywhere")


def test_extract_with_device_map_auto_writes_the_table_one_device_writes(
    tiny_checkpoint, tiny_probes, tmp_path, monkeypatch, capsys
):
    from headcast.cli import main

    monkeypatch.setenv(
        "HEADCAST_CACHE", str(tmp_path / "cache")
    )  # both runs compute, neither reads the other
    path = tiny_checkpoint("llava-1.6-mistral-7b")
    common = [str(path), "--probes", str(tiny_probes), "--quiet"]
    assert main(["extract", *common, "--out", str(tmp_path / "one.parquet"), "--device", "cpu"]) == 0
    monkeypatch.setenv("HEADCAST_CACHE", str(tmp_path / "cache-map"))
    assert main(["extract", *common, "--out", str(tmp_path / "map.parquet"), "--device-map", "auto"]) == 0
    one, spread = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "map.parquet")
    pd.testing.assert_frame_equal(spread, one, atol=1e-6)

    code = main(
        ["extract", *common, "--out", str(tmp_path / "x.parquet"), "--device", "cpu", "--device-map", "auto"]
    )
    assert code == 2 and "pass --device or --device-map, not both" in capsys.readouterr().err


def test_benchmark_answers_from_layers_offloaded_are_the_answers_of_one_device(smoke_zoo, tmp_path):
    from headcast.extract.evaluate import evaluate_checkpoint, load_suite

    path = sorted((smoke_zoo / "checkpoints").glob("*/*/config.json"))[-1].parent
    suite = {name: items[:12] for name, items in load_suite(smoke_zoo / "benchmarks").items()}
    layers = load_checkpoint(path, device="cpu").model.config.text_config.num_hidden_layers
    whole = pd.DataFrame(evaluate_checkpoint(path, suite, device="cpu", batch_size=8))
    spread = evaluate_checkpoint(path, suite, batch_size=8, device_map=offloading_map(layers))
    pd.testing.assert_frame_equal(pd.DataFrame(spread), whole, atol=1e-6)
    assert whole["correct"].sum() > 0  # a trained checkpoint: the comparison covers right answers too


def test_evaluate_with_device_map_auto_writes_the_scores_one_device_writes(smoke_zoo, tmp_path, capsys):
    from headcast.cli import main

    path = sorted((smoke_zoo / "checkpoints").glob("*/*/config.json"))[-1].parent
    suite = tmp_path / "suite"
    suite.mkdir()
    for benchmark in sorted((smoke_zoo / "benchmarks").glob("*.jsonl"))[:2]:
        (suite / benchmark.name).write_text("".join(benchmark.read_text().splitlines(keepends=True)[:10]))
    for image in (smoke_zoo / "benchmarks").iterdir():
        if image.is_dir():
            (suite / image.name).symlink_to(image)
    common = ["evaluate", str(path), "--benchmarks", str(suite)]
    assert main([*common, "--out", str(tmp_path / "one.csv"), "--device", "cpu"]) == 0
    assert main([*common, "--out", str(tmp_path / "map.csv"), "--device-map", "auto"]) == 0
    assert (tmp_path / "map.csv").read_text() == (tmp_path / "one.csv").read_text()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "map.items.parquet"), pd.read_parquet(tmp_path / "one.items.parquet")
    )
    assert main([*common, "--out", str(tmp_path / "x.csv"), "--device", "cpu", "--device-map", "auto"]) == 2
    assert "pass --device or --device-map, not both" in capsys.readouterr().err
