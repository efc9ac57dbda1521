"""The evaluator: answer matching, and a whole run on a checkpoint whose answer is known by hand."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from headcast.errors import HeadcastError
from headcast.experiments.layout import ZooLayout
from headcast.experiments.modeling import (
    ModelSpec,
    build_model,
    build_processor,
    build_tokenizer,
    save_checkpoint,
)
from headcast.experiments.scenes import Scene, SceneObject
from headcast.extract import load_checkpoint, read_probes
from headcast.extract.answers import (
    first_number,
    first_token_decides,
    first_word,
    is_correct,
    spells_words_apart,
)
from headcast.extract.cli import add_evaluate_parser
from headcast.extract.evaluate import (
    _first_token_logits,
    _first_tokens,
    _generate,
    answer_items,
    encode_items,
    evaluate,
    load_suite,
)
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


def _verdicts_by_generation(checkpoint, probes, max_new_tokens=4):
    """Reference verdicts: every item generated to the end, as the evaluator once did."""
    rows = []
    for block, _prompts, inputs in encode_items(checkpoint.processor, probes, batch_size=8):
        texts, logits = _generate(checkpoint.model, checkpoint.processor.tokenizer, inputs, max_new_tokens)
        probs = logits.float().softmax(-1).max(-1).values.tolist()
        rows += [
            (probe.id, is_correct(text, probe.answer), round(p, 6))
            for probe, text, p in zip(block, texts, probs, strict=True)
        ]
    return rows


@pytest.mark.parametrize("source", ["trained", "random"])
def test_the_one_prefill_shortcut_gives_the_verdicts_of_generating_every_item(
    source, smoke_zoo, tiny_checkpoint, tiny_probes
):
    if source == "trained":
        path = next(iter(ZooLayout(smoke_zoo).checkpoint_folders()))
        probes = [p for items in load_suite(ZooLayout(smoke_zoo).benchmarks).values() for p in items]
    else:  # random weights answer with any token: punctuation and words before numbers included
        path = tiny_checkpoint("llava-1.6-vicuna-7b")  # AnyRes: image_sizes travel with the rows generated on
        probes = [replace(p, answer=answer) for p in read_probes(tiny_probes) for answer in ("2", "red")]
    checkpoint = load_checkpoint(path, device="cpu")
    rows = answer_items(checkpoint, probes, batch_size=8)
    got = [(r["item"], r["correct"], round(r["confidence"], 6)) for r in rows]
    assert got == _verdicts_by_generation(checkpoint, probes)
    if source == "random":  # both paths ran: items settled by the first token and items generated on
        inputs = encode_items(checkpoint.processor, probes, batch_size=len(probes))[0][2]
        logits = _first_token_logits(checkpoint.model, inputs)
        tokenizer, golds = checkpoint.processor.tokenizer, [p.answer for p in probes]
        firsts = _first_tokens(checkpoint.model, tokenizer, logits, golds)
        assert None in firsts and any(f is not None for f in firsts)


def test_only_a_word_level_tokenizer_lets_the_first_token_decide():
    bpe = Tokenizer(models.BPE(vocab={"y": 0, "e": 1, "s": 2, "ye": 3}, merges=[("y", "e")]))
    bpe.decoder = decoders.BPEDecoder()
    assert spells_words_apart(build_tokenizer(["yes", "red"]))
    assert not spells_words_apart(PreTrainedTokenizerFast(tokenizer_object=bpe))
    assert first_token_decides("two", False, "2") and not first_token_decides("red", False, "2")
    assert not first_token_decides(".", False, "yes") and first_token_decides("", True, "yes")
