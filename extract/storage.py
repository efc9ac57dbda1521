"""Atomic writes, checkpoint fingerprints and the content-keyed cache of head metrics and answers.

Torch-free. A cache entry is keyed by what determines its numbers: the checkpoint's bytes,
the probe set's bytes and the extraction settings; paths and timestamps never decide a hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd


def cache_root() -> Path:
    """`$HEADCAST_CACHE`, else `~/.cache/headcast`."""
    return Path(os.environ.get("HEADCAST_CACHE") or Path.home() / ".cache" / "headcast")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should look like any written file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _file_digest(file: Path, memo_dir: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so unchanged weights are hashed once."""
    stat = file.stat()
    memo_key = hashlib.sha256(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    memo = memo_dir / memo_key
    if memo.is_file():
        return memo.read_text()
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 24), b""):
            digest.update(chunk)
    memo_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(memo) as tmp:
        tmp.write_text(digest.hexdigest())
    return digest.hexdigest()


def checkpoint_fingerprint(path: str | Path) -> str:
    """Hash of the checkpoint's config and weights (what decides its attention)."""
    path = Path(path)
    files = [path / "config.json", *sorted(path.glob("*.safetensors"))]
    memo_dir = cache_root() / "file-digests"
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{_file_digest(file, memo_dir)}\n".encode())
    return digest.hexdigest()[:20]


def cache_key(**parts: str) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


class MetricsCache:
    """Per-sample head metrics, per-probe answers and their settings, one `.npz` per key, written atomically.

    The answers table is stored as JSON of its columns, like the settings: floats round-trip exactly,
    NaN and missing tasks survive, and nothing needs pickle to load.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "head-metrics"

    def get(self, key: str) -> tuple[np.ndarray, pd.DataFrame, dict] | None:
        """The cached (samples, answers, settings); None when absent, unreadable or from an older layout."""
        file = self.root / f"{key}.npz"
        if not file.is_file():
            return None
        try:
            with np.load(file) as data:
                samples = data["samples"]
                answers = pd.DataFrame(json.loads(str(data["answers"])))
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError):
            return None  # unreadable entry: recompute and overwrite
        if len(answers) != len(samples):
            return None
        return samples, answers, meta

    def put(self, key: str, samples: np.ndarray, answers: pd.DataFrame, meta: dict) -> None:
        columns = json.dumps({name: answers[name].tolist() for name in answers.columns})
        with atomic_output(self.root / f"{key}.npz") as tmp, tmp.open("wb") as stream:
            np.savez(stream, samples=samples, answers=columns, meta=json.dumps(meta))
