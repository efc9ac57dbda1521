"""Bad command-line input, typed as a user would: one line `headcast: error: <problem>; <fix>`, exit 2,
nothing written; or, for what headcast can work around (a damaged cache), one warning and the right result.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.extract.probes import Probe
from headcast.tables import read_features, write_features
from tests.predictor_data import synthetic_tables

LONG = "x" * 300  # longer than the 255 bytes a file name may have
NO_PID = 4_194_305  # above Linux's largest pid_max (2**22): no process has this pid
LMMS_EVAL = Path(__file__).parent / "data" / "lmms-eval" / "results-with-samples"
COLUMN = "all.visual_mass.mean"  # a head feature every model is fitted on


def fails(capsys, argv: list[str], root: Path) -> str:
    """`main(argv)` exits 2 with one `headcast: error:` line, last on stderr, writing nothing under `root`."""
    before = set(root.rglob("*"))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("headcast")] == err[-1:], err
    assert err[-1].startswith("headcast: error: ") and ";" in err[-1]
    assert set(root.rglob("*")) == before
    return err[-1]


def refused_while_parsing(capsys, argv: list[str]) -> str:
    """argparse's refusal: exit 2, usage, then the error as the last line."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def extract_args(checkpoint: Path, probes: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", str(checkpoint), "--probes", str(probes), "--out", str(out), "--quiet", *extra]


# 1, 2: numbers argparse refuses


@pytest.mark.parametrize("command", ["extract", "evaluate", "ablate"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "0 is not positive; give a whole number of at least 1"),
        ("-3", "-3 is not positive; give a whole number of at least 1"),
        ("eight", "'eight' is not a whole number; give one of at least 1"),
    ],
)
def test_a_batch_size_below_one_is_refused_while_parsing(capsys, command, value, reason):
    required = {
        "extract": ["extract", "ckpt", "--probes", "probes.jsonl", "--out", "features.parquet"],
        "evaluate": ["evaluate", "ckpt", "--benchmarks", "suite"],
        "ablate": ["ablate", "ckpt", "--benchmark", "bench.jsonl", "--heads", "0:0"],
    }[command]
    line = refused_while_parsing(capsys, [*required, "--batch-size", value])
    assert line == f"headcast {command}: error: argument --batch-size: {reason}"


@pytest.mark.parametrize("option", ["--visual-mass-threshold", "--concentration-threshold"])
@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.5"])
def test_a_threshold_that_is_not_a_fraction_is_refused_while_parsing(capsys, option, value):
    argv = ["extract", "ckpt", "--probes", "probes.jsonl", "--out", "features.parquet", option, value]
    line = refused_while_parsing(capsys, argv)
    assert line == (
        f"headcast extract: error: argument {option}: {value} is not in [0, 1]; "
        "attention shares are fractions, give one from 0 to 1"
    )


# 3: outputs that cannot be written, and paths that cannot exist

OUTPUT_KINDS = ["a folder", "under a file", "a name too long", "in a read-only folder"]


def bad_output(tmp_path: Path, kind: str, name: str = "out.parquet") -> tuple[Path, str]:
    """An output path of `kind` and the reason headcast must give for it."""
    if kind == "a folder":
        (tmp_path / "taken").mkdir()
        return tmp_path / "taken", "it is a folder"
    if kind == "under a file":
        (tmp_path / "plain").write_text("")
        return tmp_path / "plain" / name, f"{tmp_path / 'plain'} is a file, not a folder"
    if kind == "a name too long":
        return tmp_path / f"{LONG}{name}", "File name too long"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):
        pytest.skip("this user writes into read-only folders (root)")
    return locked / name, "Permission denied"


@pytest.mark.parametrize("flag", ["--out", "--per-head", "--answers"])
@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_an_extract_output_that_cannot_be_written_is_refused_before_any_work(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, flag, kind
):
    bad, reason = bad_output(tmp_path, kind)
    paths = {"--out": tmp_path / "out" / "features.parquet"} | {flag: bad}
    argv = extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, paths.pop("--out"))
    argv += [part for flag_and_path in paths.items() for part in map(str, flag_and_path)]
    message = fails(capsys, argv, tmp_path)
    assert message == f"headcast: error: cannot write {bad} ({reason}); choose another output path"


