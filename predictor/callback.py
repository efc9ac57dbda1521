"""Predicted benchmark scores during training, from the live model, as MLflow metrics.

The full benchmark suite is far too slow to run every few hundred steps; a probe set through the
live model is not. `log_predicted_scores` runs the probes on the model in memory (eval mode, no
grad, train mode restored; no copy, nothing saved), turns the head metrics into a feature row,
predicts the scores with intervals and logs both at the training step, named as service jobs name
them (`predictor.metric_names`), under the prefix `headcast/`:

    headcast/pred/<benchmark>          predicted score (percent)
    headcast/pred/<benchmark>_lower    interval bounds
    headcast/pred/<benchmark>_upper
    headcast/pred/<benchmark>_answered 1 when its anchor items were answered (hybrid predictors)
    headcast/pred/ood                  1 when the row is out of the predictor's training distribution
    headcast/feature/<all.*>           the model-wide feature summaries
    headcast/seconds                   what the measurement cost

`HeadcastCallback` calls it from a transformers `Trainer` every N steps and/or on save, into the
run transformers' own MLflow logging uses; custom loops call the function directly.
The live model is measured under the predictor's extraction contract (its query position and
visual-head thresholds, on its probe set, in its dtype); anything else is refused, since the
predictor would answer such a row with confident nonsense.
Torch and transformers are imported when called, not when this module is imported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from headcast.contract import ExtractionContract, check_probe_set, extraction_options, fitted_contract
from headcast.errors import HeadcastError
from headcast.extract.features import feature_row
from headcast.predictor.metric_names import prediction_metrics
from headcast.predictor.pyfunc import predict_rows, prediction_json
from headcast.predictor.registry import DEFAULT_MODEL, fitted_predictor, load_model
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION, VisualHeadThresholds

try:  # a real TrainerCallback when transformers is there; the plain function needs no Trainer
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover
    TrainerCallback = object  # type: ignore[assignment,misc]


def resolve_predictor(predictor: Any = None) -> Any:
    """A fitted `HeadcastPredictor` from an MLflow model URI, a loaded pyfunc model, or itself."""
    if predictor is None or isinstance(predictor, str):
        predictor = load_model(predictor or DEFAULT_MODEL)
    if hasattr(predictor, "unwrap_python_model"):
        predictor = fitted_predictor(predictor)
    if not hasattr(predictor, "feature_names_"):
        raise HeadcastError(f"{type(predictor).__name__} is not a fitted headcast predictor")
    return predictor


def _read_probes(probes: Any) -> list:
    from headcast.extract.probes import read_probes

    return read_probes(probes) if isinstance(probes, str | Path) else list(probes)


def _read_anchors(anchors: Any) -> list:
    from headcast.predictor.anchors import read_anchor_probes

    return read_anchor_probes(anchors) if isinstance(anchors, str | Path) else list(anchors)


def _measure(model, processor, probes: Sequence, query: str, batch_size: int):
    """Head metrics and per-probe answers of the model as it is now; its train/eval mode is kept."""
    import torch

    from headcast.extract.loading import Checkpoint
    from headcast.extract.pipeline import measure_heads

    model = getattr(model, "module", model)  # DistributedDataParallel and friends
    config = model.config
    checkpoint = Checkpoint(
        path=Path(getattr(config, "_name_or_path", "") or "live-model"),
        model=model,
        processor=processor,
        arch=config.model_type,
        text_model=config.text_config.model_type,
    )
    tokenizer = processor.tokenizer
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # the query row is the last position
    try:
        with torch.no_grad():
            return measure_heads(checkpoint, probes, query, batch_size, progress=False)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)


def measure_live_model(
    model,
    processor,
    probes: Sequence,
    query: str = "last-prompt",
    batch_size: int = 8,
    thresholds: VisualHeadThresholds | None = None,
) -> dict[str, float]:
    """The feature row of the model as it is now (default visual-head thresholds unless given)."""
    samples, answers = _measure(model, processor, probes, query, batch_size)
    return feature_row(samples, thresholds or VisualHeadThresholds(), answers)


def live_contract(model, probes: Sequence, predictor: Any, query: str | None = None) -> ExtractionContract:
    """The contract the live model is measured under: the predictor's query and thresholds (`query` may
    only repeat the predictor's), the probes' hash and the model's dtype. A probe set or dtype other than
    the predictor's is refused here, before any measuring."""
    from headcast.extract.probes import probe_set_hash

    fitted = fitted_contract(predictor)
    query, _, thresholds = extraction_options(fitted, query)
    probe_hash = probe_set_hash(list(probes))
    check_probe_set(fitted, probe_hash, "the callback's probes")
    dtype = str(getattr(model, "module", model).dtype).removeprefix("torch.")
    if fitted is not None and dtype != fitted.dtype:
        raise HeadcastError(
            f"the live model runs in dtype={dtype} but the predictor was fitted on features extracted with "
            f"dtype={fitted.dtype}; measure the model in {fitted.dtype} or refit on features extracted with "
            f"--dtype {dtype}"
        )
    return ExtractionContract(query, thresholds.visual_mass, thresholds.concentration, dtype, probe_hash)


