"""Reading a built zoo into the tables the report measures, and the bundle of everything it measured.

Reading is kept apart from measuring so that the measurements and claims can be tested on
hand-made tables, without a zoo on disk.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from headcast.errors import HeadcastError
from headcast.experiments.layout import ZooLayout
from headcast.experiments.report.settings import ReportSettings
from headcast.predictor import last_checkpoints, read_scores


@dataclasses.dataclass
class Zoo:
    """A built zoo, as the report reads it."""

    root: Path
    folders: list[Path]
    names: list[str]
    scores: pd.DataFrame  # long: checkpoint, benchmark, score, ...
    stamp: dict

    @property
    def layout(self) -> ZooLayout:
        return ZooLayout(self.root)

    @property
    def wide(self) -> pd.DataFrame:
        return self.scores.pivot_table(index="checkpoint", columns="benchmark", values="score")

    def finals(self) -> dict[str, str]:
        """Run -> name of its last checkpoint."""

        return last_checkpoints(self.names)

    def folder(self, name: str) -> Path:
        return self.folders[self.names.index(name)]

    def run_data(self) -> dict[str, float]:
        """Run -> instruction-tuning items it trained on (NaN where its checkpoint does not say)."""
        data = {}
        for run, final in self.finals().items():
            meta_file = ZooLayout.run_meta(self.folder(final))
            meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
            data[run] = meta.get("data", np.nan)
        return data


def read_zoo(root: str | Path) -> Zoo:
    """Checkpoints, scores and stamp of a zoo folder; errors name the command that makes what is missing."""

    root = Path(root)
    layout = ZooLayout(root)
    for needed in (layout.scores, layout.stamp, layout.probes, layout.benchmarks):
        if not needed.exists():
            where = needed.relative_to(root).as_posix()
            raise HeadcastError(f"{root} has no {where}; build it first (headcast zoo build --out {root})")
    folders = layout.checkpoint_folders()
    names = [layout.checkpoint_name(f) for f in folders]
    scores = read_scores(layout.scores)
    scores = scores[scores["checkpoint"].isin(names)]
    return Zoo(root, folders, names, scores, json.loads(layout.stamp.read_text()))


@dataclasses.dataclass
class Findings:
    """Everything the report measured, and the settings it measured with."""

    zoo: Zoo
    settings: ReportSettings
    profile: pd.DataFrame
    training: pd.DataFrame  # measures.visual_sets_along_training
    corr: pd.DataFrame
    by_data: pd.DataFrame
    ablation: pd.DataFrame
    curve: pd.DataFrame | None
    curve_baseline: pd.DataFrame | None
    curve_source: str
    n_probes: int
    seconds: dict[str, float]
