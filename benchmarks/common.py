"""Small helpers shared by the benchmarks: the device check, timing and a Markdown table."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from utils.devices import resolve_device


def checked_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """The device ``--device NAME`` means here, or the parser's one-line error (exit 2) when this machine
    lacks it (e.g. ``--device cuda`` without a GPU), before anything is measured."""
    try:
        return resolve_device(name)
    except ValueError as error:
        parser.error(str(error))


def time_call(function: Callable[[], object], repeats: int = 5, warmup: int = 1, sync: Callable | None = None):
    """Median wall-clock seconds of ``function()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a Markdown table (docs/reproducing.md quotes these tables as printed)."""
    frame = pd.DataFrame(list(rows))
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    return frame.map(_cell).to_markdown(index=False, disable_numparse=True)


def _cell(value) -> str:
    """3 significant digits below 100, whole numbers with thousands separators above; blanks for NaN."""
    if isinstance(value, float):
        if value != value:  # NaN: a column this row does not have
            return ""
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
