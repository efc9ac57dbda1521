"""The names every stage agrees on: versions, query positions, metric and column names, thresholds.

Torch-free and stage-free: extraction writes these names, the predictor and the service read them,
and a mismatch between the two is what the extraction contract (`headcast.contract`) refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal, cast

from headcast.errors import HeadcastError

FEATURE_SCHEMA_VERSION = "headcast-features/2"
METRICS_VERSION = "2"  # bump when the recorded numbers change meaning (2: answers cached too)

# The query row whose attention is recorded: the last prompt token (where the first answer token is
# predicted), the first generated token, or the mean over the gold answer's tokens.
QueryPosition = Literal["last-prompt", "first-generated", "answer-mean"]
QUERY_POSITIONS: tuple[QueryPosition, ...] = ("last-prompt", "first-generated", "answer-mean")


def query_position(name: str) -> QueryPosition:
    """`name` as a query position; any other name is refused with the ones there are."""
    if name not in QUERY_POSITIONS:
        raise HeadcastError(f"unknown query position {name!r}; use one of {', '.join(QUERY_POSITIONS)}")
    return cast(QueryPosition, name)


METRICS: tuple[str, ...] = ("visual_mass", "text_mass", "region_mass", "concentration")  # recorded per head
DEPTH_BINS = 4
HEAD_PREFIXES: tuple[str, ...] = ("all.", *(f"depth{b}." for b in range(DEPTH_BINS)))
CONFIDENCE_PREFIX = "confidence."
# Average thresholded confidence (Garg et al. 2022) predicts accuracy as the share of items whose
# confidence clears a threshold fitted on labelled models; the shares over a grid of thresholds let
# the predictor fit that threshold (or a blend of them) inside its training folds.
CONFIDENCE_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)

# Every short answer of a benchmark suite fits in this many generated tokens (yes/no, a number, a word).
ANSWER_TOKENS = 4

CONTRACT_COLUMN = "contract"  # a feature row's extraction contract, compact JSON
PER_HEAD_COLUMNS = ["checkpoint", "layer", "head", *METRICS, "visual_head_rate"]
ANSWER_COLUMNS = ("item", "task", "answer", "correct", "prob", "confidence")  # per probe, first token
SCORE_COLUMNS = ("checkpoint", "benchmark", "score", "n")  # a score table, score in percent
SCORE_KEY = ["checkpoint", "benchmark"]  # a score
ITEM_KEY = ["checkpoint", "benchmark", "item"]  # a per-item result
ITEM_COLUMNS = [*ITEM_KEY, "correct", "answer", "prob", "confidence"]


@dataclasses.dataclass(frozen=True)
class VisualHeadThresholds:
    """A head is visual on a sample when its visual mass and its concentration both clear these."""

    visual_mass: float = 0.25
    concentration: float = 0.2


def head_feature_columns(columns: Iterable[str]) -> list[str]:
    """The attention (head) features among `columns`, in their order; the predictor uses the groups apart."""
    return [c for c in columns if c.startswith(HEAD_PREFIXES)]


def confidence_feature_columns(columns: Iterable[str]) -> list[str]:
    """The label-free answer-confidence features among `columns`, in their order."""
    return [c for c in columns if c.startswith(CONFIDENCE_PREFIX)]
