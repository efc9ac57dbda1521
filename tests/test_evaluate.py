"""The evaluator: answer matching, and a whole run on a checkpoint whose answer is known by hand."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from headcast.errors import HeadcastError
from headcast.experiments.modeling import (
    ModelSpec,
    build_model,
    build_processor,
    build_tokenizer,
    save_checkpoint,
)
from headcast.experiments.scenes import Scene, SceneObject
from headcast.extract.answers import first_number, first_word, is_correct
from headcast.extract.cli import add_evaluate_parser
from headcast.extract.evaluate import evaluate
from headcast.predictor.scores import read_scores


def test_numbers_match_the_first_number_in_digits_or_words():
    assert first_number("There are two.") == "2"
    assert first_number("3 red circles") == "3"
    assert first_number("none") == ""
    assert is_correct("Two", "2") and is_correct("02", "2") and not is_correct("3", "2")


def test_words_match_the_first_word_without_case_or_punctuation():
    assert first_word("Yes, there is.") == "yes"
    assert is_correct("Red.", "red") and not is_correct("no", "yes") and not is_correct("", "yes")


@pytest.fixture(scope="module")
def always_three(tmp_path_factory):
    """A checkpoint that answers every question with "3", by construction.

    Attention and MLP outputs are zeroed, so the last hidden state is the embedding of the current
    token; ':' (the prompt's last token) and '3' get orthogonal one-hot embeddings, and the output
    head maps ':' -> '3' and '3' -> '</s>'.
    """
    tokenizer = build_tokenizer(["yes", "no"])
    spec = ModelSpec("llava", "llama", layers=2, heads=2, kv_heads=2)
    model = build_model(spec, tokenizer)
    colon, three = tokenizer.convert_tokens_to_ids([":", "3"])
    language = model.model.language_model
    with torch.no_grad():
        for layer in language.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        language.embed_tokens.weight.zero_()
        language.embed_tokens.weight[colon, 0] = 1.0
        language.embed_tokens.weight[three, 1] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[three, 0] = 10.0
        model.lm_head.weight[tokenizer.eos_token_id, 1] = 10.0
    return save_checkpoint(model, build_processor(spec, tokenizer), tmp_path_factory.mktemp("ckpt") / "three")


def _write_benchmark(folder, name, answers):
    image = Scene((SceneObject("red", "circle", "large", 0, 0),)).render(56)
    image.save(folder / "scene.png")
    lines = [
        {"id": f"{name}{i}", "image": "scene.png", "question": "How many ?", "answer": a}
        for i, a in enumerate(answers)
    ]
    (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")


def test_evaluation_of_a_checkpoint_that_always_says_three(always_three, tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    _write_benchmark(suite, "count", ["3", "3", "1", "2"])
    _write_benchmark(suite, "yesno", ["yes", "no"])
    out = tmp_path / "scores.csv"
    evaluate([always_three], suite, out, device="cpu", batch_size=3)
    rows = {r["benchmark"]: r for r in read_scores(out).to_dict("records")}
    assert rows["count"]["score"] == 50.0 and rows["count"]["n"] == 4
    assert rows["yesno"]["score"] == 0.0 and rows["yesno"]["n"] == 2
    assert {r["checkpoint"] for r in rows.values()} == {str(always_three)}
    assert out.read_text().splitlines()[0] == "checkpoint,benchmark,score,n"


def test_evaluate_command_scores_checkpoints_and_refuses_unlabeled_items(always_three, tmp_path):
    _write_benchmark(tmp_path, "count", ["3"])
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["evaluate", str(always_three), "--benchmarks", str(tmp_path), "--out", str(tmp_path / "s.csv")]
    )
    args.func(args)
    assert read_scores(tmp_path / "s.csv")["score"].tolist() == [100.0]
    (tmp_path / "count.jsonl").write_text(
        json.dumps({"id": "a", "image": "scene.png", "question": "q"}) + "\n"
    )
    with pytest.raises(HeadcastError, match="no answer"):
        args.func(args)
