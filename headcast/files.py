"""Writes that never leave a half-written file, and output paths refused before the work that fills them.

Torch-free and stage-free: feature tables, score tables, caches, reports and anchor files are all
written through `atomic_output`.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from headcast.errors import HeadcastError


class OutputError(HeadcastError):
    """An output path that cannot be written; `reason` says why in a few words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path} ({reason}); choose another output path")
        self.path, self.reason = path, reason


def _unwritable(path: Path, err: OSError) -> OutputError:
    """The OS error in words; 'File exists' from a parent that is a file names that file instead."""
    reason = err.strerror or str(err)
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in path.parents if os.path.isfile(p)), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
    return OutputError(path, reason)


def _temp_file(path: Path) -> Path:
    """A new empty temporary file beside `path`, named `.{name}.{pid}.XXXXXXXX.tmp{suffix}`."""
    handle, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + path.suffix
    )
    os.close(handle)
    return Path(tmp)


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Refuse an output path before the work that fills it (an extraction may take hours), leaving nothing.

    Tries what the writer will do: make the parent folders and a temporary file (a folder when
    `folder`) of the writer's name beside `path`; then removes them again.
    """
    path = Path(path)
    made = list(itertools.takewhile(lambda p: not os.path.lexists(p), path.parents))  # deepest first
    try:
        if path.is_dir() and not folder:
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        if folder and path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            os.rmdir(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp."))
        else:
            _temp_file(path).unlink()
    except OSError as err:
        raise _unwritable(path, err) from None
    finally:
        for parent in made:
            with contextlib.suppress(OSError):
                parent.rmdir()


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    The temporary name carries the writer's pid, so leftovers of a killed writer are removed by the next.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        tmp = _temp_file(path)
    except OSError as err:
        raise _unwritable(path, err) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should look like any written file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_leftovers(path: Path) -> None:
    """Temporary files of `path` whose writer is gone (killed mid-write): nothing else removes them."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no pid can be
        return False
    except PermissionError:
        return True
    return True
