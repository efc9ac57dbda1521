"""`headcast probes build`: probe sets from save_to_disk, Parquet and image-folder datasets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.extract.probe_sets import allocate, normalise_answer
from headcast.extract.probes import read_probes

TASKS = ["count"] * 12 + ["colour"] * 6 + ["where"] * 2  # 20 rows, stratified 10 -> 6 / 3 / 1


def make_rows() -> dict[str, list]:
    rng = np.random.default_rng(7)
    n = len(TASKS)
    return {
        "pixels": [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(n)],
        "id": [f"q/{i:02d}" for i in range(n)],  # a slash: file names must not follow ids blindly
        "question": [f"what is in picture {i}?" for i in range(n)],
        "answer": [f"thing {i}" for i in range(n)],
        "answers": [["cat", "dog", "dog"] if i % 2 else ["tree"] for i in range(n)],
        "count": list(range(n)),
        "box": [[1, 2, 9, 10] if i % 3 else None for i in range(n)],
        "task": TASKS,
    }


@pytest.fixture(scope="module")
def rows() -> dict[str, list]:
    return make_rows()


def write_folder(root: Path, rows: dict[str, list], metadata: list[dict] | None = None) -> Path:
    """An HF imagefolder: PNGs plus metadata.jsonl (`metadata` overrides the records)."""
    from PIL import Image

    (root / "imgs").mkdir(parents=True)
    records = []
    for i, pixels in enumerate(rows["pixels"]):
        Image.fromarray(pixels).save(root / "imgs" / f"{i}.png")
        records.append(
            {"file_name": f"imgs/{i}.png"}
            | {key: rows[key][i] for key in ("id", "question", "answer", "box", "task")}
        )
    records = metadata if metadata is not None else records
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, rows) -> dict[str, Path]:
    from PIL import Image

    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("sources")
    columns = {key: value for key, value in rows.items() if key != "pixels"}
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "answers": datasets.List(datasets.Value("string")),
            "count": datasets.Value("int64"),
            "box": datasets.List(datasets.Value("float32")),
            "task": datasets.Value("string"),
        }
    )
    images = [Image.fromarray(p) for p in rows["pixels"]]
    dataset = datasets.Dataset.from_dict({"image": images} | columns, features=features)
    dataset.save_to_disk(str(root / "disk"))
    (root / "parquet").mkdir()
    dataset.to_parquet(str(root / "parquet" / "train.parquet"))
    folder = write_folder(root / "folder", rows)
    paths = pd.DataFrame({"image": [f"imgs/{i}.png" for i in range(len(TASKS))]} | columns)
    paths.to_parquet(folder / "paths.parquet")  # plain path strings, relative to the file
    return {
        "disk": root / "disk",
        "parquet": root / "parquet",
        "paths": folder / "paths.parquet",
        "folder": folder,
    }


def build(source: Path, out: Path, *extra: str, n: int = 10, seed: int = 0) -> int:
    columns = ["--image-column", "image", "--question-column", "question"]
    sampling = ["--n", str(n), "--seed", str(seed)]
    return main(
        [
            "probes",
            "build",
            "--dataset",
            str(source),
            *columns,
            *sampling,
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


@pytest.mark.parametrize("kind", ["disk", "parquet", "paths", "folder"])
def test_build_round_trips(kind, sources, rows, tmp_path, capsys):
    source = sources[kind]
    extra = ["--answer-column", "answer", "--box-column", "box", "--task-column", "task"]
    if kind != "parquet":  # the Parquet case names items by row
        extra += ["--id-column", "id"]
    assert build(source, tmp_path / "probes", *extra) == 0
    assert "wrote 10 probe(s) (colour: 3, count: 6, where: 1)" in capsys.readouterr().out

    probes = read_probes(tmp_path / "probes" / "probes.jsonl")
    assert Counter(p.task for p in probes) == {"count": 6, "colour": 3, "where": 1}
    for probe in probes:
        row = int(probe.id.rsplit("-", 1)[1]) if kind == "parquet" else rows["id"].index(probe.id)
        if kind == "parquet":
            assert probe.id == f"parquet-{row}"
        assert probe.question == rows["question"][row]
        assert probe.answer == rows["answer"][row]
        box = rows["box"][row]
        assert probe.box == (None if box is None else tuple(float(v) for v in box))
        assert probe.task == rows["task"][row]
        assert probe.image.parent == (tmp_path / "probes" / "images").resolve()
        np.testing.assert_array_equal(np.asarray(probe.load_image()), rows["pixels"][row])


def test_same_seed_same_set_other_seed_other_set(sources, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert build(sources["disk"], tmp_path / name, "--task-column", "task", seed=seed) == 0
    text = {name: (tmp_path / name / "probes.jsonl").read_text() for name in "abc"}
    assert text["a"] == text["b"] != text["c"]
    for image in (tmp_path / "a" / "images").iterdir():
        assert image.read_bytes() == (tmp_path / "b" / "images" / image.name).read_bytes()


def test_the_source_folder_is_left_as_it_was(sources, tmp_path):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in sources["disk"].iterdir())
    assert build(sources["disk"], tmp_path / "out") == 0
    assert sorted((p.name, p.stat().st_mtime_ns) for p in sources["disk"].iterdir()) == before


def test_answer_lists_and_numbers(sources, rows, tmp_path):
    assert build(sources["disk"], tmp_path / "lists", "--answer-column", "answers", "--id-column", "id") == 0
    assert build(sources["disk"], tmp_path / "ints", "--answer-column", "count", "--id-column", "id") == 0
    for probe in read_probes(tmp_path / "lists" / "probes.jsonl"):
        assert probe.answer == ("dog" if rows["id"].index(probe.id) % 2 else "tree")
    for probe in read_probes(tmp_path / "ints" / "probes.jsonl"):
        assert probe.answer == str(rows["id"].index(probe.id))


def test_answer_rule():
    assert normalise_answer(["b", "a", "a"], "x") == "a"
    assert normalise_answer(["b", "a"], "x") == "b"  # a tie: the first seen
    assert normalise_answer([{"answer": "yes"}, {"answer": "no"}, {"answer": "yes"}], "x") == "yes"
    assert normalise_answer(2, "x") == "2"
    assert normalise_answer([], "x") is None
    assert normalise_answer(float("nan"), "x") is None
    with pytest.raises(HeadcastError, match="pick a column of answer strings"):
        normalise_answer({"text": "a"}, "x")


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([12, 6, 2], 10, [6, 3, 1]),
        ([5, 3, 1], 3, [1, 1, 1]),  # every task once, though rounding alone gives [2, 1, 0]
        ([98, 1, 1], 10, [8, 1, 1]),
        ([3, 3, 3], 2, [1, 1, 0]),  # fewer items than tasks: the earlier tasks on ties
        ([4, 4], 8, [4, 4]),
    ],
)
def test_allocation(sizes, n, expected):
    assert allocate(sizes, n) == expected


def test_a_dataset_dict_needs_its_split(sources, tmp_path, capsys):
    dataset = datasets.load_from_disk(str(sources["disk"]))
    datasets.DatasetDict({"train": dataset, "test": dataset.select(range(4))}).save_to_disk(
        str(tmp_path / "dict")
    )
    message = run_failing(capsys, tmp_path, tmp_path / "dict")
    assert "splits test, train; pass --split" in message
    assert build(tmp_path / "dict", tmp_path / "outs" / "probes", "--split", "test", n=4) == 0
    assert len(read_probes(tmp_path / "outs" / "probes" / "probes.jsonl")) == 4


def run_failing(capsys, tmp_path: Path, source: Path, *extra: str, n: int = 10) -> str:
    """Exit 2, one line of stderr, and nothing left in the output's parent folder."""
    outs = tmp_path / "outs"
    outs.mkdir(exist_ok=True)
    before = sorted(outs.iterdir())
    capsys.readouterr()
    assert build(source, outs / "probes", *extra, n=n) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("headcast: error: ")
    assert sorted(outs.iterdir()) == before
    return err[0]