def test_an_output_that_is_also_another_path_of_the_command_is_refused(
    capsys, tmp_path, tiny_checkpoint, tiny_probes
):
    checkpoint, out = tiny_checkpoint("llava-1.5-7b"), tmp_path / "features.parquet"
    message = fails(capsys, [*extract_args(checkpoint, tiny_probes, out), "--answers", str(out)], tmp_path)
    assert message.endswith(f"--answers {out} is also --out; give each output a path of its own")
    message = fails(capsys, extract_args(checkpoint, tiny_probes, tiny_probes), tmp_path)  # the input, lost
    assert message.endswith(f"--out {tiny_probes} is also --probes; give each output a path of its own")


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_fit_refuses_an_anchor_file_it_could_not_write_before_fitting(capsys, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)  # an MLflow store made by mistake would show as a new file
    bad, reason = bad_output(tmp_path, kind, "anchors.jsonl")
    inputs = ["--features", "features.parquet", "--scores", "scores.csv", "--items", "items"]
    message = fails(capsys, ["fit", *inputs, "--suite", "suite", "--anchors-out", str(bad)], tmp_path)
    assert message == f"headcast: error: cannot write {bad} ({reason}); choose another output path"


@pytest.mark.parametrize("kind", ["a file", *OUTPUT_KINDS[1:]])
def test_probes_build_refuses_an_out_folder_it_could_not_write(capsys, tmp_path, tiny_probes, kind):
    dataset = tmp_path / "dataset"
    shutil.copytree(tiny_probes.parent / "images", dataset / "images")
    records = [{"file_name": f"images/{i}.png", "question": "what colour ?"} for i in range(2)]
    (dataset / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if kind == "a file":
        (tmp_path / "plain").write_text("")
        bad, expected = tmp_path / "plain", f"--out {tmp_path / 'plain'} is a file; name a folder"
    else:
        bad, reason = bad_output(tmp_path, kind, "probes")
        expected = f"cannot write {bad} ({reason}); choose another output path"
    columns = ["--image-column", "image", "--question-column", "question", "--n", "2"]
    argv = ["probes", "build", "--dataset", str(dataset), *columns, "--out", str(bad), "--quiet"]
    assert fails(capsys, argv, tmp_path) == f"headcast: error: {expected}"


def test_evaluate_refuses_an_output_it_could_not_write_before_scoring(
    capsys, tmp_path, tiny_checkpoint, tiny_probes
):
    (tmp_path / "taken").mkdir()
    argv = ["evaluate", str(tiny_checkpoint("llava-1.5-7b")), "--benchmarks", str(tiny_probes)]
    message = fails(capsys, [*argv, "--out", str(tmp_path / "taken")], tmp_path)
    assert f"cannot write {tmp_path / 'taken'} (it is a folder)" in message


@pytest.mark.parametrize("name", ["missing", LONG])
def test_a_checkpoint_folder_that_does_not_exist_is_named(capsys, tmp_path, tiny_probes, name):
    message = fails(capsys, extract_args(tmp_path / name, tiny_probes, tmp_path / "f.parquet"), tmp_path)
    assert message.startswith(f"headcast: error: checkpoint folder {tmp_path / name} does not exist; ")


def test_a_checkpoint_outside_relative_to_is_named(capsys, tmp_path, tiny_checkpoint, tiny_probes):
    argv = extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, tmp_path / "f.parquet")
    message = fails(capsys, [*argv, "--relative-to", str(tmp_path)], tmp_path)
    assert f"is not inside --relative-to {tmp_path}; pass the folder that holds them all" in message


# 4: config.json


def _text_config(**fields) -> Callable[[dict], bytes]:
    def damage(config: dict) -> bytes:
        return json.dumps(config | {"text_config": config["text_config"] | fields}).encode()

    return damage


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda config: bytes(range(256)), "config.json is not UTF-8 text, so not a config.json"),
        (lambda config: b"[1, 2]", "config.json holds a JSON list, not a config object"),
        (
            _text_config(num_attention_heads="8"),
            "text_config.num_attention_heads is '8'; it must be a positive",
        ),
        (_text_config(num_attention_heads=0), "text_config.num_attention_heads is 0; it must be a positive"),
        (_text_config(num_hidden_layers=2.5), "text_config.num_hidden_layers is 2.5; it must be a positive"),
        (
            lambda config: json.dumps(config | {"vision_config": "clip"}).encode(),
            "(Field 'vision_config' with value 'clip' doesn't match any type); fix the field or re-save",
        ),
    ],
    ids=["binary", "a list", "heads as text", "zero heads", "fractional layers", "vision config as text"],
)
def test_a_config_json_that_is_not_a_model_config_is_one_line(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, damage, fragment
):
    config = json.loads((tiny_checkpoint("llava-1.5-7b") / "config.json").read_text())
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_bytes(damage(config))
    assert fragment in fails(capsys, extract_args(folder, tiny_probes, tmp_path / "f.parquet"), tmp_path)


