"""`headcast ablate` on a tiny checkpoint: the JSON it prints, that removing heads shows, one-line errors."""

from __future__ import annotations

import json

import pytest

from headcast.cli import build_parser
from headcast.errors import HeadcastError
from headcast.extract.ablated_accuracy import accuracy_without_heads
from headcast.extract.evaluate import evaluate_checkpoint, load_suite
from headcast.extract.loading import load_checkpoint


def ablate(*argv: str) -> int:
    args = build_parser().parse_args(["ablate", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return tiny_checkpoint("llava-1.5-7b")  # 4 layers x 4 heads


def every_head(n_layers: int = 4, n_heads: int = 4) -> str:
    return ",".join(f"{layer}:{head}" for layer in range(n_layers) for head in range(n_heads))


def test_json_reports_baseline_ablated_and_random_sets_of_the_same_layers(model, tiny_probes, capsys):
    assert (
        ablate(
            model, "--benchmark", tiny_probes, "--heads", "1:0,3:2", "--random", "3", "--seed", "5", "--json"
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "benchmark",
        "n",
        "baseline",
        "ablated",
        "random",
        "random_mean",
        "random_std",
        "heads",
        "mode",
    }
    assert result["benchmark"] == "probes" and result["n"] == 6 and result["mode"] == "zero"
    assert result["heads"] == ["1:0", "3:2"] and len(result["random"]) == 3
    for chosen in result["random_heads"]:
        assert sorted(int(h.split(":")[0]) for h in chosen) == [1, 3] and not set(chosen) & {"1:0", "3:2"}
    assert result["random_mean"] == pytest.approx(sum(result["random"]) / 3, abs=0.01)


def test_unablated_accuracy_is_the_evaluators_score(model, tiny_probes):
    suite = load_suite(tiny_probes)
    ours = accuracy_without_heads(load_checkpoint(model, device="cpu"), suite)
    rows = evaluate_checkpoint(model, suite, device="cpu")
    assert ours["probes"] == pytest.approx(100 * sum(r["correct"] for r in rows) / len(rows), abs=0.01)


def test_removing_every_head_changes_the_answers(model, tiny_probes, monkeypatch):
    import headcast.extract.evaluate as module  # where generation happens

    answers: list[list[str]] = []
    generate = module.answer_items

    def spy(*args, **kwargs):
        rows = generate(*args, **kwargs)
        answers.append([row["answer"] for row in rows])
        return rows

    monkeypatch.setattr(module, "answer_items", spy)
    checkpoint, suite = load_checkpoint(model, device="cpu"), load_suite(tiny_probes)
    accuracy_without_heads(checkpoint, suite)
    accuracy_without_heads(checkpoint, suite, [(layer, head) for layer in range(4) for head in range(4)])
    accuracy_without_heads(checkpoint, suite)
    assert answers[0] != answers[1] and answers[0] == answers[2]  # and the hook is gone afterwards


def test_mean_mode_averages_over_the_given_probes(model, tiny_probes, capsys):
    assert (
        ablate(
            model,
            "--benchmark",
            tiny_probes,
            "--heads",
            every_head(),
            "--mode",
            "mean",
            "--probes",
            tiny_probes,
            "--json",
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["mode"] == "mean"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--heads", "4:0"], "outside the model's 4 layers x 4 heads"),
        (["--heads", "1-2"], "is not LAYER:HEAD"),
        (["--heads", "1:0", "--mode", "mean"], "pass --probes"),
        (["--heads", ","], "lists no head"),
    ],
)
def test_bad_requests_are_one_line_errors_that_name_the_fix(model, tiny_probes, argv, message):
    with pytest.raises(HeadcastError, match=message) as error:
        ablate(model, "--benchmark", tiny_probes, *argv)
    assert "\n" not in str(error.value)
