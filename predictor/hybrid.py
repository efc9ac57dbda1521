"""The fitted product when per-item results are known: anchored estimates with a label-free fallback.

`HybridPredictor` is what `headcast fit --items` registers. Its input rows are feature rows plus,
for checkpoints that answered the anchor items, one `correct[<benchmark>/<item>]` and one
`prob[<benchmark>/<item>]` column per anchor. A benchmark whose anchors were all answered gets the
anchored estimate (`AnchorPredictor`); any other gets the label-free one (`HeadcastPredictor` on
confidence and head features), so a probe set without answers still predicts. `predict_adaptive`
instead asks one checkpoint items in rounds, chosen by what it has answered so far (`AdaptiveAnchors`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator

from headcast.contract import ExtractionContract
from headcast.errors import HeadcastError
from headcast.predictor.adaptive import ADAPTIVE_ROUND, AdaptiveAnchors, Answer, ask_in_rounds
from headcast.predictor.anchor_predictor import AnchorPredictor
from headcast.predictor.item_results import DEFAULT_ANCHORS, BenchmarkItems
from headcast.predictor.models import (
    COVERAGE,
    HeadcastPredictor,
    conformal_quantile,
    label_free_feature_sets,
)


def answer_column(kind: str, benchmark: str, item: str) -> str:
    """`correct[<benchmark>/<item>]` or `prob[<benchmark>/<item>]`: one anchor's answer in a feature row."""
    return f"{kind}[{benchmark}/{item}]"


def answer_row(answers: pd.DataFrame) -> dict[str, float]:
    """One checkpoint's per-probe answers (`item, task, correct, prob`) as anchor answer columns.

    The probe's `task` names its benchmark, as in the anchor probe file; unlabelled probes add nothing.
    """
    row = {}
    for probe in answers.itertuples():
        if pd.notna(probe.correct) and isinstance(probe.task, str):
            row[answer_column("correct", probe.task, probe.item)] = float(probe.correct)
            row[answer_column("prob", probe.task, probe.item)] = float(probe.prob)
    return row


def answer_columns(answers: pd.DataFrame) -> pd.DataFrame:
    """Per-probe answers of several checkpoints (with a `checkpoint` column) as one row per checkpoint."""
    rows = {checkpoint: answer_row(table) for checkpoint, table in answers.groupby("checkpoint", sort=False)}
    return pd.DataFrame.from_dict(rows, orient="index")


def unanswered_anchors(predictor, columns: Collection[str]) -> list[str]:
    """The model's anchor items (`benchmark/item`) without an answer column among `columns`."""
    anchors = getattr(predictor, "anchors_", None)
    if anchors is None:
        raise HeadcastError(
            "this model was fitted without per-item results, so it has no anchor items; "
            "refit with 'headcast fit --items ...' or predict without --anchors"
        )
    return [
        f"{b}/{item}"
        for b, items in anchors.items()
        for item in items
        if answer_column("correct", b, item) not in columns
    ]


