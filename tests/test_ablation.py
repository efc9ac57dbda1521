"""Head ablation at the attention output, through the same attention function as recording."""

from __future__ import annotations

import copy

import pytest
import torch

from headcast.errors import HeadcastError
from headcast.extract.head_ablation import HeadAblation, head_output_means, parse_heads, random_heads
from headcast.extract.inputs import encode_batch
from headcast.extract.loading import load_checkpoint
from headcast.extract.probes import read_probes
from headcast.extract.recording import hook_head_outputs
from headcast.extract.runner import model_inputs


@pytest.fixture(scope="module")
def setup(tiny_checkpoint, tiny_probes):
    checkpoint = load_checkpoint(tiny_checkpoint("llava-1.5-llama3-8b"), device="cpu")  # GQA
    probes = read_probes(tiny_probes)
    inputs = model_inputs(checkpoint, encode_batch(checkpoint, probes, "last-prompt"))
    return checkpoint, probes, inputs


@torch.no_grad()
def logits(model, inputs, hook=None):
    if hook is None:
        return model(**inputs).logits
    with hook_head_outputs(model, hook):
        return model(**inputs).logits


def test_ablating_no_heads_changes_nothing(setup):
    checkpoint, _, inputs = setup
    plain = logits(checkpoint.model, inputs)
    assert torch.equal(logits(checkpoint.model, inputs, HeadAblation([])), plain)


def test_ablating_every_head_of_a_layer_removes_that_layers_attention(setup):
    checkpoint, _, inputs = setup
    layer, n_heads = 1, checkpoint.model.config.text_config.num_attention_heads
    ablated = logits(checkpoint.model, inputs, HeadAblation([(layer, h) for h in range(n_heads)]))
    without = copy.deepcopy(checkpoint.model)
    without.model.language_model.layers[layer].self_attn.o_proj.weight.data.zero_()
    torch.testing.assert_close(ablated, logits(without, inputs), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ablated, logits(checkpoint.model, inputs), atol=1e-3)


def test_mean_ablation_replaces_a_head_by_its_average_output(setup):
    checkpoint, probes, inputs = setup
    means = head_output_means(checkpoint, probes, batch_size=4)
    head_dim = checkpoint.model.config.text_config.head_dim
    assert sorted(means) == list(range(4)) and means[0].shape == (4, head_dim)
    seen = {}

    def spy(layer, output):
        seen[layer] = output
        return output

    mean_ablated = HeadAblation([(2, 1)], mode="mean", means=means)
    with (
        torch.no_grad(),
        hook_head_outputs(checkpoint.model, lambda layer, out: spy(layer, mean_ablated(layer, out))),
    ):
        checkpoint.model(**inputs)
    assert torch.allclose(seen[2][:, :, 1], means[2][1].expand_as(seen[2][:, :, 1]))
    assert not torch.allclose(seen[2][:, :, 0], means[2][0].expand_as(seen[2][:, :, 0]))


def test_head_lists_are_parsed_and_checked_and_random_heads_come_from_the_same_layers():
    assert parse_heads("0:1, 3:2", n_layers=4, n_heads=4) == [(0, 1), (3, 2)]
    with pytest.raises(HeadcastError, match="outside the model's 4 layers x 4 heads"):
        parse_heads("4:0", n_layers=4, n_heads=4)
    with pytest.raises(HeadcastError, match="is not LAYER:HEAD"):
        parse_heads("3-1", n_layers=4, n_heads=4)
    like = [(1, 0), (1, 1), (3, 2)]
    picked = random_heads(like, n_heads=8, seed=0)
    assert sorted(layer for layer, _ in picked) == [1, 1, 3] and not set(picked) & set(like)
    assert picked == random_heads(like, n_heads=8, seed=0) != random_heads(like, n_heads=8, seed=1)
