"""The zoo: presets, and a smoke build end to end (built once per session, about 10 s alone)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml

from headcast.cli import build_parser
from headcast.errors import HeadcastError
from headcast.experiments.layout import ZooLayout
from headcast.experiments.scenes import BENCHMARKS
from headcast.experiments.train import even_steps
from headcast.experiments.zoo import build, load_config, markdown_table
from headcast.extract import load_checkpoint, read_probes


def _scores(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_checkpoint_steps_are_evenly_spaced_and_end_at_the_last_step():
    assert even_steps(1000, 5) == (200, 400, 600, 800, 1000)
    assert even_steps(3, 3) == (1, 2, 3)


def test_presets_meet_their_sizes():
    small, full = load_config("small"), load_config("full")
    assert len(small.runs) >= 6 and all(len(r.checkpoints) >= 5 for r in small.runs)
    for config in (small, full):
        varied = {(r.spec.family, r.spec.arch, r.strategy, r.data) for r in config.runs}
        assert {"llama", "mistral", "phi3"} <= {f for f, *_ in varied}
        assert {"llava", "llava_next"} <= {a for _, a, *_ in varied}
        assert {"frozen", "full"} <= {s for *_, s, _ in varied}
        assert len({r.data for r in config.runs}) >= 2
        assert len({r.lr for r in config.runs}) >= 2
        assert len({(r.spec.layers, r.spec.heads) for r in config.runs}) >= 3


def test_full_preset_resembles_the_papers_models():
    """Many narrow heads, many image tokens, many runs: where visual heads can form at all."""
    full = load_config("full")
    assert len(full.runs) >= 24 and all(len(r.checkpoints) >= 8 for r in full.runs)
    wide = [r for r in full.runs if r.spec.layers >= 8 and r.spec.heads >= 8]
    assert 2 * len(wide) >= len(full.runs)
    assert any(r.spec.kv_heads < r.spec.heads for r in wide)  # GQA where the family has it
    for run in full.runs:
        tokens = (run.spec.image_size // run.spec.patch_size) ** 2
        if run.spec.arch == "llava_next":  # the overview plus grid x grid tiles at the preset's resolution
            assert full.resolution >= run.spec.image_size * run.spec.anyres_grid
            tokens *= 1 + run.spec.anyres_grid**2
        assert tokens >= (250 if run.spec.arch == "llava_next" else 64), run.name
    assert full.benchmark_items >= 1000 and full.probe_items >= 96


def test_curriculum_runs_checkpoint_across_both_phases(smoke_zoo):
    run = next(r for r in load_config("smoke").runs if r.curriculum)
    assert run.checkpoints[-1] == run.curriculum + run.steps
    zoo = ZooLayout(smoke_zoo)
    saved = sorted(int(p.name) for p in zoo.run_dir(run.name).glob("0*"))
    assert saved == list(run.checkpoints)
    assert saved[0] <= run.curriculum < saved[-1]
    meta = json.loads(zoo.run_meta(zoo.checkpoint(run.name, saved[-1])).read_text())
    assert (meta["curriculum"], meta["steps"]) == (run.curriculum, run.curriculum + run.steps)


def test_curriculum_steps_without_a_curriculum_mixture_are_refused(tmp_path):
    config = load_config("smoke").raw | {"curriculum": None}
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(HeadcastError, match="no `curriculum"):
        load_config(str(path))


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(HeadcastError, match="unknown preset"):
        load_config("huge")


def test_smoke_build_writes_checkpoints_benchmarks_probes_and_scores(smoke_zoo):
    zoo = ZooLayout(smoke_zoo)
    runs = sorted(p.name for p in zoo.checkpoints.iterdir())
    assert runs == sorted(r.name for r in load_config("smoke").runs)
    checkpoints = sorted(p.parent for p in zoo.checkpoints.glob("*/*/model.safetensors"))
    assert len(checkpoints) == 5 * len(runs)
    assert sorted(p.stem for p in zoo.benchmarks.glob("*.jsonl")) == sorted(BENCHMARKS)
    assert all(p.answer is None for p in read_probes(zoo.probes))
    rows = _scores(zoo.scores)
    assert len(rows) == len(checkpoints) * len(BENCHMARKS)
    named = {r["checkpoint"] for r in rows}
    assert named == {c.relative_to(zoo.checkpoints).as_posix() for c in checkpoints}
    assert all(0.0 <= float(r["score"]) <= 100.0 and int(r["n"]) == 8 for r in rows)


def test_zoo_checkpoints_load_through_extract_like_any_checkpoint(smoke_zoo):
    for run in ZooLayout(smoke_zoo).checkpoints.iterdir():
        folder = sorted(run.iterdir())[-1]
        checkpoint = load_checkpoint(folder, device="cpu")
        meta = json.loads(ZooLayout.run_meta(folder).read_text())
        assert checkpoint.arch == meta["spec"]["arch"] and checkpoint.text_model == meta["spec"]["family"]
        assert checkpoint.processor.chat_template


def test_rebuilding_resumes_without_retraining_and_a_lost_run_comes_back_identical(smoke_zoo, tmp_path):
    copy = ZooLayout(tmp_path / "zoo")
    shutil.copytree(smoke_zoo, copy.root)
    before = copy.scores.read_text()
    stamps = {p: p.stat().st_mtime_ns for p in copy.checkpoints.glob("*/*/model.safetensors")}
    build("smoke", copy.root, seed=0)
    assert {p: p.stat().st_mtime_ns for p in copy.checkpoints.glob("*/*/model.safetensors")} == stamps
    # An interruption mid-run: the run's marker, a checkpoint and its scores are gone.
    run = sorted(copy.checkpoints.iterdir())[0]
    copy.run_done(run.name).unlink()
    lost = sorted(p for p in run.iterdir() if p.is_dir())[-1]
    shutil.rmtree(lost)
    copy.checkpoint_items(lost).unlink()
    copy.scores.unlink()
    build("smoke", copy.root, seed=0)
    assert copy.scores.read_text() == before


def test_training_runs_in_parallel_processes_gives_the_same_zoo(smoke_zoo, tmp_path):
    zoo, out = ZooLayout(smoke_zoo), ZooLayout(tmp_path / "parallel")
    shutil.copytree(zoo.benchmarks, out.benchmarks)  # the data is not what is tested
    shutil.copytree(zoo.probe_dir, out.probe_dir)
    build("smoke", out.root, seed=0, jobs=2)
    assert out.scores.read_text() == zoo.scores.read_text()
    for weights in zoo.checkpoints.glob("*/*/model.safetensors"):
        twin = out.root / weights.relative_to(zoo.root)
        assert twin.read_bytes() == weights.read_bytes()


def test_one_answer_token_scores_what_four_do_on_zoo_checkpoints(smoke_zoo, tmp_path):
    """`answer_tokens: 1` (full): every answer of the suite is one token; the same checkpoints, rescored."""
    import pandas as pd

    raw = load_config("smoke").raw | {"answer_tokens": 1}
    config = tmp_path / "one-token.yaml"
    config.write_text(yaml.safe_dump(raw))
    zoo, out = ZooLayout(smoke_zoo), ZooLayout(tmp_path / "zoo")
    trained = (zoo.benchmarks, zoo.probe_dir, zoo.checkpoints, zoo.cache)  # already: only scoring runs
    copies = (out.benchmarks, out.probe_dir, out.checkpoints, out.cache)
    for source, target in zip(trained, copies, strict=True):
        shutil.copytree(source, target)
    build(str(config), out.root, seed=0)
    one, four = (pd.read_parquet(layout.items) for layout in (out, zoo))
    pd.testing.assert_frame_equal(
        one[["checkpoint", "item", "correct"]], four[["checkpoint", "item", "correct"]]
    )
    config.write_text(yaml.safe_dump(raw | {"answer_tokens": 0}))
    with pytest.raises(HeadcastError, match="answer_tokens"):
        load_config(str(config))


def test_building_into_a_folder_of_another_seed_is_refused(smoke_zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(smoke_zoo, copy)
    with pytest.raises(HeadcastError, match="another --out"):
        build("smoke", copy, seed=1)


def test_zoo_command_line_builds_and_prints_the_table(smoke_zoo, capsys):
    parser = build_parser()
    args = parser.parse_args(["zoo", "build", "--preset", "smoke", "--out", str(smoke_zoo)])
    args.func(args)
    args = parser.parse_args(["zoo", "table", str(smoke_zoo)])
    args.func(args)
    table = capsys.readouterr().out
    assert "| checkpoint |" in table and "*chance*" in table
    assert markdown_table(ZooLayout(smoke_zoo).scores).count("\n") == len(load_config("smoke").runs) + 3
