"""Argument types shared by the command lines (``training.train``, ``evaluate.py``, ``demo.py``).

Each turns a bad value into argparse's one-line ``error: argument --x: ...`` (exit status 2) instead of
a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from utils.devices import DEVICE_CHOICES


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _integer(text, 0, "an integer >= 0")


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def number(minimum: float, inclusive: bool) -> Callable[[str], float]:
    """A finite float above ``minimum`` (or equal to it when ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or (value < minimum if inclusive else value <= minimum):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>=' if inclusive else '>'} {minimum:g}, got {text!r}"
            )
        return value

    return parse


def device_name(text: str) -> str:
    """``auto``, ``cuda``, ``cuda:N``, ``mps`` or ``cpu`` (whether it exists is checked when resolved)."""
    if text.split(":")[0] not in DEVICE_CHOICES:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose one of {list(DEVICE_CHOICES)}")
    return text