def answer_live_anchors(model, processor, anchors: Sequence, batch_size: int = 8) -> dict[str, float]:
    """The model's answers on the anchor items, as the anchor answer columns of a feature row."""
    from headcast.predictor.hybrid import answer_row

    _, answers = _measure(model, processor, anchors, "last-prompt", batch_size)
    return answer_row(answers)


def log_predicted_scores(
    model,
    processor,
    probes: Sequence | str | Path,
    predictor: Any = None,
    step: int = 0,
    *,
    query: str | None = None,
    batch_size: int = 8,
    prefix: str = "headcast",
    run_id: str | None = None,
    anchors: Sequence | str | Path | None = None,
) -> dict[str, float]:
    """Measure the live model on `probes`, predict its scores, log them at `step`; returns the metrics.

    `predictor`: a fitted HeadcastPredictor (or HybridPredictor), a pyfunc model, or a model URI
    (default: the champion); pass a resolved one when calling repeatedly. The measurement follows the
    predictor's extraction contract (`query` defaults to its own; another is an error). With `anchors`
    (the anchor probe file of a hybrid model) the model also answers those items and benchmarks get the
    anchored estimate. Metrics go to `run_id`, else the active MLflow run (MLflow starts one if there is
    none).
    """
    import mlflow

    started = time.perf_counter()
    predictor = resolve_predictor(predictor)
    probes = _read_probes(probes)
    contract = live_contract(model, probes, predictor, query)
    features = measure_live_model(model, processor, probes, contract.query, batch_size, contract.thresholds)
    answers = (
        {} if anchors is None else answer_live_anchors(model, processor, _read_anchors(anchors), batch_size)
    )
    row = {"schema_version": FEATURE_SCHEMA_VERSION, CONTRACT_COLUMN: contract.to_json()}
    predictions = predict_rows(predictor, pd.DataFrame([row | features | answers]))
    prediction = prediction_json(predictions, predictor.benchmarks_)[0]
    summaries = {name: value for name, value in features.items() if name.startswith("all.")}
    metrics = prediction_metrics(prediction, summaries, time.perf_counter() - started, prefix)
    if run_id is not None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
    else:
        mlflow.log_metrics(metrics, step=step)
    return metrics


class HeadcastCallback(TrainerCallback):
    """Log predicted benchmark scores of the model being trained, every `every_n_steps` and/or on save.

    Runs on the main process only. With `report_to=["mlflow"]` the metrics join the run that
    transformers' MLflowCallback opened; otherwise this callback opens a run and closes it at the end.
    """

    def __init__(
        self,
        processor,
        probes: Sequence | str | Path,
        predictor: Any = None,
        every_n_steps: int | None = 50,
        on_save: bool = False,
        query: str | None = None,
        batch_size: int = 8,
        prefix: str = "headcast",
        anchors: Sequence | str | Path | None = None,
    ) -> None:
        if not every_n_steps and not on_save:
            raise HeadcastError("HeadcastCallback needs every_n_steps > 0, on_save=True, or both")
        self.processor = processor
        self.probes = _read_probes(probes)  # read once: a bad probe file fails before training starts
        self.anchors = None if anchors is None else _read_anchors(anchors)
        self.predictor = resolve_predictor(predictor)
        fitted = fitted_contract(self.predictor)
        extraction_options(fitted, query)  # a conflicting query or probe set fails before training starts
        if fitted is not None:
            from headcast.extract.probes import probe_set_hash

            check_probe_set(fitted, probe_set_hash(self.probes), "the callback's probes")
        self.every_n_steps, self.log_on_save = every_n_steps, on_save
        self.query, self.batch_size, self.prefix = query, batch_size, prefix
        self.history: list[tuple[int, dict[str, float]]] = []
        self._own_run = False
        self._last_step: int | None = None

    def measure(self, model, step: int) -> dict[str, float]:
        """Log at `step` (once per step, however many events ask for it)."""
        if step == self._last_step:
            return self.history[-1][1]
        metrics = log_predicted_scores(
            model,
            self.processor,
            self.probes,
            self.predictor,
            step,
            query=self.query,
            batch_size=self.batch_size,
            prefix=self.prefix,
            anchors=self.anchors,
        )
        self._last_step = step
        self.history.append((step, metrics))
        return metrics

    def on_train_begin(self, args, state, control, **kwargs):
        import mlflow

        if state.is_world_process_zero and mlflow.active_run() is None:
            mlflow.start_run(run_name=getattr(args, "run_name", None))
            self._own_run = True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.every_n_steps
        if every and state.is_world_process_zero and model is not None and state.global_step % every == 0:
            self.measure(model, state.global_step)

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.log_on_save and state.is_world_process_zero and model is not None:
            self.measure(model, state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        import mlflow

        if self._own_run:
            mlflow.end_run()
            self._own_run = False
