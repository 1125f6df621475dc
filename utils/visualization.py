"""Frame grids: videos as montages of frames, ready for a paper, and the montage toolkit other figures use.

Matplotlib (through ``Figure`` objects on the Agg canvas, never pyplot's global state, so it works with
no display) only. :func:`save_frame_grid` writes one file (creating its folder) and returns its path; the
format follows the suffix (``.png``, ``.pdf``, ``.svg``). A ``.png`` figure is also written as a ``.pdf``
beside it (vector text and axes for a paper).

Videos are grayscale, ``(T, 1, H, W)`` or ``(T, H, W)`` tensors or arrays with values in [0, 1]
(NaN is drawn black, values outside [0, 1] are clipped). A figure of frames is one montage image, cells
separated by thin white lines, drawn with nearest-neighbour sampling (no smoothing) and labelled by tick
labels: pixel-exact, and fast even for large grids.

The other figures live beside the code that uses them: GIFs and MP4s in :mod:`utils.animation`, training
curves in :mod:`utils.curves`, and the figures that run a model (swap matrices, interpolations, the
evaluation's figure set) in :mod:`evaluation.reporting.figures`. They build on the helpers here
(:func:`named_videos`, :func:`montage`, :func:`montage_figure`, :func:`save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from utils.atomic import atomic_write

DPI = 120
CELL_GAP = 2  # pixels of white between cells
GROUP_GAP = 6  # pixels of white between groups (sources and results, panels)
MAX_DISPLAY_WIDTH = 1800  # figure pixels the montage aims for (before labels)
FONT_SIZE = 8


# ----------------------------------------------------------------------------------------------------
# Inputs


def as_frames(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """One video as a float32 array ``(T, H, W)`` in [0, 1].

    Args:
        video: ``(T, 1, H, W)``, ``(T, H, W)`` or ``(1, T, 1, H, W)``, a tensor (any device) or an array.

    Raises:
        ValueError: any other shape (the message names the received shape).
    """
    if isinstance(video, torch.Tensor):
        array = video.detach().to("cpu", torch.float32).numpy()
    else:
        array = np.asarray(video, dtype=np.float32)
    shape = array.shape
    if array.ndim == 5 and shape[0] == 1:
        array = array[0]
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or min(array.shape) < 1:
        raise ValueError(f"expected a grayscale video of shape (T, 1, H, W) or (T, H, W), got {shape}")
    return np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0)


def named_videos(videos: Any) -> list[tuple[str | None, np.ndarray]]:
    """``(label or None, frames)`` for a dict of videos, a list of videos or ``(label, video)`` pairs, a
    batch ``(B, T, 1, H, W)`` or a single video."""
    if isinstance(videos, Mapping):
        named = [(str(label), as_frames(video)) for label, video in videos.items()]
    elif isinstance(videos, (torch.Tensor, np.ndarray)):
        if videos.ndim == 5:
            named = [(None, as_frames(video)) for video in videos]
        else:
            named = [(None, as_frames(videos))]
    elif isinstance(videos, Sequence) and not isinstance(videos, str):
        named = []
        for item in videos:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                named.append((item[0], as_frames(item[1])))
            else:
                named.append((None, as_frames(item)))
    else:
        raise TypeError(
            f"expected videos as a dict, a list, a tensor or an array, got {type(videos).__name__}"
        )
    if not named:
        raise ValueError("no videos to draw")
    return named


def check_positive(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ``ValueError`` (naming ``name``) unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def select_frames(num_frames: int, every: int = 1, max_frames: int | None = None) -> list[int]:
    """The frames a figure shows: ``t = 0, every, 2 * every, ...`` below ``num_frames``, at most ``max_frames``."""
    check_positive("every", every)
    if max_frames is not None:
        check_positive("max_frames", max_frames)
    return list(range(0, num_frames, every))[:max_frames]


# ----------------------------------------------------------------------------------------------------
# Montages: one image of cells, with the centres of its rows and columns for the labels


def montage(
    cells: list[list[np.ndarray | None]],
    row_gaps: Sequence[int] | None = None,
    col_gaps: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[float], list[float]]:
    """Tile 2-D cells (``None`` for an empty one) on a white background.

    Args:
        cells: rows of cells; each row as long as the others.
        row_gaps: the gap after each row but the last (``CELL_GAP`` by default).
        col_gaps: the gap after each column but the last.

    Returns:
        ``(image, row_centres, column_centres)`` in pixels of the image.
    """
    num_rows, num_cols = len(cells), len(cells[0])
    row_gaps = list(row_gaps) if row_gaps is not None else [CELL_GAP] * (num_rows - 1)
    col_gaps = list(col_gaps) if col_gaps is not None else [CELL_GAP] * (num_cols - 1)
    heights = [max((cell.shape[0] for cell in row if cell is not None), default=1) for row in cells]
    widths = [
        max((row[col].shape[1] for row in cells if row[col] is not None), default=1)
        for col in range(num_cols)
    ]
    tops = np.concatenate([[0], np.cumsum(np.add(heights[:-1], row_gaps))]).astype(int)
    lefts = np.concatenate([[0], np.cumsum(np.add(widths[:-1], col_gaps))]).astype(int)
    image = np.ones((tops[-1] + heights[-1], lefts[-1] + widths[-1]), dtype=np.float32)
    for row_index, row in enumerate(cells):
        for col_index, cell in enumerate(row):
            if cell is not None:
                top, left = tops[row_index], lefts[col_index]
                image[top : top + cell.shape[0], left : left + cell.shape[1]] = cell
    row_centres = [top + (height - 1) / 2 for top, height in zip(tops, heights, strict=True)]
    col_centres = [left + (width - 1) / 2 for left, width in zip(lefts, widths, strict=True)]
    return image, row_centres, col_centres


def _draw_montage(
    ax: Any,
    image: np.ndarray,
    row_centres: Sequence[float],
    col_centres: Sequence[float],
    row_labels: Sequence[str] | None,
    col_labels: Sequence[str] | None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> None:
    """Show a montage on ``ax``: grayscale, no smoothing, column labels on top, row labels on the left."""
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks(col_centres if col_labels else [], labels=list(col_labels) if col_labels else [])
    ax.set_yticks(row_centres if row_labels else [], labels=list(row_labels) if row_labels else [])
    ax.tick_params(length=0, labelsize=FONT_SIZE, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=FONT_SIZE + 1)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=FONT_SIZE + 1)
    if title:
        ax.set_title(title, fontsize=FONT_SIZE + 2, pad=FONT_SIZE + 10 if col_labels else 6)


def _display_scale(width: int) -> float:
    """Figure pixels per image pixel: large enough for small frames, bounded for wide montages."""
    return float(np.clip(MAX_DISPLAY_WIDTH / max(width, 1), 1.0, 4.0))


def montage_figure(panels: list[dict[str, Any]], title: str | None = None, dpi: int = DPI) -> Figure:
    """One figure with montage panels stacked vertically; each panel holds ``_draw_montage``'s arguments."""
    width = max(panel["image"].shape[1] for panel in panels)
    scale = _display_scale(width)
    heights = [panel["image"].shape[0] for panel in panels]
    figure = Figure(figsize=(width * scale / dpi, sum(heights) * scale / dpi), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_montage(ax, **panel)
    if title:
        figure.suptitle(title, fontsize=FONT_SIZE + 3)
    return figure


def pdf_twin(path: str | os.PathLike) -> Path | None:
    """The PDF written beside a PNG figure (``None`` for other formats)."""
    path = Path(path)
    return path.with_suffix(".pdf") if path.suffix.lower() == ".png" else None


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = DPI, tight: bool = True) -> Path:
    """Write ``figure`` to ``path``, and a PNG also to its :func:`pdf_twin`, each atomically (a crash or a
    full disk leaves the previous file, never half a figure).

    Raises:
        OSError: a file cannot be written (its ``filename`` names it).
    """
    path = Path(path)
    options = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    for target in (path, pdf_twin(path)):
        if target is not None:
            file_format = target.suffix.lstrip(".").lower() or None
            atomic_write(target, lambda handle, file_format=file_format: figure.savefig(
                handle, format=file_format, dpi=dpi, facecolor="white", **options))
    return path


