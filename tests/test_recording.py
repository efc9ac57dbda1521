"""The recorder must see exactly what eager attention computes, and change nothing the model returns."""

from __future__ import annotations

import pytest
import torch

from headcast.extract.inputs import encode_batch
from headcast.extract.loading import load_checkpoint
from headcast.extract.metrics import reduce_rows
from headcast.extract.probes import read_probes
from headcast.extract.recording import ATTENTION_NAME, Recorder, record
from headcast.extract.runner import model_inputs, record_batch
from tests.conftest import ALL_SHAPES

QUERIES = ["last-prompt", "first-generated", "answer-mean"]


def eager_rows(checkpoint, batch, query):
    """Attention rows at the recorded queries from eager `output_attentions`, plus the key masks."""
    checkpoint.model.set_attn_implementation({"text_config": "eager"})
    inputs = model_inputs(checkpoint, batch)
    visual, region, text = batch.visual, batch.region, batch.text
    with torch.no_grad():
        if query == "first-generated":
            prefill = checkpoint.model(**inputs, use_cache=True)
            token = prefill.logits[:, -1].argmax(-1, keepdim=True)
            attentions = checkpoint.model(
                input_ids=token,
                attention_mask=torch.cat([inputs["attention_mask"], torch.ones_like(token)], 1),
                position_ids=inputs["position_ids"][:, -1:] + 1,
                past_key_values=prefill.past_key_values,
                output_attentions=True,
            ).attentions
            index = torch.zeros_like(batch.query_index)
            visual, region, text = (torch.nn.functional.pad(m, (0, 1)) for m in (visual, region, text))
        else:
            attentions = checkpoint.model(**inputs, output_attentions=True).attentions
            index = batch.query_index
    rows = [a.gather(2, index[:, None, :, None].expand(-1, a.shape[1], -1, a.shape[-1])) for a in attentions]
    return rows, (visual, region, text)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_recorded_rows_and_metrics_equal_eager_output_attentions(tiny_checkpoint, tiny_probes, shape, query):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    batch = encode_batch(checkpoint, read_probes(tiny_probes), query)  # left-padded for AnyRes and answers
    recorder = record_batch(checkpoint, batch, query, keep_rows=True)
    rows, masks = eager_rows(checkpoint, batch, query)
    weight = batch.query_weight[:, None, :, None]
    assert sorted(recorder.rows) == list(range(len(rows)))
    for layer, expected in enumerate(rows):
        valid = batch.query_weight.bool()[:, None, :, None].expand_as(expected)
        torch.testing.assert_close(recorder.rows[layer][valid], expected[valid], atol=1e-5, rtol=0)
        metrics = (reduce_rows(expected, *masks) * weight).sum(2) / weight.sum(2)
        torch.testing.assert_close(recorder.metrics[layer], metrics, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "shape",
    [
        "llava-1.6-mistral-7b",
        "llava-1.5-llama3-8b",
        "llava-onevision-qwen2-0.5b",
        "llava-interleave-qwen-0.5b",
    ],
)
def test_a_probe_gets_the_same_metrics_alone_as_in_a_padded_batch(tiny_checkpoint, tiny_probes, shape):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    probes = read_probes(tiny_probes)
    together = record_batch(
        checkpoint, encode_batch(checkpoint, probes, "last-prompt"), "last-prompt"
    ).stacked()
    for i, probe in enumerate(probes):
        alone = record_batch(
            checkpoint, encode_batch(checkpoint, [probe], "last-prompt"), "last-prompt"
        ).stacked()
        torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "shape",
    [
        "llava-1.5-7b",
        "llava-1.6-vicuna-7b",
        "vip-llava-7b",
        "llava-onevision-qwen2-0.5b",
        "llava-interleave-qwen-0.5b",
        "llava-gemma-2b",
    ],
)
def test_recording_leaves_outputs_unchanged_and_restores_sdpa(tiny_checkpoint, tiny_probes, shape):
    checkpoint = load_checkpoint(tiny_checkpoint(shape), device="cpu")
    batch = encode_batch(checkpoint, read_probes(tiny_probes), "last-prompt")
    inputs = model_inputs(checkpoint, batch)
    model = checkpoint.model
    with torch.no_grad():
        plain = model(**inputs).logits
        recorder = Recorder(batch.query_index, batch.query_weight, batch.visual, batch.region, batch.text)
        with record(model, recorder):
            assert model.config.text_config._attn_implementation == ATTENTION_NAME
            assert model.config.vision_config._attn_implementation == "sdpa"
            recorded = model(**inputs).logits
    assert torch.equal(plain, recorded)
    assert len(recorder.metrics) == model.config.text_config.num_hidden_layers
    assert model.config.text_config._attn_implementation == "sdpa"