def test_missing_path(capsys, tmp_path):
    assert "does not exist" in run_failing(capsys, tmp_path, tmp_path / "nope")


def test_unknown_format(capsys, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    assert "cannot tell the format" in run_failing(capsys, tmp_path, tmp_path / "notes")


def test_unknown_column_lists_the_columns(capsys, tmp_path, sources):
    message = run_failing(capsys, tmp_path, sources["parquet"], "--answer-column", "gold")
    assert "'gold' is not in" in message and "available: image, id, question, answer" in message
    assert "--answer-column" in message


def test_n_larger_than_the_dataset(capsys, tmp_path, sources):
    assert "has 20 rows; pass --n from 1 to 20" in run_failing(capsys, tmp_path, sources["folder"], n=21)


def test_undecodable_image(capsys, tmp_path, rows):
    folder = write_folder(tmp_path / "folder", rows)
    (folder / "imgs" / "5.png").write_bytes(b"not a png")
    assert "row 5: cannot decode" in run_failing(capsys, tmp_path, folder, n=20)


def test_missing_image_file(capsys, tmp_path, rows):
    folder = write_folder(tmp_path / "folder", rows)
    (folder / "imgs" / "5.png").unlink()
    assert "row 5: image file" in run_failing(capsys, tmp_path, folder, n=20)


@pytest.mark.parametrize(
    ("box", "expected"),
    [([1, 2, 3], "box must be [x0, y0, x1, y1]"), ([1, 2, 30, 10], "is not inside the 16x12 image")],
)
def test_bad_boxes(capsys, tmp_path, rows, box, expected):
    records = [{"file_name": f"imgs/{i}.png", "question": "q?", "box": box} for i in range(len(TASKS))]
    folder = write_folder(tmp_path / "folder", rows, records)
    assert expected in run_failing(capsys, tmp_path, folder, "--box-column", "box", n=3)


def test_question_with_the_image_token(capsys, tmp_path, rows):
    records = [{"file_name": f"imgs/{i}.png", "question": "<image>\nwhat is it?"} for i in range(len(TASKS))]
    folder = write_folder(tmp_path / "folder", rows, records)
    assert "contains the image placeholder <image>" in run_failing(capsys, tmp_path, folder, n=3)


def test_repeated_ids(capsys, tmp_path, rows):
    records = [{"file_name": f"imgs/{i}.png", "question": "q?", "id": i % 5} for i in range(len(TASKS))]
    folder = write_folder(tmp_path / "folder", rows, records)
    assert "repeats the id '0'" in run_failing(capsys, tmp_path, folder, "--id-column", "id", n=3)


def test_a_non_empty_out_needs_force(capsys, tmp_path, sources):
    out = tmp_path / "outs" / "probes"
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("keep")
    capsys.readouterr()
    assert build(sources["folder"], out) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert build(sources["folder"], out, "--force") == 0
    assert sorted(p.name for p in out.iterdir()) == ["images", "probes.jsonl"]
    assert [p.name for p in out.parent.iterdir()] == ["probes"]  # no temporary folders left


def test_csv_metadata(tmp_path, rows):
    folder = write_folder(tmp_path / "folder", rows)
    (folder / "metadata.jsonl").unlink()
    frame = pd.DataFrame(
        {"file_name": [f"imgs/{i}.png" for i in range(len(TASKS))], "question": rows["question"]}
        | {"answer": ["007"] * len(TASKS), "box": [json.dumps(b) if b else "" for b in rows["box"]]}
    )
    frame.to_csv(folder / "metadata.csv", index=False)
    out = tmp_path / "out"
    assert build(folder, out, "--answer-column", "answer", "--box-column", "box", n=20) == 0
    probes = read_probes(out / "probes.jsonl")
    assert {p.answer for p in probes} == {"007"}  # CSV cells stay text
    assert [p.box is not None for p in probes] == [b is not None for b in rows["box"]]
