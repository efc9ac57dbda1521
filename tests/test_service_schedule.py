"""POST /schedule: a run's checkpoints posted in turn get the scheduler's decisions; bad input is 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from headcast.predictor import build_dataset
from headcast.predictor.schedule import fit_scheduler
from headcast.predictor.service import create_app
from tests.predictor_data import synthetic_tables
from tests.test_service import champion_store


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = champion_store(tmp_path_factory)
    scheduler = fit_scheduler(build_dataset(*synthetic_tables(n_runs=4)), 2, estimator="ridge")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        app = create_app(roots=[store], scheduler=scheduler)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def run_rows():
    features, scores = synthetic_tables(n_runs=5, seed=3)
    last = features[features["checkpoint"].str.startswith("run4/")]
    wide = scores.pivot_table(index="checkpoint", columns="benchmark", values="score")
    return [
        (int(name.split("/")[1]), row.drop(["checkpoint"]).to_dict(), wide.loc[name].to_dict())
        for name, (_, row) in zip(last["checkpoint"], last.iterrows(), strict=True)
    ]


def test_a_run_posted_checkpoint_by_checkpoint_spends_its_budget_and_uses_the_scores_sent_back(
    client, run_rows
):
    real: dict[str, dict[str, float]] = {}
    answers = []
    for step, features, scores in run_rows:
        body = {"run": "r1", "step": step, "checkpoints": len(run_rows), "features": features, "scores": real}
        answer = client.post("/schedule", json=body)
        assert answer.status_code == 200, answer.text
        decision = answer.json()
        assert decision["step"] == step and decision["reason"]
        assert set(decision["estimate"]) == {"count", "pope"} and "ood" in decision["prediction"]["count"]
        if decision["evaluate"]:
            real[str(step)] = scores  # the client ran the benchmarks and sends the scores with its next post
        answers.append(decision)
    assert sum(a["evaluate"] for a in answers) == 2 and answers[-1]["budget_left"] == 0
    first = next(i for i, a in enumerate(answers) if a["evaluate"])
    assert answers[first]["estimator"] == "label-free"
    assert len({a["estimator"] for a in answers[first + 1 :]}) == 1


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"features": {"all.visual_mass.mean": "high"}}, 422, "must be a number"),
        ({"features": {"bogus": 1.0}}, 422, "unknown feature column"),
        ({"step": -1}, 422, "step"),
        ({"checkpoints": 0}, 422, "checkpoints"),
        ({"scores": {"10": {"count": 140.0}}}, 422, "percentage"),
        ({"scores": {"7": {"count": 40.0, "pope": 60.0}}}, 422, "no checkpoint at step 7"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_bad_schedule_requests_are_4xx_in_one_line(client, run_rows, change, status, words):
    step, features, _ = run_rows[0]
    body = {"run": f"bad-{words}", "step": step, "checkpoints": 5, "features": features} | change
    answer = client.post("/schedule", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"] and "\n" not in answer.json()["error"]


def test_a_run_goes_forward_only_and_keeps_its_checkpoint_count(client, run_rows):
    step, features, _ = run_rows[0]
    body = {"run": "r2", "step": step, "checkpoints": 5, "features": features}
    assert client.post("/schedule", json=body).status_code == 200
    again = client.post("/schedule", json=body)
    assert again.status_code == 409 and "past step" in again.json()["error"]
    other = client.post("/schedule", json=body | {"step": step + 1, "checkpoints": 6})
    assert other.status_code == 409 and "checkpoints=5" in other.json()["error"]


def test_a_service_without_a_scheduler_says_so(tmp_path_factory, run_rows):
    store = champion_store(tmp_path_factory)
    step, features, _ = run_rows[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with TestClient(create_app(roots=[store]), raise_server_exceptions=False) as plain:
            body = {"run": "r", "step": step, "checkpoints": 5, "features": features}
            answer = plain.post("/schedule", json=body)
    assert answer.status_code == 409 and "schedules no evaluations" in answer.json()["error"]


def test_serve_learns_its_scheduler_from_the_tables_it_is_given(tmp_path_factory, run_rows):
    import httpx

    from headcast.tables import write_features
    from tests.servers import start_serve, stop

    store, folder = champion_store(tmp_path_factory), tmp_path_factory.mktemp("schedule-tables")
    features, scores = synthetic_tables(n_runs=4)
    write_features(
        features, {c: {"n_probes": 32} for c in features["checkpoint"]}, folder / "features.parquet"
    )
    scores.to_csv(folder / "scores.csv", index=False)
    flags = ["--schedule-budget", "2", "--schedule-features", str(folder / "features.parquet")]
    process, url = start_serve(store, store, *flags, "--schedule-scores", str(folder / "scores.csv"))
    try:
        decisions = []
        for step, row, _ in run_rows:
            body = {"run": "r1", "step": step, "checkpoints": len(run_rows), "features": row}
            answer = httpx.post(f"{url}/schedule", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
            decisions.append(answer.json())
        assert sum(d["evaluate"] for d in decisions) == 2 and decisions[-1]["budget_left"] == 0
    finally:
        stop(process)


def test_a_budget_without_the_tables_to_learn_it_from_is_one_line(capsys):
    from headcast.cli import main

    assert main(["serve", "--schedule-budget", "2", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert "needs all three of --schedule-budget, --schedule-features and --schedule-scores" in error
    with pytest.raises(SystemExit) as exit_info:  # argparse's own refusal of the flag's text
        main(["serve", "--schedule-budget", "lots"])
    assert exit_info.value.code == 2 and "'lots' is not a number" in capsys.readouterr().err
