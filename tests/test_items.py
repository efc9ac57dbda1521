"""Per-item ground truth at the predictor's boundary: headcast's own table, lmms-eval sample logs, checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.extract.evaluate import items_path, scores_of, write_items, write_scores
from headcast.predictor.score_tables import check_items_match_scores
from headcast.predictor.scores import read_items, read_scores
from headcast.schema import ITEM_COLUMNS

LMMS_EVAL = Path(__file__).parent / "data" / "lmms-eval"  # real lmms-eval 0.7.3 output, see its README
ROWS = [
    dict(zip(ITEM_COLUMNS, row, strict=True))
    for row in [
        ("run-a/100", "count", "c1", True, "2", 0.8, 0.9),
        ("run-a/100", "count", "c2", False, "None", 0.1, 0.7),
        ("run-a/100", "pope", "p1", True, "yes", np.nan, 0.6),
        ("run-b/200", "count", "c1", True, "2", 0.7, 0.8),
    ]
]
HEADER = "checkpoint,benchmark,item,correct,answer,prob,confidence\n"


def refuses(match: str, path: Path) -> str:
    """`read_items(path)` fails with a one-line message matching `match`; the message."""
    with pytest.raises(HeadcastError, match=match) as err:
        read_items(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "items.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_write_items_round_trips_through_read_items_and_matches_its_scores(tmp_path):
    path = write_items(ROWS, items_path(tmp_path / "scores.csv"))
    table = read_items(path)
    expected = pd.DataFrame(ROWS).astype({"correct": int})
    pd.testing.assert_frame_equal(table, expected[ITEM_COLUMNS], check_dtype=False)
    scores = read_scores(write_scores(scores_of(ROWS), tmp_path / "scores.csv"))
    check_items_match_scores(table, scores)


def test_a_csv_without_answers_or_probabilities_keeps_ids_as_text(tmp_path):
    table = read_items(
        csv(tmp_path, "checkpoint,benchmark,item,correct\nrun/1,count,007,true\nrun/1,count,NA,0\n")
    )
    assert table["item"].tolist() == ["007", "NA"] and table["correct"].tolist() == [1, 0]
    assert table["answer"].eq("").all() and table[["prob", "confidence"]].isna().all().all()


def test_a_table_without_an_item_column_is_refused(tmp_path):
    refuses(
        r"lacks column\(s\) item; a per-item table needs",
        csv(tmp_path, "checkpoint,benchmark,correct\na,b,1\n"),
    )


def test_correct_other_than_0_1_true_false_names_the_row(tmp_path):
    path = csv(tmp_path, HEADER + "a/1,count,c1,1,2,0.5,0.5\na/1,count,c2,maybe,2,0.5,0.5\n")
    refuses(r"row 2 \(a/1, count, item c2\) has correct='maybe'; correct must be 0/1 or true/false", path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("1.5,0.5", r"prob=1\.5; a probability lies in \[0, 1\]"),
        ("0.5,-0.1", r"confidence=-0\.1; a probability lies in \[0, 1\]"),
        ("high,0.5", r"prob='high'; use a number in \[0, 1\]"),
    ],
)
def test_probabilities_outside_0_1_are_refused_but_blanks_are_not(tmp_path, row, problem):
    path = csv(tmp_path, HEADER + "a/1,count,c1,1,2,,\n" + f"a/1,count,c2,0,3,{row}\n")
    refuses(rf"row 2 \(a/1, count, item c2\) has {problem}", path)


def test_an_item_twice_is_refused(tmp_path):
    path = csv(tmp_path, HEADER + "a/1,count,c1,1,2,,\na/1,count,c2,1,2,,\na/1,count,c1,0,3,,\n")
    refuses(r"2 rows repeat a \(checkpoint, benchmark, item\), first a/1, count, item c1; keep one", path)


def test_an_empty_table_is_refused(tmp_path):
    refuses(r"items\.csv has no rows", csv(tmp_path, HEADER))


def test_unreadable_files_are_refused(tmp_path):
    refuses("does not exist", tmp_path / "missing.parquet")
    (tmp_path / "items.parquet").write_bytes(b"checkpoint,benchmark\n")
    refuses(r"items\.parquet is not a readable Parquet file \(.*magic bytes", tmp_path / "items.parquet")
    (tmp_path / "latin.csv").write_bytes(HEADER.encode() + "a/1,count,c1,1,größer,,\n".encode("latin-1"))
    refuses(r"latin\.csv is not UTF-8 text", tmp_path / "latin.csv")
    folder = shutil.copytree(LMMS_EVAL / "results-with-samples", tmp_path / "lmms")
    (log,) = folder.rglob("*_samples_zoo_spatial.jsonl")
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = '{"doc_id": 2, "exact_match": \n'
    log.write_text("".join(lines))
    refuses(r"samples_zoo_spatial\.jsonl:3 is not valid JSON", folder)


def test_lmms_eval_sample_logs_become_items_that_match_the_scores_of_the_same_folder():
    folder = LMMS_EVAL / "results-with-samples"
    items = read_items(folder)
    per_task = items.groupby("benchmark")["correct"].agg(["size", "sum"]).to_dict("index")
    assert per_task == {
        "zoo_attribute": {"size": 64, "sum": 64},
        "zoo_count_object": {"size": 64, "sum": 37},
        "zoo_pope_random": {"size": 64, "sum": 22},
        "zoo_pope_random_builtin": {"size": 64, "sum": 22},
        "zoo_spatial": {"size": 64, "sum": 62},
    }
    assert set(items["checkpoint"]) == {"llava-llama-2x2/001600"}  # `pretrained=`, not the folder name
    first = items.set_index(["benchmark", "item"]).loc[("zoo_spatial", "0")]
    assert (first["correct"], first["answer"]) == (1, "left")
    assert items[["prob", "confidence"]].isna().all().all()
    check_items_match_scores(items, read_scores(folder))


def test_a_partial_lmms_eval_run_is_refused():
    refuses(
        r"20261122_141941_results\.json is a partial run \(limit 16\.0\): a --limit run covers only part "
        "of the benchmark",
        LMMS_EVAL / "results-limit16",
    )


def test_a_samples_log_needs_its_runs_results_json(tmp_path):
    folder = shutil.copytree(LMMS_EVAL / "results-with-samples", tmp_path / "lmms")
    next(folder.rglob("*_results.json")).unlink()
    refuses(r"samples_zoo_attribute\.jsonl has no 20261122_141016_results\.json beside it", folder)


def test_items_and_scores_of_different_runs_are_refused():
    folder = LMMS_EVAL / "results-with-samples"
    items, scores = read_items(folder), read_scores(folder)
    spatial = scores["benchmark"] == "zoo_spatial"
    with pytest.raises(
        HeadcastError,
        match=r"llava-llama-2x2/001600 on zoo_spatial: the per-item results give "
        r"96\.88% correct but the score is 95\.00; .* come from different runs",
    ):
        check_items_match_scores(items, scores.assign(score=scores["score"].mask(spatial, 95.0)))
    check_items_match_scores(items, scores.assign(score=scores["score"].mask(spatial, 97.0)))  # 2 decimals
    with pytest.raises(
        HeadcastError,
        match=r"1 \(checkpoint, benchmark\) pair\(s\) have per-item results but "
        "no score: llava-llama-2x2/001600 on zoo_spatial",
    ):
        check_items_match_scores(items, scores[~spatial])
    other = scores[spatial].assign(checkpoint="llava-llama-2x2/000800")
    with pytest.raises(HeadcastError, match="have scores but no per-item results: llava-llama-2x2/000800 on"):
        check_items_match_scores(items, pd.concat([scores, other]))
