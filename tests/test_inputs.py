"""Image, region and question tokens come from the model's own input expansion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from extract.inputs import encode_batch
from extract.loading import load_checkpoint
from extract.probes import read_probes


def probe_file(tmp_path, size, box, question="how many red squares are there ?"):
    Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / "img.png")
    item = {"id": "a", "image": "img.png", "question": question, "answer": "2", "box": box}
    (tmp_path / "p.jsonl").write_text(json.dumps(item) + "\n")
    return read_probes(tmp_path / "p.jsonl")


@pytest.mark.parametrize("shape", ["llava-1.5-7b", "vip-llava-7b", "llava-1.6-vicuna-7b"])
def test_a_box_over_the_whole_image_marks_every_image_patch_but_no_newline(tiny_checkpoint, tmp_path, shape):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    batch = encode_batch(checkpoint, probe_file(tmp_path, (56, 28), [0, 0, 56, 28]), "last-prompt")
    n_visual, n_region = int(batch.visual.sum()), int(batch.region.sum())
    assert n_region > 0 and not (batch.region & ~batch.visual).any()
    if checkpoint.arch == "llava_next":
        newline_rows = n_visual - n_region  # AnyRes: every row of the tiled grid ends in a newline token
        assert 0 < newline_rows < n_visual / 4
    else:
        assert n_region == n_visual


def test_a_top_left_box_marks_the_top_left_patches_in_row_major_order(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.5-7b"), device="cpu")  # 28 px, 7 px patches: 4x4
    batch = encode_batch(checkpoint, probe_file(tmp_path, (28, 28), [0, 0, 7, 14]), "last-prompt")
    grid = batch.region[batch.visual].reshape(4, 4)
    expected = np.zeros((4, 4), dtype=bool)
    expected[:2, 0] = True
    assert (grid.numpy() == expected).all()


def test_text_tokens_are_exactly_the_question(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.6-mistral-7b"), device="cpu")
    question = "what colour is the object in the box ?"
    batch = encode_batch(checkpoint, probe_file(tmp_path, (40, 30), [1, 1, 9, 9], question), "answer-mean")
    tokens = checkpoint.processor.tokenizer.convert_ids_to_tokens(batch.inputs["input_ids"][0][batch.text[0]])
    assert " ".join(tokens) == question
    # answer-mean records the rows that predict the answer "2": the last prompt token
    assert batch.query_index.tolist() == [[batch.inputs["input_ids"].shape[1] - 2]]
