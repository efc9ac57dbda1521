"""Shared fixtures: tiny random checkpoints of `TINY_SHAPES` and a tiny probe set, made once."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from headcast.experiments.modeling import TINY_SHAPES, save_tiny_checkpoint
from tests.tiny_probes import WORDS, write_tiny_probe_set


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never read or write the user's cache or MLflow store."""
    root = tmp_path_factory.mktemp("headcast-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADCAST_CACHE", str(root))
    patch.setenv("HF_HUB_OFFLINE", "1")
    # nor Hugging Face's datasets cache, nor (in parallel test processes) one another's
    patch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("datasets-cache")))
    yield root
    patch.undo()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """`tiny_checkpoint(name)`: the folder of a saved random model of one of `TINY_SHAPES`."""
    root = tmp_path_factory.mktemp("checkpoints")
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            # a seed of the name, not of the creation order: each shape's weights never depend on which
            # tests ran before
            made[name] = save_tiny_checkpoint(name, root / name, WORDS, seed=zlib.crc32(name.encode()) % 1000)
        return made[name]

    return make


@pytest.fixture(scope="session")
def tiny_probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_probe_set(tmp_path_factory.mktemp("probes"), n=6)


ALL_SHAPES = list(TINY_SHAPES)


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke zoo (3 runs x 5 checkpoints, 8 items per benchmark), built once per session."""
    from headcast.experiments.zoo import build

    out = tmp_path_factory.mktemp("zoo") / "smoke"
    build("smoke", out, seed=0)
    return out
