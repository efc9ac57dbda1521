"""Image, region and question tokens come from the model's own input expansion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from headcast.extract.inputs import _region_tokens, encode_batch
from headcast.extract.loading import IMAGE_LAYOUTS, load_checkpoint
from headcast.extract.probes import read_probes


def probe_file(tmp_path, size, box, question="how many red squares are there ?"):
    Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / "img.png")
    item = {"id": "a", "image": "img.png", "question": question, "answer": "2", "box": box}
    (tmp_path / "p.jsonl").write_text(json.dumps(item) + "\n")
    return read_probes(tmp_path / "p.jsonl")


@pytest.mark.parametrize(
    "shape",
    [
        "llava-1.5-7b",
        "vip-llava-7b",
        "llava-1.6-vicuna-7b",
        "llava-onevision-qwen2-0.5b",
        "llava-interleave-qwen-0.5b",
    ],
)
def test_a_box_over_the_whole_image_marks_every_image_patch_but_no_newline(tiny_checkpoint, tmp_path, shape):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    batch = encode_batch(checkpoint, probe_file(tmp_path, (56, 28), [0, 0, 56, 28]), "last-prompt")
    n_visual, n_region = int(batch.visual.sum()), int(batch.region.sum())
    assert n_region > 0 and not (batch.region & ~batch.visual).any()
    if IMAGE_LAYOUTS[checkpoint.arch] == "anyres":
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


def test_onevision_downsampled_grid_marks_the_region_where_the_models_own_features_put_it(
    tiny_checkpoint, tmp_path
):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-onevision-qwen2-0.5b"), device="cpu")
    # what "anyres_max_9" does to large images in the real models: 2x2 tiles (8x8 patches) pooled to 4x4
    checkpoint.model.config.vision_aspect_ratio = "anyres_max_1"
    probes = probe_file(tmp_path, (56, 56), [0, 0, 28, 28])  # the top-left quarter
    image = probes[0].load_image()
    processed = checkpoint.processor.image_processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        features = checkpoint.model.model.get_image_features(
            pixel_values=processed["pixel_values"], image_sizes=processed["image_sizes"]
        ).pooler_output
    tokens = _region_tokens(checkpoint, probes, [image])[0]
    assert len(tokens) == len(features[0]) == 16 + 4 * 5  # base tile 4x4; pooled 4x4 grid, a newline per row
    base = [0, 1, 4, 5]  # top-left 2x2 of the base tile's 4x4 patches
    pooled = [16 + row * 5 + col for row in (0, 1) for col in (0, 1)]  # top-left 2x2 of the pooled grid
    assert tokens.nonzero()[:, 0].tolist() == base + pooled


def test_text_tokens_are_exactly_the_question(tiny_checkpoint, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.6-mistral-7b"), device="cpu")
    question = "what colour is the object in the box ?"
    batch = encode_batch(checkpoint, probe_file(tmp_path, (40, 30), [1, 1, 9, 9], question), "answer-mean")
    tokens = checkpoint.processor.tokenizer.convert_ids_to_tokens(batch.inputs["input_ids"][0][batch.text[0]])
    assert " ".join(tokens) == question
    # answer-mean records the rows that predict the answer "2": the last prompt token
    assert batch.query_index.tolist() == [[batch.inputs["input_ids"].shape[1] - 2]]
