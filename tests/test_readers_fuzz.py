"""The file readers at headcast's boundary: every bad input ends in one clean line, never a traceback.

Classes of bad input are tested one by one, then random bytes and random JSON are fed to the probe,
score and config readers, which may only return a correct result or raise a one-line `HeadcastError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from headcast.errors import HeadcastError
from headcast.extract.loading import read_config
from headcast.extract.probes import read_probes
from headcast.predictor.scores import read_items, read_scores

# The same examples on every run, so CI is repeatable; HEADCAST_FUZZ=N explores N fresh examples per test.
EXPLORE = int(os.environ.get("HEADCAST_FUZZ", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 150,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
PROBE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON | st.just("p1"),
        "image": JSON | st.just("image.png"),
        "question": JSON | st.just("how many ?"),
        "answer": JSON | st.just("2"),
        "box": JSON | st.lists(JSON, min_size=4, max_size=4) | st.just([0, 0, 4, 4]),
        "task": JSON | st.just("count"),
    },
)


def clean_or_correct(read, path: Path):
    """`read(path)`, or None after a one-line HeadcastError; any other exception fails the test."""
    try:
        return read(path)
    except HeadcastError as err:
        assert "\n" not in str(err) and str(err)
        return None


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "image.png")
    return tmp_path


def probe_error(folder: Path, line: str | bytes) -> str:
    path = folder / "probes.jsonl"
    path.write_bytes(line if isinstance(line, bytes) else line.encode())
    with pytest.raises(HeadcastError) as err:
        read_probes(path)
    assert "\n" not in str(err.value)
    return str(err.value)


GOOD = {"id": "p1", "image": "image.png", "question": "how many ?", "answer": "2", "box": [0, 0, 4, 4]}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"question": 42}, "field 'question' is 42 (question must be a non-empty string)"),
        ({"question": ""}, "field 'question' is \"\""),
        ({"id": None}, "field 'id' is null (id must be a string or an integer)"),
        ({"id": 1.5}, "field 'id' is 1.5"),
        ({"box": [True, 0, 10, 10]}, "field 'box' is [true, 0, 10, 10] (box must be [x0, y0, x1, y1]"),
        ({"box": [0, 0, "4", 4]}, "field 'box'"),
        ({"box": [0, 0, 4]}, "field 'box'"),
        ({"answer": ["2"]}, "field 'answer' is [\"2\"] (answer must be a string or an integer)"),
        ({"answer": False}, "field 'answer' is false"),
        ({"task": 3}, "field 'task' is 3"),
        ({"image": None}, "field 'image' is null"),
        ({"question": "<image>\nhow many ?"}, "contains the image placeholder '<image>'"),
    ],
)
def test_a_probe_field_of_the_wrong_type_is_refused_not_stringified(folder, change, problem):
    assert problem in probe_error(folder, json.dumps(GOOD | change))


def test_probe_files_that_are_not_text_or_nest_too_deep_are_refused(folder):
    assert "is not UTF-8 text" in probe_error(folder, b"\xff\xfe{}\n")
    assert "nested too deeply" in probe_error(folder, "[" * 100_000 + "]" * 100_000)
    assert "missing (every line needs id, image and question)" in probe_error(folder, json.dumps({"id": "a"}))


def test_a_decompression_bomb_is_refused_before_it_is_decoded(folder):
    Image.new("1", (30_000, 30_000)).save(folder / "bomb.png")  # 1-bit, so small on disk
    assert "refused as a decompression bomb" in probe_error(folder, json.dumps(GOOD | {"image": "bomb.png"}))


def test_integer_ids_and_answers_are_taken_as_text(folder):
    path = folder / "probes.jsonl"
    path.write_text(json.dumps(GOOD | {"id": 7, "answer": 3}))
    (probe,) = read_probes(path)
    assert (probe.id, probe.answer, probe.box) == ("7", "3", (0.0, 0.0, 4.0, 4.0))


@FUZZ
@given(fields=PROBE_FIELDS)
def test_random_probe_lines_give_a_valid_probe_or_a_clean_error(folder, fields):
    path = folder / "probes.jsonl"
    path.write_text(json.dumps(fields))
    probes = clean_or_correct(read_probes, path)
    if probes is not None:
        (probe,) = probes
        assert isinstance(probe.id, str) and isinstance(probe.question, str) and probe.question
        assert probe.answer is None or isinstance(probe.answer, str)
        assert probe.box is None or all(isinstance(v, float) for v in probe.box)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_never_crash_the_probe_score_item_or_config_readers(folder, data):
    for name, read in (
        ("probes.jsonl", read_probes),
        ("scores.csv", read_scores),
        ("items.csv", read_items),
        ("items.parquet", read_items),
    ):
        (folder / name).write_bytes(data)
        clean_or_correct(read, folder / name)
    checkpoint = folder / "checkpoint"
    checkpoint.mkdir(exist_ok=True)
    (checkpoint / "config.json").write_bytes(data)
    clean_or_correct(read_config, checkpoint)


@FUZZ
@given(document=JSON)
def test_random_json_never_crashes_the_config_or_lmms_eval_readers(folder, document):
    checkpoint = folder / "checkpoint"
    checkpoint.mkdir(exist_ok=True)
    (checkpoint / "config.json").write_text(json.dumps(document))
    clean_or_correct(read_config, checkpoint)
    results = folder / "results" / "run"
    results.mkdir(parents=True, exist_ok=True)
    (results / "20260101_results.json").write_text(json.dumps({"results": document, "config": document}))
    scores = clean_or_correct(read_scores, folder / "results")
    if scores is not None:
        assert scores["score"].between(0, 100).all()


@FUZZ
@given(rows=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6), JSON), min_size=1, max_size=6))
def test_random_score_tables_give_percentages_or_a_clean_error(folder, rows):
    path = folder / "scores.csv"
    path.write_text(
        "checkpoint,benchmark,score\n"
        + "".join(f"{json.dumps(c)},{json.dumps(b)},{json.dumps(s)}\n" for c, b, s in rows)
    )
    scores = clean_or_correct(read_scores, path)
    if scores is not None:
        assert scores["score"].between(0, 100).all()
        assert not scores.duplicated(["checkpoint", "benchmark"]).any()


def test_a_name_with_a_line_break_cannot_split_an_error_over_lines():
    assert str(HeadcastError("task 'a\nb' is bad;\r\nfix it")) == "task 'a b' is bad; fix it"
