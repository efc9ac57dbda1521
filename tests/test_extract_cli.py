"""`headcast extract` end to end on saved tiny checkpoints: outputs, cache, resumption."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from headcast.cli import main
from headcast.extract import pipeline
from headcast.extract.features import feature_columns
from headcast.schema import (
    ANSWER_COLUMNS,
    FEATURE_SCHEMA_VERSION,
    confidence_feature_columns,
    head_feature_columns,
)
from headcast.tables import read_features
from tests.conftest import ALL_SHAPES


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_extract_writes_features_per_head_table_and_heatmap_for_each_architecture(
    tiny_checkpoint, tiny_probes, tmp_path, shape
):
    folder = tiny_checkpoint(shape)
    out, per_head, answers = (tmp_path / name for name in ("features.parquet", "heads.parquet", "a.parquet"))
    code = main(
        [
            "extract",
            str(folder),
            "--probes",
            str(tiny_probes),
            "--out",
            str(out),
            "--per-head",
            str(per_head),
            "--answers",
            str(answers),
            "--relative-to",
            str(folder.parent),
            "--quiet",
        ]
    )
    assert code == 0
    table, settings = read_features(out)
    assert list(table.columns[:2]) == ["checkpoint", "schema_version"]
    assert head_feature_columns(table.columns) == feature_columns()
    assert confidence_feature_columns(table.columns) == [
        *(f"confidence.{stat}" for stat in ("mean", "q10", "q50", "q90")),
        *(f"confidence.above{t}" for t in ("0.3", "0.5", "0.7", "0.9")),
        "confidence.task=count_object",
    ]
    assert table["checkpoint"].tolist() == [shape] and table["schema_version"].tolist() == [
        FEATURE_SCHEMA_VERSION
    ]
    assert settings[shape]["query"] == "last-prompt" and settings[shape]["dtype"] == "float32"
    assert set(settings[shape]) >= {"probe_set_hash", "checkpoint_fingerprint", "versions", "n_layers"}
    heads = pd.read_parquet(per_head)
    config = settings[shape]
    assert len(heads) == config["n_layers"] * config["n_heads"]
    assert heads[["layer", "head"]].min().tolist() == [0, 0]
    assert heads["visual_mass"].between(0, 1).all() and heads["region_mass"].notna().all()
    assert (tmp_path / f"heads-{shape}.png").stat().st_size > 1000
    per_probe = pd.read_parquet(answers)
    assert list(per_probe.columns) == ["checkpoint", *ANSWER_COLUMNS]
    assert per_probe["item"].tolist() == [f"tiny-{i}" for i in range(6)]
    assert per_probe["correct"].isin([0.0, 1.0]).all() and per_probe["confidence"].between(0, 1).all()


def test_a_second_run_is_served_from_the_cache_without_loading_a_model(
    tiny_checkpoint, tiny_probes, tmp_path, monkeypatch
):
    args = ["extract", str(tiny_checkpoint("llava-1.5-7b")), "--probes", str(tiny_probes), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a.parquet"), "--query", "answer-mean"]) == 0

    def no_loading(*_, **__):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(pipeline, "load_checkpoint", no_loading)
    assert main([*args, "--out", str(tmp_path / "b.parquet"), "--query", "answer-mean"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    )
    with pytest.raises(AssertionError, match="cache should have answered"):  # other settings, other key
        main([*args, "--out", str(tmp_path / "c.parquet"), "--query", "first-generated"])


def test_an_interrupted_run_writes_nothing_and_resumes_with_the_finished_checkpoints(
    tiny_checkpoint, tiny_probes, tmp_path, tmp_path_factory, monkeypatch
):
    monkeypatch.setenv("HEADCAST_CACHE", str(tmp_path_factory.mktemp("fresh-cache")))
    folders = [str(tiny_checkpoint("vip-llava-7b")), str(tiny_checkpoint("llava-1.5-phi3-mini"))]
    out = tmp_path / "features.parquet"
    measured = []
    real_measure = pipeline.measure_heads

    def interrupted_on_second(checkpoint, *args, **kwargs):
        measured.append(checkpoint.path)
        if len(measured) == 2:
            raise KeyboardInterrupt
        return real_measure(checkpoint, *args, **kwargs)

    monkeypatch.setattr(pipeline, "measure_heads", interrupted_on_second)
    args = [
        "extract",
        *folders,
        "--probes",
        str(tiny_probes),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--quiet",
    ]
    assert main(args) == 130
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(args) == 0
    assert [str(p) for p in measured] == [folders[0], folders[1], folders[1]]
    assert len(pd.read_parquet(out)) == 2


def test_the_console_command_runs_as_a_separate_process(tiny_checkpoint, tiny_probes, tmp_path):
    out = tmp_path / "f.parquet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "headcast",
            "extract",
            str(tiny_checkpoint("llava-1.6-mistral-7b")),
            "--probes",
            str(tiny_probes),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 1 feature row" in result.stdout and out.is_file()
