"""`headcast report` on a three-run smoke zoo: Markdown with figures, numbers from the data, MLflow."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from headcast.cli import build_parser
from headcast.errors import HeadcastError
from headcast.experiments.layout import ZooLayout
from headcast.experiments.report import (
    THIRDS,
    ReportSettings,
    ablation_results,
    depth_profile,
    head_sets,
    rank_heads,
    read_zoo,
    settings_from_yaml,
)
from headcast.experiments.report.collect import ablation_means
from headcast.experiments.zoo import build


def report(*argv: str) -> int:
    args = build_parser().parse_args(["report", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """The smoke preset plus a third, low-data run: held-out error needs three runs."""
    raw = yaml.safe_load(resources.files("experiments").joinpath("configs", "smoke.yaml").read_text())
    raw["runs"].append({"name": "llava-llama-2x2-data64", "data": 64})
    config = tmp_path_factory.mktemp("config") / "smoke3.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path_factory.mktemp("zoo")
    build(str(config), out, seed=0)
    return out


@pytest.fixture(scope="module")
def written(zoo, tmp_path_factory):
    """The report, written once, with MLflow in a folder of its own."""
    store = tmp_path_factory.mktemp("store")
    patch = pytest.MonkeyPatch()
    patch.chdir(store)
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out, markdown = store / "figures", store / "docs" / "report.md"
    args = ["--zoo", zoo, "--out", out, "--markdown", markdown, "--k", "1", "2", "--seeds", "3"]
    assert report(*args, "--probe-sizes", "4", "16", "--probe-draws", "2", "--quiet") == 0
    yield out, markdown.read_text(), store
    patch.undo()


def test_report_answers_every_claim_with_a_verdict(written):
    _, text, _ = written
    verdicts = re.findall(r"\| ([^|]+) \| \*\*([^*]+)\*\* \|", text)
    assert len(verdicts) == 8
    allowed = {
        "holds",
        "does not hold",
        "mixed",
        "not testable here",
        "falls with more probes",
        "rises with more probes",
        "flat (within the spread over draws)",
    }
    assert {v for _, v in verdicts} <= allowed
    assert "## Closing note" in text and "n/a% " not in text


def test_figures_are_written_and_linked_relative_to_the_markdown(written):
    out, text, _ = written
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 6
    for link in links:
        assert link.startswith("../figures/") and (out / Path(link).name).stat().st_size > 1000


def test_numbers_in_the_text_come_from_the_measured_tables(written):
    out, text, _ = written
    ablation = pd.read_csv(out / "ablation.csv")
    baseline = ablation[ablation["kind"] == "none"].groupby("run")["accuracy"].mean()
    for run, value in baseline.items():
        assert f"| {run} | {value:.1f} | 1 |" in text
    curve = pd.read_csv(out / "probe_size.csv")
    assert sorted(curve["probes"].unique()) == [4, 16] and curve["draw"].nunique() == 2
    mean_16 = curve[curve["probes"] == 16].groupby("draw")["mae"].mean().mean()
    assert f"16 probes {mean_16:.2f}" in text


def test_figures_and_markdown_are_logged_to_one_mlflow_run(written):
    from headcast.predictor.tracking import configure_tracking

    _, _, store = written
    patch = pytest.MonkeyPatch()
    patch.chdir(store)
    configure_tracking()
    client = MlflowClient()
    experiment = client.get_experiment_by_name("headcast-report")
    (run,) = client.search_runs([experiment.experiment_id])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    patch.undo()
    assert "report.md" in names and "figures/probe_size.png" in figures and len(figures) == 6
    assert any(key.startswith("ablation_change") for key in run.data.metrics)


def test_mean_ablation_from_a_settings_file_replaces_heads_by_their_mean_over_the_zoo_probes(zoo, tmp_path):
    from headcast.extract.loading import load_checkpoint

    path = tmp_path / "report.yaml"
    path.write_text("mode: mean\nks: [1]\nseeds: 1\n")
    settings = settings_from_yaml(path)
    table = read_zoo(zoo)
    finals = list(table.finals().values())
    per_head = pd.DataFrame(  # the smoke preset's models: 2 layers x 2 heads
        [
            {"checkpoint": c, "layer": layer, "head": head, "visual_head_rate": 0.0}
            | {"visual_mass": 0.1 * (layer + head), "concentration": 0.5}
            for c in finals
            for layer in range(2)
            for head in range(2)
        ]
    )
    result = ablation_results(table, per_head, settings, progress=False)
    kinds = {"none", "top-k visual", "random", "random, same layers", "late layers", "early layers"}
    assert set(result["kind"]) == kinds and result["accuracy"].notna().all()
    means = ablation_means(load_checkpoint(table.folder(finals[0]), device="cpu"), table, settings)
    assert sorted(means) == [0, 1] and all(
        m.shape[0] == 2 and float(m.abs().sum()) > 0 for m in means.values()
    )
    assert ablation_means(None, table, ReportSettings(mode="zero")) is None


def test_ablations_on_a_subset_score_the_first_items_as_the_evaluator_did(zoo):
    """`ablation_items: n`: the unablated accuracy is the zoo's own per-item result on those n items."""
    table = read_zoo(zoo)
    finals = list(table.finals().values())
    per_head = pd.DataFrame(
        [
            {"checkpoint": c, "layer": layer, "head": head, "visual_head_rate": 0.0}
            | {"visual_mass": 0.1, "concentration": 0.5}
            for c in finals
            for layer in range(2)
            for head in range(2)
        ]
    )
    settings = ReportSettings(ks=(1,), seeds=1, ablation_items=3)
    result = ablation_results(table, per_head, settings, progress=False)
    items = pd.read_parquet(ZooLayout(zoo).items)
    items = items[items["checkpoint"].isin(finals)]
    first = items.groupby(["checkpoint", "benchmark"], sort=False).head(3)
    expected = first.groupby(["checkpoint", "benchmark"])["correct"].mean() * 100
    unablated = result[result["kind"] == "none"].set_index(["checkpoint", "benchmark"])["accuracy"]
    pd.testing.assert_series_equal(
        unablated.sort_index(), expected.sort_index(), check_names=False, check_dtype=False
    )


