"""Small helpers shared by the benchmarks: timing and a plain-text table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


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
    """Rows of dicts as a Markdown table (the README quotes these tables as printed)."""
    columns = list(columns or rows[0].keys())
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = [
        "| " + " | ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)) + " |",
        "|" + "|".join("-" * (width + 2) for width in widths) + "|",
    ]
    lines += ["| " + " | ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)) + " |" for line in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
