"""What a fit learnt from, kept in its MLflow run, so that `headcast fit --update` can add to it.

During training the real scores come back a few checkpoints at a time (a scheduled lmms-eval run
finishes). Refitting on everything seen so far, the run's own benchmarked checkpoints included, is
how its later predictions use them; that needs the earlier fit's tables, not only its model.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pandas as pd

from headcast.errors import HeadcastError
from headcast.predictor.registry import pin
from headcast.predictor.score_tables import SCORE_TABLE_COLUMNS
from headcast.schema import ITEM_KEY, SCORE_KEY
from headcast.tables import read_features, write_features

FEATURES_ARTIFACT = "training/features.parquet"
SCORES_ARTIFACT = "scores.csv"  # beside the run's other tables: where people look for the scores
ITEMS_ARTIFACT = "training/items.parquet"
UPDATED_FROM_TAG = "headcast.updated_from"  # on an update's fit run: the fit run it added to


@dataclasses.dataclass(frozen=True)
class TrainingTables:
    """A fit's feature rows (with their extraction settings), scores and, for a hybrid, per-item results."""

    features: pd.DataFrame
    settings: dict[str, dict]
    scores: pd.DataFrame
    items: pd.DataFrame | None = None

    def updated(self, newer: TrainingTables) -> TrainingTables:
        """These tables with `newer`'s rows added; a checkpoint's newer row, score or item result wins."""
        if (self.items is None) != (newer.items is None):
            had = "had" if self.items is not None else "had no"
            raise HeadcastError(
                f"the earlier fit {had} per-item results; pass --items for the new checkpoints exactly "
                "when the earlier fit had them"
            )
        features = _newest(self.features, newer.features, ["checkpoint"])
        names = set(features["checkpoint"])
        return TrainingTables(
            features,
            {name: s for name, s in (self.settings | newer.settings).items() if name in names},
            _newest(self.scores, newer.scores, SCORE_KEY),
            None if self.items is None else _newest(self.items, newer.items, ITEM_KEY),
        )

    def log(self, run_id: str) -> None:
        """Into the run, as `training/features.parquet`, `scores.csv` and `training/items.parquet`."""
        # here, not at the top: loads MLflow only when this runs
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        client.log_text(run_id, self.scores.to_csv(index=False), SCORES_ARTIFACT)
        with tempfile.TemporaryDirectory() as folder:
            features = Path(folder) / Path(FEATURES_ARTIFACT).name
            write_features(self.features, self.settings, features)
            client.log_artifact(run_id, str(features), str(Path(FEATURES_ARTIFACT).parent))
            if self.items is not None:
                items = Path(folder) / Path(ITEMS_ARTIFACT).name
                self.items.to_parquet(items, index=False)
                client.log_artifact(run_id, str(items), str(Path(ITEMS_ARTIFACT).parent))

    @classmethod
    def of_run(cls, run_id: str) -> TrainingTables:
        """The tables a fit run logged; a run that logged none (fitted before `--update` existed, or
        through the Python API) is a one-line error saying what to do instead."""
        # here, not at the top: loads MLflow only when this runs
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        logged = {a.path for a in client.list_artifacts(run_id, "training")}
        if FEATURES_ARTIFACT not in logged:
            raise HeadcastError(
                f"fit run {run_id} did not keep its training tables, so there is nothing to update; "
                "fit once with 'headcast fit' on all features and scores, then --update that"
            )
        with tempfile.TemporaryDirectory() as folder:
            features, settings = read_features(client.download_artifacts(run_id, FEATURES_ARTIFACT, folder))
            scores = pd.read_csv(
                client.download_artifacts(run_id, SCORES_ARTIFACT, folder),
                dtype={"checkpoint": str, "benchmark": str, "harness_version": str, "metric": str},
                keep_default_na=False,
                na_values={"n": [""], "limit": [""]},
            )[SCORE_TABLE_COLUMNS]
            items = None
            if ITEMS_ARTIFACT in logged:
                items = pd.read_parquet(client.download_artifacts(run_id, ITEMS_ARTIFACT, folder))
        return cls(features, settings, scores, items)


@dataclasses.dataclass(frozen=True)
class PreviousFit:
    """The fit behind a registered version: its run, the tables it learnt from and the settings it used."""

    version: str
    run_id: str
    tables: TrainingTables
    params: dict[str, str]

    @classmethod
    def of_model(cls, uri: str) -> PreviousFit:
        """The fit that registered the model at `uri` (models:/NAME@ALIAS or models:/NAME/N)."""
        # here, not at the top: loads MLflow only when this runs
        from mlflow.tracking import MlflowClient

        version = pin(uri)
        if version is None or version.run_id is None:
            raise HeadcastError(
                f"--update needs a registered model (models:/NAME@ALIAS or models:/NAME/N), not {uri}"
            )
        params = MlflowClient().get_run(version.run_id).data.params
        return cls(version.version, version.run_id, TrainingTables.of_run(version.run_id), params)


def _newest(older: pd.DataFrame, newer: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Rows of both, one per key: `newer`'s where both have it."""
    both = pd.concat([older, newer], ignore_index=True)
    return both.drop_duplicates(key, keep="last").reset_index(drop=True)
