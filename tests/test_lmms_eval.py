"""lmms-eval output as it really is: absolute paths, partial runs, reruns, provenance, scales."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from headcast.errors import HeadcastError
from headcast.predictor.checkpoints import match_checkpoints, rename_checkpoints
from headcast.predictor.scores import read_items, read_scores

LMMS_EVAL = Path(__file__).parent / "data" / "lmms-eval"  # real lmms-eval 0.7.3 output, see its README
ZOO_SCORES = {  # the small zoo's own scores of two checkpoints (64 items per benchmark when it was run)
    ("llava-llama-2x2-800/000160", "zoo_pope_random"): 50.0,
    ("llava-llama-2x2/001600", "zoo_spatial"): 96.875,
}


def refuses(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(HeadcastError, match=match) as err:
        call(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def with_pretrained(folder: Path, rewrite) -> Path:
    """`folder` with each `pretrained=` path passed through `rewrite`, as another run would name it."""
    for file in folder.rglob("*_results.json"):
        report = json.loads(file.read_text())
        args = dict(part.split("=", 1) for part in report["config"]["model_args"].split(","))
        args["pretrained"] = rewrite(args["pretrained"])
        report["config"]["model_args"] = ",".join(f"{k}={v}" for k, v in args.items())
        file.write_text(json.dumps(report))
    return folder


def test_all_seventy_checkpoints_read_as_percent_scores_with_their_provenance():
    scores = read_scores(LMMS_EVAL / "results-all")
    assert len(scores) == 140 and scores["checkpoint"].nunique() == 70
    assert set(scores["benchmark"]) == {"zoo_pope_random", "zoo_spatial"}
    table = scores.set_index(["checkpoint", "benchmark"])
    for key, score in ZOO_SCORES.items():
        if key in table.index:
            assert table.loc[key, "score"] == pytest.approx(score)
    row = table.loc[("llava-llama-2x2-800/000160", "zoo_pope_random")]
    assert row["metric"] == "exact_match,none" and row["n"] == 64 and pd.isna(row["limit"])
    assert row["date"] == "20261122_141141"
    assert row["source"] == "llava-llama-2x2-800__000160/20261122_141141_results.json"
    assert row["harness"] == "lmms-eval"
    assert row["harness_version"].startswith("unknown (the report says 'unknown@unknown'")
    assert scores["score"].between(0, 100).all() and scores["score"].max() > 1


def test_a_partial_run_beside_a_full_one_is_refused_unless_asked_and_never_averaged(tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(LMMS_EVAL / "results-with-samples", folder / "full")
    shutil.copytree(LMMS_EVAL / "results-limit16", folder / "limit16")
    refuses(
        r"come from partial runs \(--limit\), first limit16/.*\(limit 16.*--allow-partial",
        read_scores,
        folder,
    )
    scores = read_scores(folder, allow_partial=True).set_index("benchmark")
    assert scores.loc["zoo_pope_random", "score"] == pytest.approx(34.375)  # the full run, not 39.1
    assert (scores["limit"].isna()).all() and (scores["n"] == 64).all()
    items = read_items(folder, allow_partial=True)
    assert len(items) == 5 * 64  # the partial run's items are left out


def test_a_partial_run_alone_is_used_when_asked_and_says_so():
    scores = read_scores(LMMS_EVAL / "results-limit16", allow_partial=True)
    assert (scores["limit"] == 16).all() and (scores["n"] == 16).all()


def test_a_checkpoint_scored_twice_names_both_runs_or_keeps_the_latest(tmp_path):
    folder = tmp_path / "results"
    first = shutil.copytree(LMMS_EVAL / "results-with-samples", folder / "monday")
    later = shutil.copytree(LMMS_EVAL / "results-with-samples", folder / "tuesday")
    (report,) = later.rglob("*_results.json")
    data = json.loads(report.read_text())
    data["date"] = "20261123_090000"
    data["results"]["zoo_spatial"]["exact_match,none"] = 0.5
    report.write_text(json.dumps(data))
    message = refuses(r"llava-llama-2x2/001600 on zoo_attribute is scored 2 times", read_scores, folder)
    assert "monday/" in message and "tuesday/" in message and "--keep-latest" in message
    latest = read_scores(folder, keep_latest=True).set_index("benchmark")
    assert len(latest) == 5 and latest.loc["zoo_spatial", "score"] == 50.0
    refuses(r"rows repeat a \(checkpoint, benchmark, item\)", read_items, folder)
    assert len(read_items(folder, keep_latest=True)) == 5 * 64
    assert first.exists()


def test_the_scale_is_decided_per_metric_not_per_value(tmp_path):
    folder = shutil.copytree(LMMS_EVAL / "results-all", tmp_path / "results")
    reports = sorted(folder.rglob("*_results.json"))
    for index, file in enumerate(reports[:3]):  # a percent-scale metric on which one model scores 0.8
        data = json.loads(file.read_text())
        data["results"]["zoo_spatial"] = {"gpt_eval_score,none": [0.8, 40.0, 75.0][index]}
        file.write_text(json.dumps(data))
    scores = read_scores(folder)
    percent = scores[scores["metric"] == "gpt_eval_score,none"]["score"]
    assert sorted(percent) == [0.8, 40.0, 75.0]
    data = json.loads(reports[0].read_text())
    data["results"]["zoo_spatial"] = {"gpt_eval_score,none": 1500.0}
    reports[0].write_text(json.dumps(data))
    refuses(
        r"task 'zoo_spatial' reports 'gpt_eval_score,none' from 40 to 1500, not a fraction",
        read_scores,
        folder,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a/1,count,150\n", r"scores\.csv:2: score 150 is not a percentage"),
        ("a/1,count,-5\n", r"scores\.csv:2: score -5 is not a percentage"),
        ("a/1,count,50\na/1,count,60\n", r"a/1 on count is scored 2 times \(50 in scores\.csv, 60 in"),
    ],
)
def test_a_score_csv_with_impossible_or_conflicting_scores_is_refused(tmp_path, text, problem):
    path = tmp_path / "scores.csv"
    path.write_text("checkpoint,benchmark,score\n" + text)
    refuses(problem, read_scores, path)


def test_a_score_written_twice_alike_counts_once(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("checkpoint,benchmark,score\na/1,count,50\na/1,count,50\n")
    assert len(read_scores(path)) == 1


def test_absolute_pretrained_paths_match_features_named_relative_to_the_checkpoint_root(tmp_path):
    root = tmp_path / "checkpoints"
    folder = with_pretrained(
        shutil.copytree(LMMS_EVAL / "results-all", tmp_path / "results"), lambda name: str(root / name)
    )
    scores = read_scores(folder)
    names = sorted({name.removeprefix(f"{root}/") for name in scores["checkpoint"]})
    renamed = rename_checkpoints(scores, names, root)
    assert sorted(set(renamed["checkpoint"])) == names
    message = refuses(r"70 checkpoint\(s\) have features but no scores", rename_checkpoints, scores, names)
    assert (
        f"pass --checkpoint-root {root} " in message
        and "70 score checkpoint(s) match no feature row" in message
    )


def test_names_match_through_symlinks_and_relative_names_match_verbatim(tmp_path):
    real = tmp_path / "real"
    (real / "run" / "10").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    assert match_checkpoints([str(tmp_path / "link/run/10")], ["run/10"], real) == {
        str(tmp_path / "link/run/10"): "run/10"
    }
    assert match_checkpoints(["./run/10/", "run/11"], ["run/10"]) == {"./run/10/": "run/10"}
    refuses(
        "feature rows 'run/10' and 'run/./10' are the same checkpoint",
        match_checkpoints,
        ["run/10"],
        ["run/10", "run/./10"],
    )
