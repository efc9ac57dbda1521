"""Zoo presets: the YAML of `smoke`, `small` and `full` (or any file of the same shape) as a `ZooConfig`.

A preset holds the shared data and pretraining settings, then the runs; each run's entry overrides the
preset's `defaults`. Loading checks what a typo would otherwise turn into a silently different zoo.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from headcast.errors import HeadcastError
from headcast.experiments.scenes import AUX_TASKS, TASKS
from headcast.schema import ANSWER_TOKENS

PRESETS = ("smoke", "small", "full")


@dataclasses.dataclass(frozen=True)
class ZooConfig:
    """A preset: shared data and pretraining settings, then the runs."""

    name: str
    resolution: int
    grid: int
    benchmark_items: int
    probe_items: int
    vision: dict[str, Any]
    language: dict[str, Any]
    caption_items: int
    instruct_items: int
    checkpoints: int
    runs: tuple  # of experiments.train.RunConfig
    raw: dict[str, Any]
    mixture: dict[str, int] = dataclasses.field(default_factory=dict)  # task -> weight in training data
    # What runs with `curriculum` steps train on first: {"items": n, "mixture": {task: weight}}.
    curriculum: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Tokens generated per benchmark item. Every answer of the suite is one token, so with 1 the first
    # token must be the answer; with the default 4 an answer word among the first four also counts,
    # which only a model that does not yet answer in the trained form ever needs.
    answer_tokens: int = ANSWER_TOKENS


def load_config(preset: str) -> ZooConfig:
    """The preset `smoke|small|full` from experiments/configs, or any YAML file of the same shape."""
    # here, not at the top: loads torch, transformers only when this runs
    from headcast.experiments.modeling import ModelSpec
    from headcast.experiments.train import RunConfig, even_steps

    if preset in PRESETS:
        text = (
            resources.files("headcast.experiments")
            .joinpath("configs", f"{preset}.yaml")
            .read_text(encoding="utf-8")
        )
    elif Path(preset).is_file():
        text = Path(preset).read_text(encoding="utf-8")
    else:
        raise HeadcastError(f"unknown preset {preset!r}; use {', '.join(PRESETS)} or a path to a YAML config")
    raw = yaml.safe_load(text)
    spec_fields = {f.name for f in dataclasses.fields(ModelSpec)}
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    runs = []
    for entry in raw["runs"]:
        merged = {**raw.get("defaults", {}), **entry}
        unknown = set(merged) - spec_fields - run_fields
        if unknown:
            raise HeadcastError(f"run {merged.get('name')!r}: unknown field(s) {', '.join(sorted(unknown))}")
        spec = ModelSpec(**{k: v for k, v in merged.items() if k in spec_fields})
        settings = {k: v for k, v in merged.items() if k in run_fields and k != "spec"}
        total = settings["steps"] + settings.get("curriculum", 0)
        settings["checkpoints"] = even_steps(total, raw["checkpoints"])
        runs.append(RunConfig(spec=spec, **settings))
    vision = {
        (r.spec.vision_hidden, r.spec.vision_layers, r.spec.image_size, r.spec.patch_size) for r in runs
    }
    if len(vision) > 1:
        raise HeadcastError(
            "runs differ in vision_hidden, vision_layers, image_size or patch_size; "
            "the zoo shares one pretrained vision encoder, so set these in `defaults` only"
        )

    curriculum = dict(raw.get("curriculum") or {})
    for where, weights in (
        ("mixture", raw.get("mixture")),
        ("curriculum.mixture", curriculum.get("mixture")),
    ):
        unknown_tasks = set(weights or {}) - set(TASKS) - set(AUX_TASKS)
        if unknown_tasks:
            raise HeadcastError(
                f"{where}: unknown task(s) {', '.join(sorted(unknown_tasks))}; "
                f"use {', '.join(TASKS + AUX_TASKS)}"
            )
    if any(r.curriculum for r in runs) and not (curriculum.get("items") and curriculum.get("mixture")):
        raise HeadcastError(
            "a run has `curriculum` steps but the preset has no "
            "`curriculum: {items: N, mixture: {...}}`; add one"
        )
    if int(raw.get("answer_tokens", ANSWER_TOKENS)) < 1:
        raise HeadcastError("answer_tokens is how many tokens a benchmark answer may take; use 1 or more")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise HeadcastError("run names in the config repeat; give every run a unique name")
    return ZooConfig(
        name=raw.get("name", preset),
        resolution=raw["resolution"],
        grid=raw["grid"],
        benchmark_items=raw["benchmark_items"],
        probe_items=raw["probe_items"],
        vision=raw["vision"],
        language=raw["language"],
        caption_items=raw["caption_items"],
        instruct_items=raw["instruct_items"],
        checkpoints=raw["checkpoints"],
        runs=tuple(runs),
        raw=raw,
        mixture=dict(raw.get("mixture") or {}),
        curriculum=curriculum,
        answer_tokens=int(raw.get("answer_tokens", ANSWER_TOKENS)),
    )