# ----------------------------------------------------------------------------------------------------
# Frame grids


def save_frame_grid(
    rows: Mapping[str, Any] | Sequence[Any] | torch.Tensor,
    path: str | os.PathLike,
    title: str | None = None,
    max_frames: int | None = None,
    every: int = 1,
    group_size: int | None = None,
    dpi: int = DPI,
) -> Path:
    """Rows of videos, one frame per column (e.g. ground truth above its reconstruction).

    Args:
        rows: ``{"ground truth": video, "reconstruction": video}``, a list of videos or of ``(label,
            video)`` pairs, or a batch ``(B, T, 1, H, W)``. Videos may differ in length (short rows end
            early).
        path: the image file to write.
        title: a title above the grid.
        max_frames: show at most this many columns.
        every: show every ``every``-th frame (t = 0, every, 2 * every, ...).
        group_size: leave a wider gap after every ``group_size`` rows (e.g. 2 for truth/reconstruction
            pairs).
        dpi: resolution.

    Returns:
        ``path``.
    """
    named = named_videos(rows)
    indices = select_frames(max(len(frames) for _, frames in named), every, max_frames)
    if group_size is not None:
        check_positive("group_size", group_size)
    cells = [[frames[t] if t < len(frames) else None for t in indices] for _, frames in named]
    row_gaps = [
        GROUP_GAP if group_size and (row + 1) % group_size == 0 else CELL_GAP for row in range(len(cells) - 1)
    ]
    image, row_centres, col_centres = montage(cells, row_gaps=row_gaps)
    labels = [label if label is not None else f"video {number}" for number, (label, _) in enumerate(named)]
    panel = {
        "image": image,
        "row_centres": row_centres,
        "col_centres": col_centres,
        "row_labels": labels,
        "col_labels": [f"t={t}" for t in indices],
    }
    return save_figure(montage_figure([panel], title, dpi), path, dpi)


__all__ = [
    "as_frames",
    "check_positive",
    "montage",
    "montage_figure",
    "named_videos",
    "pdf_twin",
    "save_figure",
    "save_frame_grid",
    "select_frames",
]
