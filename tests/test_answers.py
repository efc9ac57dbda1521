"""Answers in the extraction pass: the recorded prefill's next-token distribution is the model's own."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from headcast.contract import ExtractionSettings
from headcast.experiments.modeling import build_tokenizer
from headcast.extract import pipeline
from headcast.extract.answers import gold_token_ids
from headcast.extract.features import confidence_features, feature_columns, feature_row
from headcast.extract.loading import load_checkpoint
from headcast.extract.pipeline import extract_head_metrics, features_table, measure_heads
from headcast.extract.probes import Probe, read_probes
from headcast.extract.prompts import build_prompt
from headcast.extract.storage import MetricsCache
from headcast.schema import (
    CONFIDENCE_PREFIX,
    VisualHeadThresholds,
    confidence_feature_columns,
    head_feature_columns,
)
from tests.tiny_probes import WORDS


def plain_next_token_probs(checkpoint, probe: Probe) -> torch.Tensor:
    """The next-token distribution after the prompt, from an ordinary forward of the probe alone."""
    prompt = build_prompt(checkpoint.processor, probe.question)
    inputs = checkpoint.processor(images=[probe.load_image()], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        return checkpoint.model(**inputs).logits[0, -1].softmax(-1)


@pytest.mark.parametrize("query", ["last-prompt", "first-generated"])
@pytest.mark.parametrize("shape", ["llava-1.5-7b", "llava-1.6-mistral-7b"])
def test_answers_are_the_models_own_first_token_distribution(tiny_checkpoint, tiny_probes, shape, query):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    tokenizer = checkpoint.processor.tokenizer
    probes = read_probes(tiny_probes)
    probs = [plain_next_token_probs(checkpoint, p) for p in probes]
    greedy = [tokenizer.convert_ids_to_tokens(int(p.argmax())) for p in probs]
    # every other probe is relabelled with the model's own greedy word, so `correct` is seen both ways
    probes = [
        dataclasses.replace(p, answer=word) if i % 2 == 0 and word.isalnum() else p
        for i, (p, word) in enumerate(zip(probes, greedy, strict=True))
    ]
    _, answers = measure_heads(checkpoint, probes, query, batch_size=4, progress=False)  # left-padded

    gold = [tokenizer.convert_tokens_to_ids(p.answer) for p in probes]
    assert answers["item"].tolist() == [p.id for p in probes]
    assert answers["task"].tolist() == [p.task for p in probes]
    assert answers["answer"].tolist() == [
        tokenizer.decode([int(p.argmax())], skip_special_tokens=True) for p in probs
    ]
    np.testing.assert_allclose(answers["confidence"], [float(p.max()) for p in probs], atol=1e-5, rtol=0)
    gold_probs = [float(p[g]) for p, g in zip(probs, gold, strict=True)]
    np.testing.assert_allclose(answers["prob"], gold_probs, atol=1e-5, rtol=0)
    expected = [float(int(p.argmax()) == g) for p, g in zip(probs, gold, strict=True)]
    assert answers["correct"].tolist() == expected
    assert 0.0 in expected and 1.0 in expected


def test_unlabelled_probes_get_a_confidence_but_no_correct_or_prob(tiny_checkpoint, tiny_probes):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.5-7b"), device="cpu")
    probes = [
        dataclasses.replace(p, answer=None, task=None if i % 2 else "colour")
        for i, p in enumerate(read_probes(tiny_probes))
    ]
    samples, answers = measure_heads(checkpoint, probes, batch_size=4, progress=False)
    assert answers["correct"].isna().all() and answers["prob"].isna().all()
    assert answers["confidence"].between(0, 1).all() and (answers["answer"] != "").all()

    row = feature_row(samples, VisualHeadThresholds(), answers)
    assert confidence_feature_columns(row) == [
        *(f"{CONFIDENCE_PREFIX}{stat}" for stat in ("mean", "q10", "q50", "q90")),
        *(f"{CONFIDENCE_PREFIX}above{t}" for t in ("0.3", "0.5", "0.7", "0.9")),
        f"{CONFIDENCE_PREFIX}task=colour",
    ]
    assert row["confidence.mean"] == pytest.approx(answers["confidence"].mean())
    assert row["confidence.task=colour"] == pytest.approx(answers["confidence"][::2].mean())


def test_answer_mean_extraction_has_no_answers_and_nan_confidence_features(tiny_checkpoint, tiny_probes):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.5-7b"), device="cpu")
    samples, answers = measure_heads(checkpoint, read_probes(tiny_probes), "answer-mean", progress=False)
    assert (answers["answer"] == "").all()
    assert answers[["correct", "prob", "confidence"]].isna().all().all()
    row = feature_row(samples, VisualHeadThresholds(), answers)
    confidence = confidence_feature_columns(row)
    assert "confidence.task=count_object" in confidence
    assert all(math.isnan(row[c]) for c in confidence)


def test_confidence_features_count_taskless_probes_only_in_the_overall_ones():
    answers = pd.DataFrame({"task": ["a", "a", "b", None], "confidence": [0.2, 0.4, 0.6, 0.8]})
    assert confidence_features(answers) == pytest.approx(
        {
            "confidence.mean": 0.5,
            "confidence.q10": np.quantile([0.2, 0.4, 0.6, 0.8], 0.1),
            "confidence.q50": 0.5,
            "confidence.q90": np.quantile([0.2, 0.4, 0.6, 0.8], 0.9),
            "confidence.above0.3": 0.75,
            "confidence.above0.5": 0.5,
            "confidence.above0.7": 0.25,
            "confidence.above0.9": 0.0,
            "confidence.task=a": 0.3,
            "confidence.task=b": 0.6,
        }
    )
    columns = ["checkpoint", "schema_version", *feature_columns(), *confidence_features(answers)]
    assert head_feature_columns(columns) == feature_columns()
    assert confidence_feature_columns(columns) == list(confidence_features(answers))


def test_a_second_extraction_hits_the_cache_with_identical_answers(
    tiny_checkpoint, tiny_probes, tmp_path, monkeypatch
):
    folder, probes = tiny_checkpoint("vip-llava-7b"), read_probes(tiny_probes)
    settings, cache = ExtractionSettings(batch_size=4, device="cpu"), MetricsCache(tmp_path)
    first = extract_head_metrics(folder, probes, settings, cache=cache, progress=False)

    def no_loading(*_, **__):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(pipeline, "load_checkpoint", no_loading)
    second = extract_head_metrics(folder, probes, settings, cache=cache, progress=False)
    pd.testing.assert_frame_equal(first.answers, second.answers)
    np.testing.assert_array_equal(first.samples, second.samples)
    table = features_table([first, second], settings.thresholds)
    confidence = table[confidence_feature_columns(table.columns)]
    assert confidence.shape[1] == 9 and ((confidence >= 0) & (confidence <= 1)).all().all()


def test_a_cache_entry_without_answers_is_a_miss(tmp_path):
    cache = MetricsCache(tmp_path)
    cache.root.mkdir(parents=True)
    np.savez(cache.root / "old.npz", samples=np.zeros((2, 1, 1, 4)), meta="{}")  # the version-1 layout
    assert cache.get("old") is None
    answers = pd.DataFrame({"item": ["a", "b"], "task": [None, "t"], "correct": [np.nan, 1.0]})
    cache.put("new", np.zeros((2, 1, 1, 4)), answers, {"n": 2})
    samples, cached, meta = cache.get("new")
    pd.testing.assert_frame_equal(cached, answers)
    assert meta == {"n": 2} and samples.shape == (2, 1, 1, 4)


def test_gold_token_ids_are_the_single_token_spelling_of_the_answer():
    tokenizer = build_tokenizer(WORDS)
    prompt = "USER : <image>\nhow many red squares are there ? ASSISTANT :"
    assert gold_token_ids(tokenizer, prompt, "3") == [tokenizer.convert_tokens_to_ids("3")]
    assert gold_token_ids(tokenizer, prompt, "Red") == [tokenizer.convert_tokens_to_ids("red")]
    assert gold_token_ids(tokenizer, prompt, "zebra") == []  # out of vocabulary: not the unknown token
    assert gold_token_ids(tokenizer, prompt, "red circles") == []
    assert gold_token_ids(tokenizer, prompt, "12") == []  # digits are split: two tokens
