"""One way from a checkpoint to predicted scores: `predict`, `predict-runs`, service jobs and the callback.

A `FittedModel` is a fitted predictor with where it came from; `resolve_model` is the one way to get
one, from a model URI, a loaded pyfunc model or a fitted estimator. A `PredictionPipeline` runs the
path in the order a prediction needs it, like a transformers `Pipeline` over the fitted model:

    prepare   the model's extraction contract fixes query, thresholds and dtype; the probe set and
              the anchor file are checked against the model before any work
    measure   head metrics of checkpoint folders (through the content-keyed cache) or of a live model
    answer    the anchor items in one more small prefill, when the model has anchors (or, with
              `adaptive`, items chosen round by round, one prefill a round)
    predict   `predict_rows`, the pyfunc's own path, on the feature rows and their answer columns
    format    `{benchmark: {score, lower, upper, ood[, answered]}}` per checkpoint

Torch loads only when something is measured, so the command line and the service start fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from headcast.contract import (
    ExtractionContract,
    ExtractionSettings,
    check_probe_set,
    extraction_options,
    fitted_contract,
)
from headcast.errors import HeadcastError
from headcast.extract import probe_set_hash, read_probes
from headcast.predictor.anchors import read_anchor_probes, suite_items
from headcast.predictor.hybrid import answer_column, answer_columns, answer_row, unanswered_anchors
from headcast.predictor.pyfunc import benchmarks_of, predict_rows, prediction_json
from headcast.predictor.registry import DEFAULT_MODEL, SCHEMA_TAG, fitted_predictor, load_model, pin
from headcast.predictor.task_anchors import TaskAnchors, is_task_anchor_file
from headcast.schema import CONTRACT_COLUMN, FEATURE_SCHEMA_VERSION

Progress = Callable[[str, int, int], None]  # (stage, done, total), for callers without a terminal


@dataclasses.dataclass(frozen=True)
class FittedModel:
    """A fitted headcast predictor (or hybrid) and a description of it: what every prediction path holds."""

    predictor: Any
    info: dict[str, Any]  # where it came from and what it predicts (the service's GET /model)

    @property
    def contract(self) -> ExtractionContract | None:
        """How the model's training rows were made: what rows to predict must match."""
        return fitted_contract(self.predictor)

    @property
    def benchmarks(self) -> list[str]:
        return list(self.predictor.benchmarks_)

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Predictions for a feature table (answer columns joined where anchors were answered)."""
        return predict_rows(self.predictor, table.drop(columns=["checkpoint"], errors="ignore"))

    def predict_json(self, table: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Checkpoint -> `{benchmark: {score, lower, upper, ood[, answered]}}`, what the CLI prints."""
        predictions = self.predict(table)
        scores = prediction_json(predictions, benchmarks_of(predictions))
        return dict(zip(table["checkpoint"], scores, strict=True))


def resolve_model(model: FittedModel | str | Any | None = None) -> FittedModel:
    """A `FittedModel` from an MLflow model URI (default: the champion, pinned to the version its alias
    names now), a loaded pyfunc model, a fitted predictor, or itself."""
    if isinstance(model, FittedModel):
        return model
    uri, version = None, None
    loaded: Any = model  # a pyfunc model or a fitted predictor: no type in common
    if model is None or isinstance(model, str):
        uri = model or DEFAULT_MODEL
        version = pin(uri)
        loaded = load_model(version.uri if version else uri)
    predictor = fitted_predictor(loaded) if hasattr(loaded, "unwrap_python_model") else loaded
    if not hasattr(predictor, "feature_names_"):
        raise HeadcastError(f"{type(predictor).__name__} is not a fitted headcast predictor")
    contract = fitted_contract(predictor)
    tags = version.tags if version else {}
    info = {
        "uri": uri,
        "registered_name": version and version.name,
        "version": version and version.version,
        "alias": version and version.alias,
        "run_id": version and version.run_id,
        "feature_schema_version": tags.get(SCHEMA_TAG, FEATURE_SCHEMA_VERSION),
        "extraction_contract": None if contract is None else contract.to_dict(),
        "benchmarks": list(predictor.benchmarks_),
        "features": len(predictor.feature_names_),
    }
    return FittedModel(predictor, info)


