"""The service's own error: an HTTP status with a one-line message, answered as `{"error": message}`."""

from __future__ import annotations


class ServiceError(Exception):
    """An HTTP error with a one-line message; the app's handler turns it into `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def one_line(err: BaseException) -> str:
    """What a client is told about an unexpected exception: its type and first line, no traceback."""
    text = str(err).strip()
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
