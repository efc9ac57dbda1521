"""The one exception type users see: a one-line message naming the problem and the fix."""

import logging


class HeadcastError(Exception):
    """Bad input or an impossible request; the CLI prints it on one line and exits non-zero.

    One line by construction: a name from the input that holds a line break cannot split the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


def warn(message: str) -> None:
    """One line on stderr for a problem headcast works around (the work goes on)."""
    logging.getLogger("headcast").warning("headcast: warning: %s", " ".join(message.splitlines()))
