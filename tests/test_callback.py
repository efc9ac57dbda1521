"""The training callback: a real transformers `Trainer` on a zoo model, its metrics read back from MLflow."""

from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import Trainer, TrainingArguments

from headcast.errors import HeadcastError
from headcast.experiments import train
from headcast.experiments.modeling import build_model, build_processor
from headcast.experiments.scenes import make_mixture
from headcast.experiments.suite import write_probes
from headcast.experiments.zoo import load_config
from headcast.predictor import build_dataset
from headcast.predictor.callback import HeadcastCallback, log_predicted_scores
from headcast.predictor.schedule import fit_scheduler
from headcast.predictor.tracking import configure_tracking
from tests.predictor_data import synthetic_tables
from tests.test_service import champion_store

STEPS, EVERY = 6, 2


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return champion_store(tmp_path_factory)


@pytest.fixture
def in_store(store, monkeypatch):
    monkeypatch.chdir(store)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "training")
    configure_tracking()
    return store


def make_zoo_run(probe_folder):
    """The smoke zoo's first run as the zoo builds it (shape, tokenizer, processor, instruction data)."""
    run = load_config("smoke").runs[0]
    spec = run.spec
    processor = build_processor(spec, train.zoo_tokenizer())
    model = build_model(spec, processor.tokenizer, seed=0).train()
    items = make_mixture(0, 8, 4)
    data = train.encode(processor, items, [item.scene.render(56) for item in items], "qa")
    examples = [{k: v[i] for k, v in data.items()} for i in range(len(items))]
    return model, processor, examples, write_probes(probe_folder, 0, 4, 56, 4)


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    return make_zoo_run(tmp_path_factory.mktemp("zoo-probes"))


def test_trainer_run_logs_predicted_scores_every_n_steps_into_its_mlflow_run(in_store, zoo_run, tmp_path):
    model, processor, examples, probes = zoo_run
    callback = HeadcastCallback(processor, probes, every_n_steps=EVERY)  # the registered champion
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    run = train_with(callback, model, examples, tmp_path)

    assert model.training, "the callback must hand the model back in train mode"
    assert any(not torch.equal(weights[k], v) for k, v in model.state_dict().items()), "training happened"
    assert "loss" in run.data.metrics, "transformers' own MLflow logging shares the run"
    client = MlflowClient()
    for name in ("headcast/pred/count", "headcast/pred/count_lower", "headcast/feature/all.visual_mass.mean"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == list(range(EVERY, STEPS + 1, EVERY)), name
    lower, score, upper = (
        client.get_metric_history(run.info.run_id, f"headcast/pred/pope{s}")[-1].value
        for s in ("_lower", "", "_upper")
    )
    assert 0 <= lower <= score <= upper <= 100


def test_plain_function_logs_at_the_given_step_and_leaves_eval_mode_alone(in_store, zoo_run):
    model, processor, _, probes = zoo_run
    model.eval()
    with mlflow.start_run() as run:
        metrics = log_predicted_scores(model, processor, probes, step=7)
    assert not model.training
    assert {"headcast/pred/count", "headcast/pred/ood", "headcast/seconds"} <= set(metrics)
    history = MlflowClient().get_metric_history(run.info.run_id, "headcast/pred/count")
    assert [(m.step, m.value) for m in history] == [(7, metrics["headcast/pred/count"])]


def test_callback_refuses_to_do_nothing(in_store, zoo_run):
    _, processor, _, probes = zoo_run
    with pytest.raises(HeadcastError, match="every_n_steps"):
        HeadcastCallback(processor, probes, every_n_steps=None, on_save=False)


@pytest.fixture(scope="module")
def scheduler():
    """Fitted on the synthetic runs the champion was fitted on, for two full evaluations a run."""
    return fit_scheduler(build_dataset(*synthetic_tables(n_runs=4)), 2, estimator="ridge")


def train_with(callback, model, examples, tmp_path, steps=STEPS):
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        use_cpu=True,
        save_strategy="no",
        report_to=["mlflow"],
        logging_steps=1,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=examples, callbacks=[callback]).train()
    client = MlflowClient()
    return client.search_runs(
        [mlflow.get_experiment_by_name("training").experiment_id], order_by=["start_time DESC"]
    )[0]


def test_a_budgeted_run_asks_for_its_evaluations_logs_why_and_starts_later_estimates_from_real_scores(
    in_store, zoo_run, scheduler, tmp_path, capsys
):
    model, processor, examples, probes = zoo_run
    real = {"count": 33.0, "pope": 61.0}
    asked = []

    def run_benchmarks(request):  # a synchronous evaluation: its scores come back at once
        asked.append(request)
        return real

    callback = HeadcastCallback(
        processor, probes, every_n_steps=EVERY, budget=2, scheduler=scheduler, on_evaluate=run_benchmarks
    )
    run = train_with(callback, model, examples, tmp_path)

    assert callback.checkpoints == STEPS // EVERY, "the run's checkpoints, from the trainer's max_steps"
    assert len(asked) == 2 and not callback.pending and all(r.run_id == run.info.run_id for r in asked)
    client = MlflowClient()
    evaluate = {
        m.step: m.value for m in client.get_metric_history(run.info.run_id, "headcast/schedule/evaluate")
    }
    assert sorted(evaluate) == [2, 4, 6] and sum(evaluate.values()) == 2
    for step, flag in evaluate.items():
        assert run.data.tags[f"headcast/schedule/{step}"].startswith("evaluate: " if flag else "skip: ")
    scores = client.get_metric_history(run.info.run_id, "headcast/score/count")
    assert sorted((m.step, m.value) for m in scores) == [(r.step, 33.0) for r in asked]
    decisions = callback.schedule.decisions
    first = next(i for i, d in enumerate(decisions) if d.evaluate)
    later = [d.estimator for d in decisions[first + 1 :]]
    assert decisions[first].estimator == "label-free"
    assert all(name == scheduler.estimator_name_ for name in later)
    estimates = client.get_metric_history(run.info.run_id, "headcast/est/count")
    assert sorted(m.step for m in estimates) == [2, 4, 6]
    assert "plots/schedule.png" in {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    link = f"/#/experiments/{run.info.experiment_id}/runs?compareRunsMode=CHART"
    assert link in capsys.readouterr().out


def test_requests_wait_without_a_hook_and_scores_recorded_after_training_land_in_the_run(
    in_store, zoo_run, scheduler, tmp_path
):
    model, processor, examples, probes = zoo_run
    callback = HeadcastCallback(processor, probes, every_n_steps=EVERY, budget=2, scheduler=scheduler)
    run = train_with(callback, model, examples, tmp_path)
    assert [r.step for r in callback.pending] == [r.step for r in callback.requests] and len(
        callback.requests
    ) == 2
    for request in callback.requests:
        callback.record_scores(request.step, {"count": 40.0, "pope": 55.0})
    assert not callback.pending
    history = MlflowClient().get_metric_history(run.info.run_id, "headcast/score/pope")
    assert sorted(m.step for m in history) == [r.step for r in callback.requests]


def test_a_budget_needs_a_scheduler_fitted_for_it(in_store, zoo_run, scheduler):
    _, processor, _, probes = zoo_run
    with pytest.raises(HeadcastError, match="needs scheduler="):
        HeadcastCallback(processor, probes, budget=2)
    with pytest.raises(HeadcastError, match="fitted for budget=2"):
        HeadcastCallback(processor, probes, budget=3, scheduler=scheduler)
