"""Checkpoint fingerprints and the content-keyed cache of head metrics and answers.

Torch-free. A cache entry is keyed by what determines its numbers: the checkpoint's bytes,
the probe set's bytes and the extraction settings; paths and timestamps never decide a hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from headcast.errors import HeadcastError, warn
from headcast.files import OutputError, atomic_output


def cache_root() -> Path:
    """`$HEADCAST_CACHE`, else `~/.cache/headcast`."""
    return Path(os.environ.get("HEADCAST_CACHE") or Path.home() / ".cache" / "headcast")


def _file_digest(file: Path, memo_dir: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so unchanged weights are hashed once."""
    stat = file.stat()
    memo_key = hashlib.sha256(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    memo = memo_dir / memo_key
    with contextlib.suppress(OSError, UnicodeDecodeError):
        remembered = memo.read_text()
        if len(remembered) == 64 and all(c in "0123456789abcdef" for c in remembered):
            return remembered
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 24), b""):
            digest.update(chunk)
    # only a speed-up: a cache that cannot be written is reported once, by `MetricsCache.put`
    with contextlib.suppress(HeadcastError), atomic_output(memo) as tmp:
        tmp.write_text(digest.hexdigest())
    return digest.hexdigest()


# config.json, weights, processor/tokenizer configs, chat templates, vocabularies (merges.txt, vocab.txt)
FINGERPRINTED = ("*.json", "*.safetensors", "*.jinja", "*.model", "*.txt")


def checkpoint_fingerprint(path: str | Path) -> str:
    """Hash of what decides the checkpoint's numbers: config, weights, and the processor's and tokenizer's
    files (image size, image tokens, prompt template), not READMEs or logs."""
    path = Path(path)
    files = sorted(f for pattern in FINGERPRINTED for f in path.glob(pattern) if f.is_file())
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
        self._unwritable = False  # warned once: every later entry would fail the same way

    def __contains__(self, key: str) -> bool:
        return (self.root / f"{key}.npz").exists()

    def get(self, key: str) -> tuple[np.ndarray, pd.DataFrame, dict] | None:
        """The cached (samples, answers, settings); None when absent. A damaged entry is never trusted:
        it is removed with a warning, and the caller recomputes it."""
        file = self.root / f"{key}.npz"
        if not file.exists():
            return None
        try:
            with np.load(file) as data:
                samples = data["samples"]
                answers = pd.DataFrame(json.loads(str(data["answers"])))
                meta = json.loads(str(data["meta"]))
            if len(answers) != len(samples) or not isinstance(meta, dict):
                raise ValueError("its parts disagree")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, OSError) and err.strerror:  # its str repeats the (long) path
                reason = err.strerror
            else:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            warn(f"cache entry {file} is damaged ({reason}); recomputing it")
            self._remove(file)
            return None
        return samples, answers, meta

    def put(self, key: str, samples: np.ndarray, answers: pd.DataFrame, meta: dict) -> None:
        """Store an entry; a cache that cannot be written is skipped with a warning, the result stands."""
        if self._unwritable:
            return
        columns = json.dumps({name: answers[name].tolist() for name in answers.columns})
        file = self.root / f"{key}.npz"
        try:
            with atomic_output(file) as tmp, tmp.open("wb") as stream:
                np.savez(stream, samples=samples, answers=columns, meta=json.dumps(meta))
        except (OutputError, OSError) as err:
            self._unwritable = True
            reason = err.reason if isinstance(err, OutputError) else err.strerror or str(err)
            warn(
                f"cannot write to the cache {self.root} ({reason}); results are not cached "
                "(set HEADCAST_CACHE to a writable folder)"
            )

    @staticmethod
    def _remove(file: Path) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(file) if file.is_dir() else file.unlink()