def with_answers(table: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """The feature table with each checkpoint's anchor answers (an answers table) joined as columns."""
    wide = answer_columns(answers)
    return table.join(wide, on="checkpoint") if not wide.empty else table


class PredictionPipeline:
    """Prepare under the model's contract, measure, answer anchors, predict, format.

    `probes` and `anchors` are probe files or lists of probes; `anchors` may also be an lmms-eval
    anchor file (`TaskAnchors`), whose documents are answered and scored by their tasks. `query` and
    `dtype` may only repeat the model's own (anything else is refused here, before any measuring).
    """

    def __init__(
        self,
        model: FittedModel | str | Any | None,
        probes: str | Path | Sequence[Any],
        anchors: str | Path | Sequence[Any] | None = None,
        *,
        query: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        device_map: str | None = None,
    ) -> None:
        self.model = resolve_model(model)
        contract = self.model.contract
        query, dtype, thresholds = extraction_options(contract, query, dtype)
        self.probes = read_probes(probes) if isinstance(probes, str | Path) else list(probes)
        source = str(probes) if isinstance(probes, str | Path) else "the probes"
        check_probe_set(contract, probe_set_hash(self.probes), source)
        self.anchors: TaskAnchors | list[Any] | None = None
        if isinstance(anchors, TaskAnchors) or (
            isinstance(anchors, str | Path) and is_task_anchor_file(anchors)
        ):
            self.anchors = anchors if isinstance(anchors, TaskAnchors) else TaskAnchors.read(anchors)
            self._check_anchors(self.anchors.source)
        elif anchors is not None:
            self.anchors = read_anchor_probes(anchors) if isinstance(anchors, str | Path) else list(anchors)
            self._check_anchors(str(anchors) if isinstance(anchors, str | Path) else "the anchors")
        self.settings = ExtractionSettings(query, batch_size, device, dtype, thresholds, device_map)

    def _check_anchors(self, source: str) -> None:
        """Every anchor item of the model is in the anchor file: refused before minutes of extraction."""
        keys = (
            self.anchors.keys
            if isinstance(self.anchors, TaskAnchors)
            else [(p.task, p.id) for p in self.anchors or []]
        )
        given = {answer_column("correct", task, item) for task, item in keys}
        missing = unanswered_anchors(self.model.predictor, given)
        if missing:
            raise HeadcastError(
                f"{source} lacks {len(missing)} of the model's anchor items, e.g. {missing[0]!r}; "
                "write the anchor file for this model with 'headcast fit --anchors-out'"
            )

    @property
    def _answering(self) -> ExtractionSettings:
        """Anchors are answered at the last prompt token: `answer-mean`'s input already holds the answer."""
        return dataclasses.replace(self.settings, query="last-prompt")

    def features(
        self,
        checkpoints: Sequence[str | Path],
        names: Sequence[str] | None = None,
        progress: bool = True,
        on_progress: Progress | None = None,
    ) -> pd.DataFrame:
        """Feature rows of checkpoint folders, with their anchor answers when the pipeline has anchors."""
        from headcast.extract import answers_table, extract_features  # torch: only when measuring

        def stage(name: str) -> Callable[[int, int], None] | None:
            return None if on_progress is None else lambda done, total: on_progress(name, done, total)

        if isinstance(self.anchors, TaskAnchors):
            self.anchors.tasks()  # a changed task configuration is refused before minutes of measuring
        table, _ = extract_features(
            checkpoints, self.probes, self.settings, names, progress, stage("measuring")
        )
        if self.anchors is None:
            return table
        if isinstance(self.anchors, TaskAnchors):  # answered and scored by their lmms-eval tasks
            answers = self.anchors.answer_checkpoints(
                checkpoints, names, self.settings.device, self.settings.dtype, self.settings.device_map
            )
            return with_answers(table, answers)
        answering = stage("answering anchors")
        _, answered = extract_features(checkpoints, self.anchors, self._answering, names, progress, answering)
        return with_answers(table, answers_table(answered))

    def live_features(self, model: Any, processor: Any) -> pd.DataFrame:
        """The feature row of a model in memory as it is now (e.g. at a training step), answers joined."""
        from headcast.extract import live_dtype, measure_live_model  # torch: only when measuring

        fitted, dtype = self.model.contract, live_dtype(model)
        if fitted is not None and dtype != fitted.dtype:
            raise HeadcastError(
                f"the live model runs in dtype={dtype} but the predictor was fitted on features extracted "
                f"with dtype={fitted.dtype}; measure the model in {fitted.dtype} or refit on features "
                f"extracted with --dtype {dtype}"
            )
        metrics = measure_live_model(model, processor, self.probes, self.settings)
        contract = ExtractionContract.from_settings(metrics.settings, self.settings.thresholds)
        row: dict[str, object] = {"checkpoint": metrics.checkpoint, "schema_version": FEATURE_SCHEMA_VERSION}
        row[CONTRACT_COLUMN] = contract.to_json()
        row |= metrics.feature_row(self.settings.thresholds)
        if isinstance(self.anchors, TaskAnchors):
            row |= answer_row(self.anchors.answer(model, processor, metrics.checkpoint))
        elif self.anchors is not None:
            row |= answer_row(measure_live_model(model, processor, self.anchors, self._answering).answers)
        return pd.DataFrame([row])

    def adaptive(
        self,
        checkpoint: str | Path,
        suite: str | Path,
        max_items: int,
        target_width: float | None = None,
        progress: bool = True,
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """One checkpoint's scores from adaptive anchors, and the rounds (prefills) they took.

        `suite`: the folder of `<benchmark>.jsonl` files the model's per-item results were on; each
        round answers every benchmark's next items from it in one prefill.
        """
        from headcast.extract import answers_table, extract_features  # torch: only when measuring

        predictor = self.model.predictor
        if not hasattr(predictor, "predict_adaptive"):
            raise HeadcastError("adaptive anchors need a model fitted with per-item results ('fit --items')")
        items = {b: suite_items(Path(suite), b, predictor.adaptive_[b].items_) for b in self.model.benchmarks}
        table, _ = extract_features([checkpoint], self.probes, self.settings, None, progress)

        def answer(wanted: dict[str, list[str]]) -> dict[str, list[float]]:
            probes = [dataclasses.replace(items[b][i], task=b) for b, ids in wanted.items() for i in ids]
            metrics = extract_features([checkpoint], probes, self._answering, None, progress=False)[1]
            correct = answers_table(metrics).set_index(["task", "item"])["correct"]
            return {b: [float(correct[(b, i)]) for i in ids] for b, ids in wanted.items()}

        frame = table.drop(columns=["checkpoint"], errors="ignore")
        predictions, rounds = predictor.predict_adaptive(frame, answer, max_items, target_width)
        scores = prediction_json(predictions, benchmarks_of(predictions))[0]
        return {str(table["checkpoint"].iloc[0]): scores}, rounds

    def __call__(
        self, checkpoints: Sequence[str | Path], names: Sequence[str] | None = None, progress: bool = True
    ) -> dict[str, dict[str, Any]]:
        """Checkpoint -> its predicted scores with intervals."""
        return self.model.predict_json(self.features(checkpoints, names, progress))