# 5: the cache


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, tiny_checkpoint, tiny_probes) -> tuple[pd.DataFrame, Path]:
    """The features of an extraction into an empty cache, and that cache (one entry)."""
    root = tmp_path_factory.mktemp("clean-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADCAST_CACHE", str(root / "cache"))
        assert main(extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, root / "f.parquet")) == 0
    return pd.read_parquet(root / "f.parquet"), root / "cache"


def run_warned(caplog, monkeypatch, cache: Path, argv: list[str]) -> str:
    """Run `argv` with `cache` as HEADCAST_CACHE: it succeeds with exactly one one-line warning."""
    monkeypatch.setenv("HEADCAST_CACHE", str(cache))
    with caplog.at_level(logging.WARNING, logger="headcast"):
        assert main(argv) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "headcast"]
    assert warning.startswith("headcast: warning: ") and "\n" not in warning
    return warning


@pytest.mark.parametrize("damage", ["truncated", "empty", "a folder"])
def test_a_damaged_cache_entry_is_recomputed_with_one_warning(
    caplog, monkeypatch, tmp_path, clean_run, tiny_checkpoint, tiny_probes, damage
):
    features, clean_cache = clean_run
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    (entry,) = (cache / "head-metrics").glob("*.npz")
    good = entry.read_bytes()
    entry.unlink()
    if damage == "a folder":
        entry.mkdir()
        (entry / "stray").write_text("")
    else:
        entry.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"")
    out = tmp_path / "f.parquet"
    warning = run_warned(
        caplog, monkeypatch, cache, extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, out)
    )
    assert warning.startswith(f"headcast: warning: cache entry {entry} is damaged (")
    assert warning.endswith("); recomputing it")
    pd.testing.assert_frame_equal(pd.read_parquet(out), features)
    with np.load(entry) as stored:  # the entry was written again, whole
        assert stored["samples"].shape[0] == 6


def test_a_cache_path_that_is_a_file_costs_the_cache_not_the_run(
    caplog, monkeypatch, tmp_path, clean_run, tiny_checkpoint, tiny_probes
):
    features, _ = clean_run
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    out = tmp_path / "f.parquet"
    warning = run_warned(
        caplog, monkeypatch, blocker, extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, out)
    )
    assert warning == (
        f"headcast: warning: cannot write to the cache {blocker / 'head-metrics'} ({blocker} is a file, "
        "not a folder); results are not cached (set HEADCAST_CACHE to a writable folder)"
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out), features)


def test_the_next_write_removes_a_killed_writers_leftover_but_not_a_running_ones(
    tmp_path, tiny_checkpoint, tiny_probes
):
    out = tmp_path / "features.parquet"
    killed = tmp_path / f".{out.name}.{NO_PID}.k1ll3d00.tmp.parquet"
    running = tmp_path / f".{out.name}.{os.getppid()}.runn1ng0.tmp.parquet"  # pytest's parent: alive
    for leftover in (killed, running):
        leftover.write_bytes(b"half a file")
    assert main(extract_args(tiny_checkpoint("llava-1.5-7b"), tiny_probes, out)) == 0
    assert not killed.exists() and running.exists()
    assert set(tmp_path.iterdir()) == {out, running}


