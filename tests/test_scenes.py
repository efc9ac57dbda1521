"""The scene generator and the benchmark files it feeds: deterministic, correct answers, valid JSONL."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from headcast.experiments.scenes import (
    AUX_TASKS,
    BENCHMARKS,
    COLOURS,
    POPULARITY,
    SHAPES,
    TASKS,
    Scene,
    SceneObject,
    answers,
    make_items,
    make_mixture,
    vocabulary,
)
from headcast.experiments.suite import write_probes, write_suite
from headcast.extract import read_probes


def _category(question: str) -> tuple[str, str]:
    words = question.split()
    colour = next(w for w in words if w in COLOURS)
    shape = next(s for s in SHAPES if s in question.split(colour, 1)[1].split()[0])
    return colour, shape


def test_same_seed_gives_identical_items_and_pixels():
    a, b = make_items(7, "count_general", 5), make_items(7, "count_general", 5)
    assert a == b
    assert [i.scene.render(56).tobytes() for i in a] == [i.scene.render(56).tobytes() for i in b]
    assert make_items(8, "count_general", 5) != a


def test_the_vocabulary_is_the_same_in_every_process():
    """String hashing is salted per process; the tokenizer's word order (hence every token id and
    trained weight) must not depend on it, or the same seed would train different zoos."""
    orders = {
        subprocess.run(
            [sys.executable, "-c", "from headcast.experiments.scenes import vocabulary; print(vocabulary())"],
            env={**os.environ, "PYTHONHASHSEED": str(salt)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for salt in range(6)
    }
    assert len(orders) == 1


def test_general_counting_box_marks_an_object_of_the_counted_kind():
    for item in make_items(0, "count_general", 40):
        marked = item.scene.objects[item.scene.marked]
        assert item.question == "How many of these are there ?"
        assert int(item.answer) == item.scene.count(marked.category)
        assert any(o.category != marked.category for o in item.scene.objects)  # distractors to tell apart


def test_object_counting_answer_is_the_number_of_objects_of_the_named_category():
    for item in make_items(0, "count_object", 40):
        assert item.scene.marked is None
        assert int(item.answer) == item.scene.count(_category(item.question))


def test_super_counting_names_the_super_category_of_the_boxed_object():
    for item in make_items(0, "count_super", 40):
        marked = item.scene.objects[item.scene.marked]
        assert f"these {marked.super_category} things" in item.question
        assert int(item.answer) == item.scene.count(marked.category)


def test_benchmark_answers_take_turns_so_one_answer_everywhere_scores_chance():
    for task in ("count_object", "attribute", "spatial", "pope_random"):
        classes = answers(task)
        items = make_items(0, task, 10 * len(classes))
        assert [item.answer for item in items] == classes * 10


def test_pope_alternates_yes_and_no_and_no_means_absent():
    for kind in ("random", "popular", "adversarial"):
        items = make_items(0, f"pope_{kind}", 30)
        assert [i.answer for i in items] == ["yes", "no"] * 15
        for item in items:
            present = _category(item.question) in item.scene.categories()
            assert present == (item.answer == "yes")


def test_adversarial_negatives_share_a_colour_or_shape_with_a_present_object():
    for item in make_items(0, "pope_adversarial", 40)[1::2]:
        colour, shape = _category(item.question)
        assert any(colour == c or shape == s for c, s in item.scene.categories())


def test_popular_negatives_are_the_most_frequent_absent_categories():
    for item in make_items(0, "pope_popular", 40)[1::2]:
        absent = [c for c in POPULARITY if c not in item.scene.categories()]
        assert _category(item.question) in absent[:3]


def test_attribute_answer_is_the_colour_of_the_boxed_object():
    for item in make_items(0, "attribute", 30):
        assert item.answer == item.scene.objects[item.scene.marked].colour


def test_colour_of_names_a_unique_shape_and_answers_its_colour():
    for item in make_items(0, "colour_of", 30):
        shape = item.question.split()[-2]
        named = [o for o in item.scene.objects if o.shape == shape]
        assert len(named) == 1 and item.answer == named[0].colour
        assert set(item.question.split()) - {"?"} <= set(vocabulary())


def test_a_training_only_task_joins_the_mixture_when_listed():
    items = make_mixture(0, 16, tasks=(*TASKS, *AUX_TASKS), weights={"colour_of": 2})
    assert [i.task for i in items].count("colour_of") == 4


def test_spatial_answer_places_the_named_object_relative_to_the_boxed_one():
    for item in make_items(0, "spatial", 40):
        words = item.question.split()
        assert words[-3:] == ["the", "box", "?"]
        a = next(o for o in item.scene.objects if o.category == (words[3], words[4]))
        b = item.scene.objects[item.scene.marked]
        assert item.box_object == item.scene.marked and a != b
        expected = {(0, -1): "left", (0, 1): "right", (-1, 0): "above", (1, 0): "below"}
        sign = ((a.row > b.row) - (a.row < b.row), (a.col > b.col) - (a.col < b.col))
        assert expected[sign] == item.answer
        assert item.scene.count(a.category) == item.scene.count(b.category) == 1


def test_render_puts_the_object_colour_at_its_cell_and_the_box_around_it():
    scene = Scene((SceneObject("red", "square", "large", 1, 2),), grid=4, marked=0)
    for resolution in (28, 56, 112):
        image = scene.render(resolution)
        cell = resolution / 4
        assert image.getpixel((int(2.5 * cell), int(1.5 * cell))) == COLOURS["red"]
        x0, y0, x1, y1 = scene.object_box(0, resolution)
        assert 0 <= x0 < x1 <= resolution and 0 <= y0 < y1 <= resolution
        assert image.getpixel((x0, (y0 + y1) // 2)) == (255, 255, 255)


def test_every_item_has_its_box_inside_the_image_and_objects_in_distinct_cells():
    rng = random.Random(0)
    for task in BENCHMARKS:
        for item in make_items(rng.randrange(1000), task, 20):
            cells = [(o.row, o.col) for o in item.scene.objects]
            assert len(cells) == len(set(cells))
            if item.box_object is not None:
                x0, y0, x1, y1 = item.scene.object_box(item.box_object, 56)
                assert 0 <= x0 < x1 <= 56 and 0 <= y0 < y1 <= 56


def test_training_mixture_cycles_through_the_tasks():
    items = make_mixture(0, 12)
    assert [i.task for i in items[:6]] == [
        "count_general",
        "count_object",
        "count_super",
        "pope",
        "attribute",
        "spatial",
    ]


def test_mixture_weights_repeat_a_task_within_each_turn():
    items = make_mixture(0, 16, weights={"pope": 3})
    tasks = [i.task for i in items[:8]]
    assert tasks == [
        "count_general",
        "count_object",
        "count_super",
        "pope",
        "pope",
        "pope",
        "attribute",
        "spatial",
    ]
    assert [i.answer for i in items if i.task == "pope"] == ["yes", "no", "yes", "no", "yes", "no"]
    with pytest.raises(ValueError, match="unknown"):
        make_mixture(0, 4, weights={"ocr": 2})


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    return write_suite(root / "benchmarks", seed=0, n=6), write_probes(root / "probes", seed=0, n=12)


def test_benchmark_files_read_back_with_answers_and_boxes(suite):
    files, _ = suite
    assert [f.stem for f in files] == list(BENCHMARKS)
    for file in files:
        probes = read_probes(file)
        assert len(probes) == 6 and all(p.answer for p in probes)
        if file.stem in ("count_general", "count_super", "attribute"):
            assert all(p.box is not None for p in probes)


def test_probe_set_has_no_answers_and_other_images_than_the_benchmarks(suite):
    files, probe_file = suite
    probes = read_probes(probe_file)
    assert len(probes) == 12 and all(p.answer is None for p in probes)
    assert sum(p.box is not None for p in probes) >= 10
    bench_pixels = {p.load_image().tobytes() for f in files for p in read_probes(f)}
    assert not bench_pixels & {p.load_image().tobytes() for p in probes}
    assert all("answer" not in json.loads(line) for line in probe_file.read_text().splitlines())
