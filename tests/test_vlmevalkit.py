"""VLMEvalKit results in: files written in the layout its `run.py` and dataset classes write.

No VLMEvalKit run is possible here (it downloads its datasets), so the files are made with pandas and
openpyxl in that layout: `<model>/<model>_<dataset>.xlsx` predictions, `_exact_matching_result.xlsx`
with `hit` and `_acc.csv` with `split, Overall` for multiple choice, `_auxmatch.xlsx` with `score` and
`_score.csv` for yes/no.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.score_tables import check_items_match_scores
from headcast.predictor.scores import read_items, read_scores

pytest.importorskip("openpyxl", reason="reading .xlsx needs openpyxl (pip install 'headcast[vlmevalkit]')")


def write_model(root: Path, model: str, hits: list[int], yes_no: list[bool], missing: int = 0) -> Path:
    """One model's VLMEvalKit work folder: an MCQ dataset (MMStar) and a yes/no one (POPE)."""
    folder = root / model
    folder.mkdir(parents=True)
    index = list(range(100, 100 + len(hits)))
    predictions = ["A" if h else "B" for h in hits]
    predictions[: len(predictions) if missing > len(predictions) else missing] = [None] * missing
    mcq = pd.DataFrame({"index": index, "question": "q?", "A": "x", "B": "y", "answer": "A"})
    mcq.assign(prediction=predictions).to_excel(folder / f"{model}_MMStar.xlsx", index=False)
    result = mcq.assign(prediction=["A" if h else "B" for h in hits], hit=hits, split="none")
    result.to_excel(folder / f"{model}_MMStar_exact_matching_result.xlsx", index=False)
    pd.DataFrame({"split": ["none"], "Overall": [sum(hits) / len(hits)]}).to_csv(
        folder / f"{model}_MMStar_acc.csv", index=False
    )
    pope = pd.DataFrame({"index": range(len(yes_no)), "question": "is there?", "answer": "Yes"})
    pope = pope.assign(prediction=["Yes" if y else "No" for y in yes_no])
    pope.to_csv(folder / f"{model}_POPE.tsv", sep="\t", index=False)
    pope.assign(extracted=pope["prediction"], score=yes_no).to_excel(
        folder / f"{model}_POPE_auxmatch.xlsx", index=False
    )
    overall = 100 * sum(yes_no) / len(yes_no)
    pd.DataFrame({"split": ["Overall"], "Overall": [overall]}).to_csv(
        folder / f"{model}_POPE_score.csv", index=False
    )
    return folder


def test_scores_and_items_are_read_with_their_provenance_and_agree(tmp_path):
    write_model(tmp_path, "llava-a", [1, 0, 1, 1], [True, False])
    write_model(tmp_path, "llava-b", [0, 0, 1, 0], [True, True])
    scores = read_scores(tmp_path).set_index(["checkpoint", "benchmark"])
    assert scores.loc[("llava-a", "MMStar"), "score"] == pytest.approx(75.0)
    assert scores.loc[("llava-b", "POPE"), "score"] == pytest.approx(100.0)
    assert set(scores["harness"]) == {"VLMEvalKit"} and set(scores["metric"]) == {"Overall"}
    assert scores.loc[("llava-a", "MMStar"), "source"] == "llava-a/llava-a_MMStar_acc.csv"

    items = read_items(tmp_path)
    mmstar = items[(items["checkpoint"] == "llava-a") & (items["benchmark"] == "MMStar")]
    assert mmstar["item"].tolist() == ["100", "101", "102", "103"]  # VLMEvalKit's index
    assert mmstar["correct"].tolist() == [1, 0, 1, 1] and mmstar["answer"].tolist() == ["A", "B", "A", "A"]
    pope = items[(items["checkpoint"] == "llava-a") & (items["benchmark"] == "POPE")]
    assert pope["correct"].tolist() == [1, 0]
    check_items_match_scores(items, read_scores(tmp_path))  # the same runs: no complaint


def test_a_partial_run_is_refused_unless_allowed(tmp_path):
    write_model(tmp_path, "llava-a", [1, 0, 1, 1], [True, False], missing=1)
    with pytest.raises(HeadcastError, match=r"partial run: 1 of 4 item\(s\) have no prediction"):
        read_scores(tmp_path)
    with pytest.raises(HeadcastError, match="partial run"):
        read_items(tmp_path)
    assert len(read_scores(tmp_path, allow_partial=True)) == 2


def test_a_model_and_dataset_found_twice_is_refused_unless_the_latest_is_asked_for(tmp_path):
    write_model(tmp_path / "old", "llava-a", [1, 0, 1, 1], [True, False])
    newer = write_model(tmp_path / "new", "llava-a", [1, 1, 1, 1], [True, True])
    for file in newer.iterdir():
        os.utime(file, (2_000_000_000, 2_000_000_000))
    with pytest.raises(HeadcastError, match="scored 2 times"):
        read_scores(tmp_path)
    with pytest.raises(HeadcastError, match="per-item results twice"):
        read_items(tmp_path)
    latest = read_scores(tmp_path, keep_latest=True).set_index("benchmark")["score"]
    assert latest["MMStar"] == pytest.approx(100.0)
    items = read_items(tmp_path, keep_latest=True)
    assert items[items["benchmark"] == "MMStar"]["correct"].tolist() == [1, 1, 1, 1]


def test_a_damaged_spreadsheet_is_one_line(tmp_path):
    folder = write_model(tmp_path, "llava-a", [1, 0], [True])
    (folder / "llava-a_MMStar_exact_matching_result.xlsx").write_bytes(b"not a zip file")
    with pytest.raises(HeadcastError, match="is not a readable VLMEvalKit table"):
        read_items(tmp_path)