# 6: feature tables


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A working folder with a feature table, its scores and an MLflow champion (ridge) fitted on them."""
    root = tmp_path_factory.mktemp("store")
    features, scores = synthetic_tables(n_runs=3)
    write_features(features, {c: {"n_probes": 32} for c in features["checkpoint"]}, root / "features.parquet")
    scores.to_csv(root / "scores.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        fit = ["fit", "--features", "features.parquet", "--scores", "scores.csv", "--estimators", "ridge"]
        assert main(fit) == 0
    return root


def _first_value(value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def damage(table: pd.DataFrame) -> pd.DataFrame:
        column = table[COLUMN].astype(object if isinstance(value, str) else float)
        if isinstance(value, str):
            column = column.map(str)
        column.iloc[0] = value
        return table.assign(**{COLUMN: column})

    return damage


TABLE_DAMAGE = {
    "inf": (
        _first_value(np.inf),
        f"feature column {COLUMN!r} is inf for checkpoint 'run0/10'; features are finite",
    ),
    "-inf": (_first_value(-np.inf), f"feature column {COLUMN!r} is -inf for checkpoint 'run0/10'"),
    "text": (_first_value("abc"), f"feature column {COLUMN!r} holds str values such as 'abc', not numbers"),
    "numbers as text": (_first_value("0.5"), f"feature column {COLUMN!r} holds str values such as"),
    "a checkpoint twice": (
        lambda table: pd.concat([table, table.iloc[[0]]], ignore_index=True),
        "checkpoint 'run0/10' has 2 rows; keep one row per checkpoint",
    ),
    "a row without a checkpoint": (
        lambda table: table.assign(checkpoint=[None, *table["checkpoint"][1:]]),
        "row 0 has no checkpoint name; every row needs one",
    ),
}


@pytest.mark.parametrize("command", ["fit", "predict"])
@pytest.mark.parametrize("damage", list(TABLE_DAMAGE))
def test_a_feature_table_with_bad_rows_is_refused_at_read(
    capsys, monkeypatch, tmp_path, store, command, damage
):
    change, fragment = TABLE_DAMAGE[damage]
    table, settings = read_features(store / "features.parquet")
    bad = tmp_path / "features.parquet"
    write_features(change(table), settings, bad)
    monkeypatch.chdir(store if command == "predict" else tmp_path)
    argv = ["predict", "--features", str(bad)]
    if command == "fit":
        argv = ["fit", "--features", str(bad), "--scores", str(store / "scores.csv"), "--estimators", "ridge"]
    message = fails(capsys, argv, tmp_path)
    assert message.startswith(f"headcast: error: {bad}: {fragment}")
    assert "'headcast extract'" in message


def test_a_table_missing_features_the_model_needs_names_them(capsys, monkeypatch, tmp_path, store):
    table, settings = read_features(store / "features.parquet")
    bad = tmp_path / "features.parquet"
    write_features(table.drop(columns=[COLUMN, "depth0.concentration.q90"]), settings, bad)
    monkeypatch.chdir(store)
    message = fails(capsys, ["predict", "--features", str(bad)], tmp_path)
    assert message.startswith("headcast: error: 2 feature column(s) the model needs are missing: ")
    assert f"{COLUMN!r}" in message and "'depth0.concentration.q90'" in message
    assert message.endswith("; pass full feature rows from 'headcast extract' on the model's probe set")


@pytest.mark.parametrize(
    ("flag", "content", "fragment"),
    [
        ("--features", b"checkpoint,schema_version\n", "is not a readable Parquet file (ArrowInvalid: "),
        ("--answers", b"PAR1", "is not a readable Parquet file ("),
        ("--per-head", None, "lacks column(s) layer, head, visual_mass"),
    ],
)
def test_a_table_that_is_not_what_its_flag_needs_is_one_line(
    capsys, monkeypatch, tmp_path, store, flag, content, fragment
):
    bad = tmp_path / "table.parquet"
    if content is None:
        pd.DataFrame({"checkpoint": ["run0/10"]}).to_parquet(bad)
    else:
        bad.write_bytes(content)
    features, scores = str(store / "features.parquet"), str(store / "scores.csv")
    argv = {
        "--features": ["predict", "--features", str(bad)],
        "--answers": ["predict", "--features", features, "--answers", str(bad)],
        "--per-head": ["fit", "--features", features, "--scores", scores, "--per-head", str(bad)],
    }[flag]
    monkeypatch.chdir(store if argv[0] == "predict" else tmp_path)
    assert fragment in fails(capsys, argv, tmp_path)


# 7: an empty answer


@pytest.mark.parametrize("query", ["answer-mean", "last-prompt"])
@pytest.mark.parametrize("answer", ["", "  "])
def test_an_empty_answer_names_its_probe(capsys, tmp_path, tiny_checkpoint, tiny_probes, query, answer):
    lines = tiny_probes.read_text().splitlines()
    item = json.loads(lines[1]) | {"answer": answer}
    item["image"] = str(tiny_probes.parent / item["image"])
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps(item) + "\n")
    argv = extract_args(tiny_checkpoint("llava-1.5-7b"), probes, tmp_path / "f.parquet", "--query", query)
    message = fails(capsys, argv, tmp_path)
    assert (
        f"{probes}:1: field 'answer' is {json.dumps(answer)} (probe 'tiny-1' has an empty answer" in message
    )


def test_an_answer_that_covers_no_token_is_refused_where_probes_skip_the_reader(tiny_checkpoint, tiny_probes):
    """Probes made in code (a training callback) do not pass the reader; answer-mean still refuses them."""
    from headcast.extract.inputs import encode_batch
    from headcast.extract.loading import load_checkpoint

    item = json.loads(tiny_probes.read_text().splitlines()[0])
    probe = Probe(id="made", image=tiny_probes.parent / item["image"], question=item["question"], answer="")
    with pytest.raises(HeadcastError, match="the answer '' of probe 'made' covers no token"):
        encode_batch(load_checkpoint(tiny_checkpoint("llava-1.5-7b"), "cpu"), [probe], "answer-mean")


# 8: lmms-eval folders


def _report(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (file,) = folder.rglob("*_results.json")
        report = json.loads(file.read_text())
        change(report)
        file.write_text(json.dumps(report))

    return damage


def _spatial_log(text: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (log,) = folder.rglob("*_samples_zoo_spatial.jsonl")
        log.write_text(text, encoding=encoding)

    return damage


def _utf16(folder: Path) -> None:
    (file,) = folder.rglob("*_results.json")
    file.write_text(file.read_text(), encoding="utf-16")


@pytest.mark.parametrize(
    ("flag", "damage", "fragment"),
    [
        ("--scores", _report(lambda r: r.update(results=[1])), "holds no lmms-eval results.json with a 'res"),
        ("--scores", _utf16, "_results.json is not UTF-8 text; lmms-eval writes UTF-8"),
        (
            "--scores",
            lambda folder: next(folder.rglob("*_results.json")).write_text("[" * 100_000),
            "_results.json is nested too deeply to be an lmms-eval report",
        ),
        (
            "--scores",
            _report(lambda r: r["n-samples"]["zoo_spatial"].update(effective="many")),
            "(n-samples): n 'many' is not a number of items; n is a whole number of at least 1",
        ),
        ("--items", _utf16, "_results.json is not UTF-8 text"),
        (
            "--items",
            _report(lambda r: r["results"].update(zoo_spatial=5)),
            "task 'zoo_spatial' reports no numeric metric to take as correctness",
        ),
        (
            "--items",
            _spatial_log("[1]\n"),
            "zoo_spatial.jsonl:1: a sample needs 'doc_id' and the task's metric",
        ),
        ("--items", _spatial_log('{"doc_id": 0}\n', "utf-16"), "zoo_spatial.jsonl is not UTF-8 text"),
        ("--items", _spatial_log("[" * 100_000 + "\n"), "zoo_spatial.jsonl:1 is nested too deeply"),
    ],
    ids=[
        "results a list",
        "report in UTF-16",
        "report nested too deep",
        "n-samples as text",
        "items: report in UTF-16",
        "items: task results a number",
        "sample a list",
        "samples in UTF-16",
        "sample nested too deep",
    ],
)
def test_an_lmms_eval_folder_of_the_wrong_shape_or_encoding_is_one_line(
    capsys, monkeypatch, tmp_path, store, flag, damage, fragment
):
    folder = tmp_path / "lmms-eval"
    shutil.copytree(LMMS_EVAL, folder)
    damage(folder)
    monkeypatch.chdir(tmp_path)
    scores = folder if flag == "--scores" else store / "scores.csv"
    argv = [
        "fit",
        "--features",
        str(store / "features.parquet"),
        "--scores",
        str(scores),
        "--estimators",
        "ridge",
    ]
    if flag == "--items":
        argv += ["--items", str(folder)]
    assert fragment in fails(capsys, argv, tmp_path)


@pytest.mark.parametrize("n", ["many", "-3", "2.5", "inf"])
def test_a_score_csv_whose_item_count_is_not_a_count_is_refused(capsys, monkeypatch, tmp_path, store, n):
    scores = pd.read_csv(store / "scores.csv").astype({"n": object})
    scores.loc[0, "n"] = n
    scores.to_csv(tmp_path / "scores.csv", index=False)
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--features", str(store / "features.parquet"), "--scores", "scores.csv"]
    message = fails(capsys, [*argv, "--estimators", "ridge"], tmp_path)
    assert message.startswith("headcast: error: scores.csv:2: n ") and n in message
    assert "is not a number of items; n is a whole number of at least 1" in message
