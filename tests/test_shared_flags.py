"""Flags several commands take are defined once (headcast.arguments) and refuse a bad value while parsing,
on every command that takes them: one line, exit 2. The walk covers commands added later too."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
import torch

from headcast import arguments
from headcast.cli import build_parser, main

# A bad value per shared flag, and the argparse type (or choices) every command's copy must use.
BAD_VALUES = {
    "--device": ["tpu", "cuda:", "CPU", ""],
    "--dtype": ["int8"],
    "--experiment": [" padded ", "   "],
    "--seed": ["-1", str(2**32), "seven"],
    "--jobs": ["0"],
    "--batch-size": ["0"],
    "--model": ["", " "],
    "--query": ["middle"],
}
DEFINED_BY = {
    "--device": arguments.device_name,
    "--dtype": arguments.DTYPES,
    "--experiment": (arguments.experiment_name, arguments.experiment_name_or_none),
    "--seed": arguments.seed_number,
    "--jobs": arguments.positive_int,
    "--batch-size": arguments.positive_int,
    "--model": arguments.model_uri,
    "--query": arguments.QUERY_POSITIONS,
}
NOT_YET_SHARED: set[tuple[str, str]] = set()


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    """(command words, parser) for every leaf command of the real `headcast` parser."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
        return
    for name, child in subparsers[0].choices.items():
        yield from commands(child, (*path, name))


def required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for what the command needs, so that only the flag under test can fail parsing."""
    argv: list[str] = []
    for action in parser._actions:
        if action.option_strings and action.required:
            argv += [action.option_strings[0], "1" if action.type is int else "x"]
        elif not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            argv.append("x")
    return argv


SHARED = [
    pytest.param(words, flag, parser, id=f"{' '.join(words)} {flag}")
    for words, parser in commands(build_parser())
    for action in parser._actions
    for flag in action.option_strings
    if flag in BAD_VALUES and (words[0], flag) not in NOT_YET_SHARED
]


def test_every_shared_flag_is_taken_by_several_commands():
    takers = {flag: {p.values[0] for p in SHARED if p.values[1] == flag} for flag in BAD_VALUES}
    assert all(len(words) >= 2 for words in takers.values()), takers


@pytest.mark.parametrize(("words", "flag", "parser"), SHARED)
def test_each_command_uses_the_one_definition_of_a_shared_flag(words, flag, parser):
    action = next(a for a in parser._actions if flag in a.option_strings)
    defined = DEFINED_BY[flag]
    if isinstance(defined, tuple) and callable(defined[0]):
        assert action.type in defined
    elif callable(defined):
        assert action.type is defined
    else:
        assert tuple(action.choices) == tuple(defined)


@pytest.mark.parametrize(("words", "flag", "parser"), SHARED)
def test_each_command_refuses_a_bad_shared_flag_in_one_line(capsys, words, flag, parser):
    for value in BAD_VALUES[flag]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([*words, *required_arguments(parser), f"{flag}={value}"])
        assert exited.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"headcast {' '.join(words)}: error: argument {flag}"), err
        assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--features", "f.parquet", "--scores", "s.csv", "--experiment", ""],
        ["predict-runs", "--probes", "p.jsonl", "--experiment", ""],
        ["serve", "--experiment", ""],
        ["demo", "--experiment", ""],
        ["demo", "--zoo-experiment", ""],
    ],
)
def test_an_empty_experiment_name_is_refused_while_parsing(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("'' is not an experiment name; give a non-empty name")


def test_zoo_build_keeps_an_empty_experiment_as_none():
    args = build_parser().parse_args(["zoo", "build", "--out", "z", "--experiment", ""])
    assert args.experiment == ""


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_every_device_torch_names_is_accepted_while_parsing(value):
    assert arguments.device_name(value) == value


def _evaluate(tmp_path, tiny_checkpoint, tiny_probes, device: str) -> list[str]:
    out = tmp_path / "scores.csv"
    ckpt = str(tiny_checkpoint("llava-1.5-7b"))
    return ["evaluate", ckpt, "--benchmarks", str(tiny_probes), "--out", str(out), "--device", device]


def _extract(tmp_path, tiny_checkpoint, tiny_probes, device: str) -> list[str]:
    out = tmp_path / "features.parquet"
    ckpt = str(tiny_checkpoint("llava-1.5-7b"))
    return ["extract", ckpt, "--probes", str(tiny_probes), "--out", str(out), "--quiet", "--device", device]


@pytest.mark.parametrize("command", [_evaluate, _extract])
@pytest.mark.parametrize("device", ["cuda:7", "mps"])
def test_a_device_this_machine_lacks_is_one_line_when_the_command_runs(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, command, device
):
    if (device == "mps" and torch.backends.mps.is_available()) or torch.cuda.device_count() > 7:
        pytest.skip("this machine has the device")
    capsys.readouterr()
    assert main(command(tmp_path, tiny_checkpoint, tiny_probes, device)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"headcast: error: --device {device}") and "; " in err[-1]
    assert not list(tmp_path.iterdir())