def test_top_visual_heads_come_first_and_controls_match_their_size_and_layers():
    per_head = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(4), 4),
            "head": np.tile(np.arange(4), 4),
            "visual_head_rate": [0.0] * 14 + [0.9, 0.6],
            "visual_mass": np.linspace(0.1, 0.9, 16),
            "concentration": 0.5,
        }
    )
    assert rank_heads(per_head)[:3] == [(3, 2), (3, 3), (3, 1)]  # rate first, then mass x concentration
    sets = head_sets(per_head, ReportSettings(ks=(1, 2, 4, 8, 16), seeds=3))
    top = {s["k"]: set(s["heads"]) for s in sets if s["kind"] == "top-k visual"}
    assert sorted(top) == [1, 2, 4, 8]  # k at most half of the 16 heads
    controls = [s for s in sets if s["kind"].startswith("random")]
    assert len(controls) == 4 * 3 * 2 and all(len(set(s["heads"])) == s["k"] for s in controls)
    same = [s for s in controls if s["kind"] == "random, same layers"]
    assert not set(same[0]["heads"]) & top[1] and {layer for layer, _ in same[0]["heads"]} == {3}
    late = next(s for s in sets if s["kind"] == "late layers")
    early = next(s for s in sets if s["kind"] == "early layers")
    assert {layer for layer, _ in late["heads"]} == {3} and {layer for layer, _ in early["heads"]} == {0}


def test_depth_profile_counts_visual_heads_per_third():
    per_head = pd.DataFrame(
        {
            "checkpoint": "run/000010",
            "layer": np.repeat(np.arange(6), 2),
            "head": np.tile(np.arange(2), 6),
            "visual_head_rate": [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        }
    )
    profile = depth_profile(per_head, visual_rate=0.5).set_index("third")
    assert profile.loc[list(THIRDS), "visual"].tolist() == [3, 0, 1]
    assert profile.loc["early", "fraction"] == 0.75 and profile.loc["late", "share"] == 0.25


def test_a_folder_that_is_not_a_zoo_is_a_one_line_error(tmp_path):
    with pytest.raises(HeadcastError, match="headcast zoo build"):
        report("--zoo", tmp_path, "--out", tmp_path / "out", "--no-mlflow")
