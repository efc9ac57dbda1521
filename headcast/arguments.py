"""argparse types for numeric options: a bad value is refused while parsing, saying what is allowed.

argparse reports a refused value as `headcast CMD: error: argument --x: <message>` and exits 2.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A count of at least 1 (a batch size); 0 or less cannot split the work into batches."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one of at least 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive; give a whole number of at least 1")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (a threshold on an attention share): NaN would silently make no head visual."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give one from 0 to 1") from None
    if not 0 <= value <= 1:  # also refuses NaN and inf
        raise argparse.ArgumentTypeError(
            f"{text} is not in [0, 1]; attention shares are fractions, give one from 0 to 1"
        )
    return value


def port_number(text: str) -> int:
    """A TCP port a server can listen on (1 to 65535)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {port}")
    return port
