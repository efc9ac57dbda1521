"""The one exception type users see: a one-line message naming the problem and the fix."""

import logging
from collections.abc import Iterable


class HeadcastError(Exception):
    """Bad input or an impossible request; the CLI prints it on one line and exits non-zero.

    One line by construction: a name from the input that holds a line break cannot split the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


def warn(message: str) -> None:
    """One line on stderr for a problem headcast works around (the work goes on)."""
    logging.getLogger("headcast").warning("headcast: warning: %s", " ".join(message.splitlines()))


def listing(names: Iterable[str], limit: int = 3) -> str:
    """`a, b, c (+2 more)`: a few names for a one-line message, sorted, however many there are."""
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")
