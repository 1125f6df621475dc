"""Training curves for a paper, read from the trainer's ``metrics.csv``: loss, reconstruction and KL terms.

Matplotlib (a ``Figure`` on the Agg canvas, no display needed); the figure is written like every other
figure (:func:`utils.visualization.save_figure`: a ``.png`` also gets a ``.pdf`` beside it).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from utils.visualization import DPI, save_figure

LOSS_UNIT = "nats per video"  # the losses are summed over pixels and frames (BCE: nats), mean over videos
_SPLITS = (("train_", "-", "train"), ("val_", "--", "validation"))
_KL_MARKERS = {"kl_content": "o", "kl_motion": "s", "kl_z": "^", "kl": "D"}
_PANEL_TITLES = {"loss": "total loss", "recon": "reconstruction", "recon_loss": "reconstruction"}
_X_AXES = {"step": "optimizer step", "epoch": "epoch", "minutes": "training time (min, cumulative)"}


def _read_metrics_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a metrics CSV as float arrays (empty or non-numeric cells become NaN)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"metrics file {path} not found (training writes checkpoints/NAME/metrics.csv)"
        )
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        names = reader.fieldnames or []

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {name: np.array([number(row.get(name)) for row in rows], dtype=np.float64) for name in names}


def _x_values(columns: Mapping[str, np.ndarray], x: str, length: int) -> tuple[np.ndarray, str]:
    """The x values of a run and their axis name: ``x`` if the CSV has it, else epoch, else row numbers."""
    if x == "minutes" and "seconds" in columns:
        return np.nancumsum(columns["seconds"]) / 60.0, x
    for name in (x, "step", "epoch"):
        if name in columns and name in _X_AXES:
            return columns[name], name
    return np.arange(1, length + 1, dtype=np.float64), "row"


def plot_training_curves(
    csv_paths: Mapping[str, str | os.PathLike] | str | os.PathLike,
    out_path: str | os.PathLike,
    title: str | None = None,
    dpi: int = DPI,
    unit: str = LOSS_UNIT,
    x: str = "step",
) -> Path:
    """Training curves for a paper: total loss, reconstruction, and every KL term on one panel.

    Read from the trainer's ``metrics.csv`` (``train_X`` / ``val_X`` columns, one row per epoch). The KL
    panel holds every ``kl_*`` term (``kl_content`` and ``kl_motion`` of the Disentangled VAE, ``kl_z`` of
    the others; the total ``kl`` for a run without terms), so it shows at a glance whether a code carries
    information at all. Every y axis is logarithmic and in ``unit``. Colour is the run, line style the split
    (train solid, validation dashed), marker the KL term; one legend explains them all. Other ``train_X``
    columns get a panel each; the learning rate is not drawn (the CSV keeps it). Empty or non-numeric cells
    are gaps.

    Args:
        csv_paths: ``{run name: metrics.csv}``, or one path (the run is named after its folder).
        out_path: the image file to write (a ``.png`` also gets a ``.pdf`` beside it).
        title: figure title.
        dpi: resolution.
        unit: what the losses are measured in (the y label).
        x: ``"step"`` (optimizer steps), ``"epoch"`` or ``"minutes"`` (cumulative training wall-clock
            time); a CSV without that column falls back to step, epoch, then the row number.

    Returns:
        ``out_path``.

    Raises:
        FileNotFoundError: a CSV is missing.
        ValueError: no CSV has any ``train_``/``val_`` column, or ``x`` is not one of the three.
    """
    if x not in _X_AXES:
        raise ValueError(f"x must be one of {list(_X_AXES)}, got {x!r}")
    if not isinstance(csv_paths, Mapping):
        single = Path(csv_paths)
        csv_paths = {single.parent.name or single.stem: single}
    runs = {name: _read_metrics_csv(Path(path)) for name, path in csv_paths.items()}
    metrics: set[str] = set()
    for columns in runs.values():
        for column in columns:
            for prefix, _, _ in _SPLITS:
                if column.startswith(prefix):
                    metrics.add(column[len(prefix) :])
    if not metrics:
        raise ValueError(f"no train_*/val_* columns in {[str(path) for path in csv_paths.values()]}")
    kl_terms = sorted(metric for metric in metrics if metric.startswith("kl_"))
    panels: list[tuple[str, list[str]]] = [(metric, [metric]) for metric in ("loss", "recon", "recon_loss")
                                           if metric in metrics]
    if kl_terms or "kl" in metrics:
        panels.append(("KL terms" if kl_terms else "KL", kl_terms or ["kl"]))
    shown = {metric for _, group in panels for metric in group} | {"kl"}
    panels += [(metric.replace("_", " "), [metric]) for metric in sorted(metrics - shown)]

    figure = Figure(figsize=(4.0 * len(panels) + 2.2, 3.4), dpi=dpi, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = {run: f"C{number % 10}" for number, run in enumerate(runs)}
    x_names: set[str] = set()
    used_terms: list[str] = []
    for ax, (panel, group) in zip(axes, panels, strict=True):
        for run, columns in runs.items():
            for metric in group:
                for prefix, style, _ in _SPLITS:
                    values = columns.get(prefix + metric)
                    if values is None or not np.isfinite(values).any():
                        continue
                    x_values, x_name = _x_values(columns, x, len(values))
                    x_names.add(x_name)
                    marker = _KL_MARKERS.get(metric, "o") if len(group) > 1 or metric.startswith("kl") else None
                    if marker and metric not in used_terms:
                        used_terms.append(metric)
                    ax.plot(x_values, values, style, color=colours[run], marker=marker, markersize=4,
                            markevery=max(1, len(values) // 10), linewidth=1.3)
        ax.set_title(_PANEL_TITLES.get(panel, panel), fontsize=10)
        ax.set_ylabel(unit)
        ax.set_yscale("log")  # losses fall over orders of magnitude; KL terms differ by as much
        ax.grid(alpha=0.3, which="both")
        if x != "minutes":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.set_xlabel(" / ".join(_X_AXES.get(name, "row of metrics.csv") for name in sorted(x_names)))

    handles = [Line2D([], [], color=colour, linewidth=2, label=run) for run, colour in colours.items()]
    handles += [Line2D([], [], color="0.3", linestyle=style, label=label) for _, style, label in _SPLITS]
    handles += [Line2D([], [], color="0.3", linestyle="none", marker=_KL_MARKERS.get(term, "o"),
                       label=term.replace("kl_", "KL ").replace("kl", "KL")) for term in used_terms]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    return save_figure(figure, out_path, dpi, tight=False)


__all__ = ["LOSS_UNIT", "plot_training_curves"]
