"""Anchor items: the k items of a benchmark that best stand for all of it, and their probe file.

tinyBenchmarks' choice: cluster the items by their correctness vectors over the training
checkpoints (items that the same checkpoints get right land together), take from each cluster the
item nearest its centre, and weigh it by the cluster's share of the benchmark. A checkpoint's
weighted accuracy on the anchors then estimates its accuracy on every item.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from headcast.errors import HeadcastError
from headcast.extract import read_probes
from headcast.files import atomic_output


def choose_anchors(correct: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`k` anchor item indices and their weights (summing to 1) from `correct` [checkpoints, items]."""
    n_items = correct.shape[1]
    k = min(k, n_items)
    points = np.asarray(correct, dtype=float).T
    with warnings.catch_warnings():  # fewer distinct correctness vectors than k: some clusters repeat
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points)
    distances = kmeans.transform(points)  # [items, clusters]
    anchors, weights, taken = [], [], set()
    for cluster in range(k):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        if members.size == 0:
            continue
        for item in np.argsort(distances[:, cluster]):  # nearest free item to the centre
            if item not in taken:
                taken.add(item)
                anchors.append(item)
                weights.append(members.size)
                break
    shares = np.asarray(weights, dtype=float)
    return np.asarray(anchors, dtype=int), shares / shares.sum()


def suite_items(suite: Path, benchmark: str, ids: Sequence[str]) -> dict:
    """`benchmark`'s probes in the suite folder, by id; every one of `ids` must be there, or the anchors
    (static or adaptive) were chosen on another suite."""
    source = Path(suite) / f"{benchmark}.jsonl"
    if not source.is_file():
        raise HeadcastError(
            f"no benchmark file {source} for anchors of {benchmark!r}; pass the suite folder of the fit"
        )
    by_id = {probe.id: probe for probe in read_probes(source)}
    missing = [item for item in ids if item not in by_id]
    if missing:
        raise HeadcastError(
            f"anchor item {missing[0]!r} of {benchmark!r} is not in {source}; "
            "the anchors were chosen on another suite"
        )
    return by_id


def write_anchor_probes(anchors: Mapping[str, Sequence[str]], suite: str | Path, out: str | Path) -> Path:
    """One probe JSONL holding each benchmark's anchor items (answers, boxes and all), task = benchmark.

    `suite` is the folder of `<benchmark>.jsonl` files the items come from; image paths are
    rewritten relative to `out`, so the file runs as a probe set where it is written.
    """
    suite, out = Path(suite), Path(out)
    lines = []
    for benchmark, items in anchors.items():
        by_id = suite_items(suite, benchmark, items)
        for item in items:
            probe = by_id[item]
            line: dict[str, object] = {
                "id": probe.id,
                "image": Path(os.path.relpath(probe.image, out.parent.resolve())).as_posix(),
                "question": probe.question,
                "answer": probe.answer,
                "task": benchmark,
            }
            if probe.box is not None:
                line["box"] = list(probe.box)
            lines.append(json.dumps(line))
    with atomic_output(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def read_anchor_probes(path: str | Path) -> list:
    """The anchor probe file: every item must carry its answer and its benchmark (`task`)."""
    probes = read_probes(path)
    unlabelled = next((p.id for p in probes if p.answer is None or p.task is None), None)
    if unlabelled is not None:
        raise HeadcastError(
            f"{path}: item {unlabelled!r} has no answer or task; pass the file written by "
            "'headcast fit --anchors-out'"
        )
    return probes
