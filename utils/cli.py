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


def number(minimum: float, inclusive: bool, maximum: float | None = None) -> Callable[[str], float]:
    """A finite float above ``minimum`` (or equal to it when ``inclusive``), and at most ``maximum`` if given."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or (value < minimum if inclusive else value <= minimum) or (
                maximum is not None and value > maximum):
            top = f" and <= {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>=' if inclusive else '>'} {minimum:g}{top}, got {text!r}"
            )
        return value

    return parse


def device_name(text: str) -> str:
    """``auto``, ``cuda``, ``cuda:N``, ``mps`` or ``cpu`` (whether it exists is checked when resolved)."""
    if text.split(":")[0] not in DEVICE_CHOICES:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose one of {list(DEVICE_CHOICES)}")
    return text


# Roles of a config field on the command line of ``training.train`` (field metadata, read by
# :mod:`training.options`): what a resumed run does with it.
RUN = "run"  # identifies the run: a resume must keep it (an explicit different value is refused)
RESUMABLE = "resumable"  # a resume may change it; it keeps the run's value unless given
INVOCATION = "invocation"  # belongs to one invocation: a resume takes it from its own command line
ROLES = (RUN, RESUMABLE, INVOCATION)


def option(*flags: str, role: str = RUN, group: str = "training", **argparse_options) -> dict:
    """Field metadata: the command-line option that sets a config field (``dataclasses.field(metadata=...)``).

    Args:
        *flags: the option strings, e.g. ``"--frames"``; the option's destination is the field's name.
        role: :data:`RUN`, :data:`RESUMABLE` or :data:`INVOCATION`.
        group: the ``--help`` group it is listed in.
        **argparse_options: passed to ``add_argument`` (``type``, ``metavar``, ``help``, ``action``...);
            the default is the field's.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return {"option": {"flags": flags, "role": role, "group": group, "argparse": argparse_options}}


def given_values(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The options ``argv`` sets explicitly, by destination (parsed with every default suppressed and
    nothing required).

    Raises:
        SystemExit: an option that does not parse (argparse has printed why).
    """
    saved = [(action, action.default, action.required) for action in parser._actions]
    try:
        for action in parser._actions:
            action.default, action.required = argparse.SUPPRESS, False
        return vars(parser.parse_args(argv))
    finally:
        for action, default, required in saved:
            action.default, action.required = default, required
