"""Where each piece of a built zoo lives: the one place that spells a zoo folder's layout.

    DIR/zoo.json                      what was built (preset config + seed): a stamp
    DIR/benchmarks/<benchmark>.jsonl  held-out items with answers, images under images/
    DIR/probes/probes.jsonl           unlabeled probe items on other images, for extraction
    DIR/checkpoints/<run>/<step>/     ordinary Hugging Face checkpoint folders, each with zoo_run.json
    DIR/scores.csv                    checkpoint, benchmark, score, n (checkpoint relative to checkpoints/)
    DIR/scores.items.parquet          per-item ground truth: checkpoint, benchmark, item, correct, answer,
                                      prob (the gold answer's), confidence (the top token's)
    DIR/cache/, DIR/items/            pretrained weights and per-checkpoint results a build resumes from

The build writes these paths, and the demo, the findings report and the tests read them, through
`ZooLayout`, so a piece of the zoo cannot move without all of its readers moving with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from headcast.extract import items_path

PROBE_SET = "probes"  # the name `benchmarks.write_probes` gives a probe set (its items file, ids, images)
RUN_META_FILE = "zoo_run.json"  # a zoo checkpoint's training settings, beside its weights


def probe_file(folder: Path) -> Path:
    """The items file of a probe folder written by `benchmarks.write_probes`: the zoo's or another."""
    return Path(folder) / f"{PROBE_SET}.jsonl"


@dataclasses.dataclass(frozen=True)
class ZooLayout:
    """The paths of the zoo built in `root`; nothing is read or created until a caller does."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def stamp(self) -> Path:
        return self.root / "zoo.json"

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    @property
    def probe_dir(self) -> Path:
        return self.root / "probes"

    @property
    def probes(self) -> Path:
        return probe_file(self.probe_dir)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def scores(self) -> Path:
        return self.root / "scores.csv"

    @property
    def items(self) -> Path:
        """Per-item results, beside the score table as `headcast evaluate` writes them."""
        return items_path(self.scores)

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def vision_weights(self) -> Path:
        return self.cache / "vision.safetensors"

    def language_weights(self, lm_key: str) -> Path:
        """The pretrained language model shared by the runs of one LM shape."""
        return self.cache / f"lm-{lm_key}.safetensors"

    @property
    def build_times(self) -> Path:
        return self.root / "build_times.json"

    @property
    def features(self) -> Path:
        """The demo's feature table of every checkpoint, kept for reuse."""
        return self.root / "features.parquet"

    @property
    def per_head(self) -> Path:
        return self.root / "per_head.parquet"

    @property
    def anchors(self) -> Path:
        return self.root / "anchors.jsonl"

    @property
    def report(self) -> Path:
        """Where the demo writes the findings report."""
        return self.root / "report"

    def run_dir(self, run: str) -> Path:
        return self.checkpoints / run

    def run_done(self, run: str) -> Path:
        """The marker of a run trained to its end (a build retrains runs without it)."""
        return self.run_dir(run) / ".done"

    def checkpoint(self, run: str, step: int) -> Path:
        return self.run_dir(run) / f"{step:06d}"

    def checkpoint_name(self, folder: Path) -> str:
        """A checkpoint's name in the score table: its folder relative to checkpoints/ (`run/step`)."""
        return Path(folder).relative_to(self.checkpoints).as_posix()

    def checkpoint_folders(self) -> list[Path]:
        """Every finished checkpoint folder, sorted by run, then step (a half-written `.tmp` is not one)."""
        return sorted(
            p.parent for p in self.checkpoints.glob("*/*/config.json") if not p.parent.name.endswith(".tmp")
        )

    def checkpoint_items(self, folder: Path) -> Path:
        """One checkpoint's scored items, cached so that an interrupted build resumes scoring."""
        return self.root / "items" / f"{self.checkpoint_name(folder).replace('/', '__')}.parquet"

    @staticmethod
    def run_meta(folder: Path) -> Path:
        """The training settings a zoo checkpoint carries (run, strategy, data, steps, spec)."""
        return Path(folder) / RUN_META_FILE
