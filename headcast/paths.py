"""One checked resolver for every path field read from a user's file (a probe's `image`, a metadata row's
`file_name`): whatever the text holds, a bad path ends in one HeadcastError line naming the field and the fix.

Python's own calls fail on such paths in three types (`ValueError` for a NUL byte, `OSError` for a name too
long, `RuntimeError` for a symlink loop on 3.11), and some succeed on paths that must never be opened (a FIFO
blocks the reader forever, a device node streams without end), so the checks are made here, once.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from headcast.errors import HeadcastError

NAME_MAX = 255  # per path component on Linux, macOS and Windows file systems
PATH_MAX = 4096  # Linux's limit for a whole path


def _name_limits(base: Path) -> tuple[int, int]:
    """The file system's limits where `base` lives, or the common ones where it cannot say."""
    try:
        return os.pathconf(base, "PC_NAME_MAX"), os.pathconf(base, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # a base that does not exist, or no pathconf (Windows)
        return NAME_MAX, PATH_MAX


def _check_text(text: str, candidate: Path, base: Path, what: str) -> None:
    """Refuse what no file system can hold, before asking it: NUL bytes and over-long names."""
    shown = repr(text[:80] + ("..." if len(text) > 80 else ""))
    if "\x00" in text:
        raise HeadcastError(f"{what} {shown} holds a NUL byte; no file name can, remove it")
    name_max, path_max = _name_limits(base)
    longest = max((len(os.fsencode(part)) for part in candidate.parts), default=0)
    if longest > name_max:
        raise HeadcastError(
            f"{what} {shown} has a name of {longest} bytes, over the file system's {name_max}; shorten it"
        )
    if len(os.fsencode(str(candidate))) >= path_max:
        raise HeadcastError(f"{what} {shown} is longer than the file system's {path_max} bytes; shorten it")


def _file_status(candidate: Path, shown: str, what: str, relative_to: str) -> os.stat_result:
    """`os.stat`, following links, with each way it fails said in one line."""
    try:
        return os.stat(candidate)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise HeadcastError(f"{what} {shown} is a symlink loop; point the link at a real file") from None
        if err.errno == errno.ENOENT and os.path.lexists(candidate):
            raise HeadcastError(
                f"{what} {shown} is a dangling symlink ({candidate} -> {os.readlink(candidate)}); "
                "point it at a file that exists"
            ) from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise HeadcastError(
                f"{what} {candidate} does not exist; paths are relative to {relative_to}"
            ) from None
        if err.errno == errno.ENAMETOOLONG:
            raise HeadcastError(f"{what} {shown} is longer than the file system allows; shorten it") from None
        raise HeadcastError(f"{what} {shown} cannot be read ({err.strerror}); fix its permissions") from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def resolve_input_file(base: str | Path, text: str, what: str, relative_to: str | None = None) -> Path:
    """`text` (relative to the folder `base`, or absolute) as the absolute path of a regular file.

    `what` names the field for the message (e.g. "probes.jsonl:3: image"), `relative_to` says what relative
    paths are taken against (default: the folder `base`). Refused, in one line each: NUL bytes, names or
    paths over the file system's limits, symlink loops, dangling links, missing files, and anything that is
    not a regular file (folders, FIFOs, device nodes, sockets).
    """
    base = Path(base)
    if "\x00" in str(base):
        raise HeadcastError(f"{what}: the folder {str(base)[:80]!r} holds a NUL byte; no file name can")
    candidate = base / text if "\x00" not in text else base
    _check_text(text, candidate, base, what)
    shown = repr(text[:80] + ("..." if len(text) > 80 else ""))
    status = _file_status(candidate, shown, what, relative_to or f"the folder {base}")
    if not stat.S_ISREG(status.st_mode):
        raise HeadcastError(f"{what} {shown} is {_kind(status.st_mode)}; name a regular file")
    return Path(os.path.realpath(candidate))  # no loop left to trip on: os.stat followed every link
