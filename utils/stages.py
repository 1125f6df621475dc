"""Where a long command's time goes: the wall-clock seconds of each stage, and their table.

The demo times every stage (the judges, each run's training and its ex-post prior fit, each evaluation and
its parts, the report) and prints the table at the end of its log and into the report, so a slow stage
shows itself (issue 32: the prior fits were minutes of silence, found only by reading timestamps).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class StageTimes:
    """Stages in the order they ran; a stage may have parts (e.g. an evaluation's metrics), shown under it
    and not added to the total a second time."""

    rows: list[tuple[str, str, float, str]] = field(default_factory=list)  # (stage, part, seconds, note)

    def add(self, stage: str, seconds: float, part: str = "", note: str = "") -> None:
        """Record ``seconds`` of ``stage`` (or of one ``part`` of it)."""
        self.rows.append((stage, part, float(seconds), note))

    @contextmanager
    def time(self, stage: str, note: str = "") -> Iterator[None]:
        """Time the ``with`` block as ``stage`` (recorded also when the block raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started, note=note)

    def total(self) -> float:
        """Seconds of all stages (their parts are inside them)."""
        return sum(seconds for _, part, seconds, _ in self.rows if not part)

    def table(self) -> pd.DataFrame:
        """One row per stage and part (``stage / part``), then the total: seconds, minutes, share of the
        total, note; strings, for :func:`evaluation.reporting.writer.markdown_table`."""
        total = self.total()
        names, cells = [], []
        for stage, part, seconds, note in [*self.rows, ("total", "", total, "")]:
            names.append(f"{stage} / {part}" if part else stage)
            share = f"{100 * seconds / total:.0f}%" if total > 0 else ""
            cells.append({"seconds": f"{seconds:.1f}", "minutes": f"{seconds / 60:.2f}", "share": share,
                          "note": note})
        return pd.DataFrame(cells, index=pd.Index(names, name="stage"))
