"""The one exception type users see: a one-line message naming the problem and the fix."""

import logging


class HeadcastError(Exception):
    """Bad input or an impossible request; the CLI prints it on one line and exits non-zero."""


def warn(message: str) -> None:
    """One line on stderr for a problem headcast works around (the work goes on)."""
    logging.getLogger("headcast").warning("headcast: warning: %s", message)