class HybridPredictor(BaseEstimator):
    """Scores from feature rows and, where given, answers on `k` anchor items per benchmark."""

    def __init__(self, k: int = DEFAULT_ANCHORS, coverage: float = COVERAGE, jobs: int = 1) -> None:
        self.k = k
        self.coverage = coverage
        self.jobs = jobs

    def fit(
        self,
        X: pd.DataFrame,
        Y: pd.DataFrame,
        groups: pd.Series,
        items: dict[str, BenchmarkItems],
        *,
        contract: ExtractionContract | None = None,
    ) -> HybridPredictor:
        """`items`: every training checkpoint's per-item results; `contract` as in `HeadcastPredictor.fit`."""
        self.contract_ = None if contract is None else contract.to_dict()
        self.feature_names_ = list(X.columns)
        self.benchmarks_ = list(Y.columns)
        self.feature_sets_ = label_free_feature_sets(self.feature_names_)
        sets = list(self.feature_sets_.values())
        self.label_free_ = HeadcastPredictor("auto", self.coverage, feature_sets=sets).fit(X, Y, groups)
        features = {name: X[columns].to_numpy(float) for name, columns in self.feature_sets_.items()}
        fitted = Parallel(n_jobs=self.jobs)(
            delayed(AnchorPredictor(self.k).fit)(items[b], features, np.asarray(groups))
            for b in self.benchmarks_
        )
        self.anchored_ = dict(zip(self.benchmarks_, fitted, strict=True))
        self.half_widths_ = {
            b: conformal_quantile(m.residuals_, self.coverage) for b, m in self.anchored_.items()
        }
        self.anchors_ = {b: m.anchor_items_ for b, m in self.anchored_.items()}
        self.answer_columns_ = [
            answer_column(kind, b, item)
            for b, anchors in self.anchors_.items()
            for item in anchors
            for kind in ("correct", "prob")
        ]
        self.chosen_ = {b: m.chosen_ for b, m in self.anchored_.items()}
        prior = features.get("confidence")
        self.adaptive_ = {
            b: AdaptiveAnchors().fit(items[b], prior, np.asarray(groups)) for b in self.benchmarks_
        }
        return self

    def predict_adaptive(
        self, X: pd.DataFrame, answer: Answer, max_items: int, target_width: float | None = None
    ) -> tuple[pd.DataFrame, int]:
        """One checkpoint's scores from adaptive anchors (`predictor.adaptive`), and the rounds it took.

        `X`: its feature row (the prior comes from its confidence); `answer({benchmark: item ids})`
        answers one round in one prefill and returns 0/1 per item. Columns as `predict`'s.
        """
        if len(X) != 1:
            raise HeadcastError(f"adaptive anchors answer one checkpoint at a time, got {len(X)} rows")
        confidence = self.feature_sets_.get("confidence")
        prior = None if confidence is None else X[confidence].to_numpy(float)
        models = getattr(self, "adaptive_", None)
        if models is None:
            raise HeadcastError(
                "this model was fitted before adaptive anchors; refit with 'headcast fit --items'"
            )
        priors = {b: m.prior_means(prior, 1)[0] for b, m in models.items()}

        def by_index(wanted: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            return answer({b: [models[b].items_[i] for i in items] for b, items in wanted.items()})

        estimates, rounds = ask_in_rounds(models, priors, by_index, max_items, ADAPTIVE_ROUND, target_width)
        out = self.label_free_.predict(X[self.feature_names_])
        for benchmark, estimate in estimates.items():
            out[benchmark] = estimate.score
            out[f"{benchmark}_lower"] = max(0.0, estimate.score - estimate.half_width)
            out[f"{benchmark}_upper"] = min(100.0, estimate.score + estimate.half_width)
            out[f"{benchmark}_answered"] = len(estimate.asked) > 0
        return out, rounds

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """HeadcastPredictor's columns, plus `<benchmark>_answered`: whether the anchors were used."""
        out = self.label_free_.predict(X[self.feature_names_])
        features = {name: X[columns].to_numpy(float) for name, columns in self.feature_sets_.items()}
        for benchmark, model in self.anchored_.items():
            correct = X.reindex(
                columns=[answer_column("correct", benchmark, i) for i in self.anchors_[benchmark]]
            )
            prob = X.reindex(columns=[answer_column("prob", benchmark, i) for i in self.anchors_[benchmark]])
            answered = correct.notna().all(axis=1).to_numpy()
            out[f"{benchmark}_answered"] = answered
            if not answered.any():
                continue
            rows = {name: values[answered] for name, values in features.items()}
            score = model.predict(correct.to_numpy(float)[answered], prob.to_numpy(float)[answered], rows)
            width = self.half_widths_[benchmark]
            out.loc[answered, benchmark] = score
            out.loc[answered, f"{benchmark}_lower"] = np.clip(score - width, 0, 100)
            out.loc[answered, f"{benchmark}_upper"] = np.clip(score + width, 0, 100)
        return out
