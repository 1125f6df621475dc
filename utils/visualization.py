"""Figures and animations of videos and of the content/motion experiments, ready for a paper.

Matplotlib (through ``Figure`` objects on the Agg canvas, never pyplot's global state, so it works with
no display) and Pillow only. Every ``save_*`` / ``plot_*`` function writes one file (creating its
folder) and returns its path; the format follows the suffix (``.png``, ``.pdf``, ``.svg``; ``.gif`` for
animations). A ``.png`` figure is also written as a ``.pdf`` beside it (vector text and axes for a paper),
and a GIF as an ``.mp4`` beside it where the optional ``imageio-ffmpeg`` package is installed.

Videos are grayscale, ``(T, 1, H, W)`` or ``(T, H, W)`` tensors or arrays with values in [0, 1]
(NaN is drawn black, values outside [0, 1] are clipped). A figure of frames is one montage image, cells
separated by thin white lines, drawn with nearest-neighbour sampling (no smoothing) and labelled by tick
labels: pixel-exact, and fast even for large grids.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

DPI = 120
CELL_GAP = 2  # pixels of white between cells
GROUP_GAP = 6  # pixels of white between groups (sources and results, panels)
STRIP_GAP = 1  # pixels of grey between the frames of one cell
MAX_DISPLAY_WIDTH = 1800  # figure pixels the montage aims for (before labels)
FONT_SIZE = 8
FACTORS = ("content", "motion")


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


def _named_videos(videos: Any) -> list[tuple[str | None, np.ndarray]]:
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


def _as_batch(videos: Any, what: str) -> torch.Tensor:
    """A batch ``(B, T, 1, H, W)`` from a batch tensor or a list of videos of one shape."""
    if isinstance(videos, (list, tuple)):
        videos = torch.stack([torch.as_tensor(video) for video in videos])
    videos = torch.as_tensor(videos)
    if videos.ndim == 4:  # a list of (T, H, W) videos
        videos = videos[:, :, None]
    if videos.ndim != 5 or videos.shape[0] < 1:
        raise ValueError(f"expected {what} of shape (B, T, 1, H, W), got {tuple(videos.shape)}")
    return videos


def _model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_positive(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _frame_indices(num_frames: int, every: int = 1, max_frames: int | None = None) -> list[int]:
    _check_positive("every", every)
    if max_frames is not None:
        _check_positive("max_frames", max_frames)
    return list(range(0, num_frames, every))[:max_frames]


def _spread_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``[0, num_frames)``, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))})


def _normalise_indices(indices: Sequence[int], num_frames: int) -> list[int]:
    result = []
    for index in indices:
        if not -num_frames <= int(index) < num_frames:
            raise ValueError(f"frame index {index} out of range for {num_frames} frames")
        result.append(int(index) % num_frames)
    if not result:
        raise ValueError("frame_indices is empty")
    return result


# ----------------------------------------------------------------------------------------------------
# Montages: one image of cells, with the centres of its rows and columns for the labels


def _strip(frames: np.ndarray) -> np.ndarray:
    """Frames ``(k, H, W)`` side by side with thin grey separators: ``(H, k * W + (k - 1))``."""
    height = frames.shape[1]
    separator = np.full((height, STRIP_GAP), 0.5, dtype=np.float32)
    parts = []
    for number, frame in enumerate(frames):
        if number:
            parts.append(separator)
        parts.append(frame)
    return np.concatenate(parts, axis=1)


def _montage(
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


def _montage_figure(panels: list[dict[str, Any]], title: str | None = None, dpi: int = DPI) -> Figure:
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


def _save_figure(figure: Figure, path: str | os.PathLike, dpi: int = DPI, tight: bool = True) -> Path:
    """Write ``figure`` to ``path``, and a PNG also to its :func:`pdf_twin`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    figure.savefig(path, dpi=dpi, facecolor="white", **options)
    twin = pdf_twin(path)
    if twin is not None:
        figure.savefig(twin, dpi=dpi, facecolor="white", **options)
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
    named = _named_videos(rows)
    indices = _frame_indices(max(len(frames) for _, frames in named), every, max_frames)
    if group_size is not None:
        _check_positive("group_size", group_size)
    cells = [[frames[t] if t < len(frames) else None for t in indices] for _, frames in named]
    row_gaps = [
        GROUP_GAP if group_size and (row + 1) % group_size == 0 else CELL_GAP for row in range(len(cells) - 1)
    ]
    image, row_centres, col_centres = _montage(cells, row_gaps=row_gaps)
    labels = [label if label is not None else f"video {number}" for number, (label, _) in enumerate(named)]
    panel = {
        "image": image,
        "row_centres": row_centres,
        "col_centres": col_centres,
        "row_labels": labels,
        "col_labels": [f"t={t}" for t in indices],
    }
    return _save_figure(_montage_figure([panel], title, dpi), path, dpi)


# ----------------------------------------------------------------------------------------------------
# GIFs


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..." if text else ""


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _imageio_ffmpeg() -> Any:
    """The optional ``imageio_ffmpeg`` module (it bundles an ffmpeg binary), or ``None``."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg


def mp4_twin(path: str | os.PathLike) -> Path | None:
    """The MP4 written beside a GIF, or ``None`` where ``imageio-ffmpeg`` is not installed."""
    path = Path(path)
    return path.with_suffix(".mp4") if path.suffix.lower() == ".gif" and _imageio_ffmpeg() else None


def _write_mp4(images: list[Image.Image], path: Path, fps: float) -> Path:
    """H.264 video of grayscale frames, padded with black to even sides (yuv420p needs them)."""
    ffmpeg = _imageio_ffmpeg()
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    width, height = width + width % 2, height + height % 2
    writer = ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="gray", fps=fps, macro_block_size=1,
                                 ffmpeg_log_level="error")
    writer.send(None)  # start the encoder
    try:
        for image in images:
            canvas = Image.new("L", (width, height), color=0)
            canvas.paste(image.convert("L"), (0, 0))
            writer.send(np.ascontiguousarray(np.asarray(canvas, dtype=np.uint8)))
    finally:
        writer.close()
    return path


def _write_gif(images: list[Image.Image], path: str | os.PathLike, fps: float) -> Path:
    """An animated GIF (looping), and its :func:`mp4_twin` where ``imageio-ffmpeg`` is installed."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, int(round(1000 / fps))),
        loop=0,
        optimize=False,
    )
    twin = mp4_twin(path)
    if twin is not None:
        _write_mp4(images, twin, fps)
    return path


def _captioned(image: np.ndarray, caption: str, scale: int) -> Image.Image:
    """A montage upscaled nearest-neighbour, under a one-line caption bar."""
    pixels = np.kron(_to_uint8(image), np.ones((scale, scale), dtype=np.uint8))
    font_size = max(10, 5 * scale)
    bar = font_size + 6
    canvas = Image.new("L", (pixels.shape[1], pixels.shape[0] + bar), color=40)
    canvas.paste(Image.fromarray(pixels, mode="L"), (0, bar))
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    draw.text((3, 2), _fit_text(draw, caption, font, pixels.shape[1] - 6), fill=255, font=font)
    return canvas


def save_video_gif(
    videos: Mapping[str, Any] | Sequence[Any] | torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    fps: float = 8,
    labels: Sequence[str] | None = None,
    scale: int = 2,
    columns: int | None = None,
) -> Path:
    """One or several videos side by side as an animated GIF, each under its label.

    A bar on top shows the frame number (``t=3/20``), so every GIF frame differs and none are merged.
    Videos shorter than the longest hold their last frame.

    Args:
        videos: a single video, a batch ``(B, T, 1, H, W)``, a list of videos or of ``(label, video)``
            pairs, or a dict ``{label: video}``.
        path: the ``.gif`` file to write.
        fps: frames per second.
        labels: one label per video (overrides the dict keys / pair labels).
        scale: integer nearest-neighbour upscaling factor.
        columns: videos per row of the grid (all in one row by default).

    Returns:
        ``path``.
    """
    named = _named_videos(videos)
    _check_positive("scale", scale)
    if labels is not None:
        if len(labels) != len(named):
            raise ValueError(f"got {len(labels)} labels for {len(named)} videos")
        named = [(str(label), frames) for label, (_, frames) in zip(labels, named, strict=True)]
    columns = len(named) if columns is None else columns
    _check_positive("columns", columns)
    num_rows = math.ceil(len(named) / columns)
    num_frames = max(len(frames) for _, frames in named)
    tile_height = max(frames.shape[1] for _, frames in named) * scale
    tile_width = max(frames.shape[2] for _, frames in named) * scale
    font_size = max(10, 5 * scale)
    font = _font(font_size)
    label_height = font_size + 4 if any(label for label, _ in named) else 0
    caption_height = font_size + 6
    gap = 2 * scale
    width = columns * tile_width + (columns - 1) * gap
    height = caption_height + num_rows * (label_height + tile_height) + (num_rows - 1) * gap

    images = []
    for t in range(num_frames):
        canvas = Image.new("L", (width, height), color=40)
        draw = ImageDraw.Draw(canvas)
        draw.text((3, 2), f"t={t}/{num_frames}", fill=255, font=font)
        for number, (label, frames) in enumerate(named):
            row, col = divmod(number, columns)
            left = col * (tile_width + gap)
            top = caption_height + row * (label_height + tile_height + gap)
            if label:
                draw.text(
                    (left + 2, top + 1), _fit_text(draw, label, font, tile_width - 4), fill=220, font=font
                )
            frame = _to_uint8(frames[min(t, len(frames) - 1)])
            tile = Image.fromarray(frame, mode="L").resize(
                (frame.shape[1] * scale, frame.shape[0] * scale), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (left, top + label_height))
        images.append(canvas)
    return _write_gif(images, path, fps)


# ----------------------------------------------------------------------------------------------------
# Content/motion swaps


@torch.no_grad()
def swap_grid(
    model: torch.nn.Module, content_videos: Any, motion_videos: Any, chunk_size: int = 64
) -> torch.Tensor:
    """Every content with every motion: ``grid[i, j] = model.swap(content_videos[i], motion_videos[j])``.

    Args:
        model: a video VAE (put it in eval mode first).
        content_videos: ``(N, T, 1, H, W)`` (or a list of videos) whose content is kept.
        motion_videos: ``(M, T', 1, H, W)`` whose motion is kept.
        chunk_size: videos per ``swap`` call.

    Returns:
        ``(N, M, T', 1, H, W)`` on the CPU.
    """
    content_videos = _as_batch(content_videos, "content_videos")
    motion_videos = _as_batch(motion_videos, "motion_videos")
    _check_positive("chunk_size", chunk_size)
    device = _model_device(model)
    num_content, num_motion = content_videos.shape[0], motion_videos.shape[0]
    contents = content_videos.repeat_interleave(num_motion, dim=0)  # (N * M, ...): c0, c0, ..., c1, ...
    motions = motion_videos.repeat(num_content, 1, 1, 1, 1)  # (N * M, ...): m0, m1, ..., m0, m1, ...
    swapped = [
        model.swap(
            contents[start : start + chunk_size].to(device), motions[start : start + chunk_size].to(device)
        )
        .float()
        .cpu()
        for start in range(0, contents.shape[0], chunk_size)
    ]
    swapped = torch.cat(swapped)  # (N * M, T', 1, H, W)
    return swapped.view(num_content, num_motion, *swapped.shape[1:])


def _swap_cells(
    content: np.ndarray, motion: np.ndarray, grid: np.ndarray, frame_of: Any
) -> list[list[np.ndarray | None]]:
    """Montage cells of the swap matrix; ``frame_of(video)`` turns a ``(T, H, W)`` video into a cell."""
    header = [None] + [frame_of(video) for video in motion]
    body = [
        [frame_of(source)] + [frame_of(cell) for cell in row]
        for source, row in zip(content, grid, strict=True)
    ]
    return [header, *body]


def save_swap_matrix(
    model: torch.nn.Module,
    content_videos: Any,
    motion_videos: Any,
    path: str | os.PathLike,
    frame_indices: Sequence[int] | None = None,
    title: str | None = None,
    gif_path: str | os.PathLike | None = None,
    fps: float = 4,
    scale: int = 2,
    dpi: int = DPI,
) -> Path:
    """The swap matrix: content from the row, motion from the column.

    An ``(N + 1) x (M + 1)`` grid. The first row shows the motion sources, the first column the content
    sources, and cell ``(i, j)`` is ``model.swap(content_i, motion_j)`` (see :func:`swap_grid`); each cell
    is a strip of a few frames. Reading down a column changes the content (a content swap), reading along
    a row changes the motion (a motion swap). With the same videos on both axes, the diagonal is the
    plain reconstruction.

    Args:
        model: a video VAE in eval mode.
        content_videos: ``(N, T, 1, H, W)``.
        motion_videos: ``(M, T', 1, H, W)``.
        path: the image file to write.
        frame_indices: frames of each cell's strip (indices into the motion videos' frames; content
            sources show the same indices, clipped to their length); by default 4 spread over time.
        title: figure title; by default it says how to read the grid.
        gif_path: also write an animated GIF of the whole matrix, every frame, to this path.
        fps: frames per second of the GIF.
        scale: nearest-neighbour upscaling of the GIF.
        dpi: resolution of the image.

    Returns:
        ``path``.
    """
    grid = swap_grid(model, content_videos, motion_videos)  # (N, M, T', 1, H, W)
    content = np.stack([as_frames(video) for video in _as_batch(content_videos, "content_videos")])
    motion = np.stack([as_frames(video) for video in _as_batch(motion_videos, "motion_videos")])
    swapped = np.clip(np.nan_to_num(grid[:, :, :, 0].numpy(), nan=0.0), 0.0, 1.0)  # (N, M, T', H, W)
    num_frames = motion.shape[1]
    if frame_indices is None:
        indices = _spread_indices(num_frames, 4)
    else:
        indices = _normalise_indices(frame_indices, num_frames)

    def strip(video: np.ndarray) -> np.ndarray:
        return _strip(video[[min(t, len(video) - 1) for t in indices]])

    cells = _swap_cells(content, motion, swapped, strip)
    image, row_centres, col_centres = _montage(
        cells,
        row_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells) - 2),
        col_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells[0]) - 2),
    )
    frames_text = ", ".join(f"t={t}" for t in indices)
    panel = {
        "image": image,
        "row_centres": row_centres,
        "col_centres": col_centres,
        "row_labels": ["motion sources"] + [f"content {i}" for i in range(len(content))],
        "col_labels": ["content sources"] + [f"motion {j}" for j in range(len(motion))],
        "xlabel": f"motion from column (each cell: frames {frames_text})",
        "ylabel": "content from row",
    }
    title = title if title is not None else "Swap matrix: content from row, motion from column"
    result = _save_figure(_montage_figure([panel], title, dpi), path, dpi)

    if gif_path is not None:
        _check_positive("scale", scale)
        images = []
        for t in range(num_frames):
            cells = _swap_cells(content, motion, swapped, lambda video, t=t: video[min(t, len(video) - 1)])
            montage, _, _ = _montage(
                cells,
                row_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells) - 2),
                col_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells[0]) - 2),
            )
            images.append(
                _captioned(montage, f"t={t}/{num_frames}  content from row, motion from column", scale)
            )
        _write_gif(images, gif_path, fps)
    return result


# ----------------------------------------------------------------------------------------------------
# Interpolation


@torch.no_grad()
def interpolation_frames(
    model: torch.nn.Module, video_a: Any, video_b: Any, steps: int = 7, factor: str = "content"
) -> torch.Tensor:
    """``model.interpolate`` for one pair of videos: ``(steps, T, 1, H, W)`` on the CPU.

    Args:
        model: a video VAE in eval mode.
        video_a: ``(T, 1, H, W)`` or ``(1, T, 1, H, W)``; the start, and the source of the held factor.
        video_b: the same shapes; the end.
        steps: points on the path, both ends included (>= 2).
        factor: ``"content"`` or ``"motion"``.
    """
    device = _model_device(model)
    pair = []
    for video in (video_a, video_b):
        video = torch.as_tensor(video)
        pair.append((video[None] if video.ndim == 4 else video).to(device))
    path = model.interpolate(pair[0], pair[1], steps, factor=factor)  # (S, 1, T, C, H, W)
    return path[:, 0].float().cpu()


def save_interpolation_grid(
    model: torch.nn.Module,
    video_a: Any,
    video_b: Any,
    path: str | os.PathLike,
    steps: int = 7,
    factor: str = "content",
    max_frames: int | None = None,
    every: int = 1,
    title: str | None = None,
    dpi: int = DPI,
    gif_path: str | os.PathLike | None = None,
    fps: float = 8,
) -> Path:
    """Latent interpolation from video A to video B: rows are steps (alpha), columns are frames.

    Each panel shows the input A on top, then ``steps`` rows from alpha = 0 (A's code) to alpha = 1 (B's
    code) of the interpolated factor, the other factor held at A's, then the input B.

    Args:
        model: a video VAE in eval mode.
        video_a: ``(T, 1, H, W)``.
        video_b: ``(T', 1, H, W)`` (``T' = T`` for motion interpolation).
        path: the image file to write.
        steps: interpolation points, both ends included (>= 2).
        factor: ``"content"``, ``"motion"``, or ``"both"`` (two panels, content above motion).
        max_frames: show at most this many frames.
        every: show every ``every``-th frame.
        title: figure title.
        dpi: resolution.
        gif_path: also write the interpolation as an animated GIF to this path: one row per factor,
            input A, the ``steps`` points and input B side by side, playing in time.
        fps: frames per second of the GIF.

    Returns:
        ``path``.
    """
    factors = FACTORS if factor == "both" else (factor,)
    if any(name not in FACTORS for name in factors):
        raise ValueError(f"factor must be 'content', 'motion' or 'both', got {factor!r}")
    frames_a, frames_b = as_frames(video_a), as_frames(video_b)
    panels, animated = [], []
    for name in factors:
        path_frames = interpolation_frames(model, video_a, video_b, steps, name)
        rows = [frames_a, *(as_frames(frames) for frames in path_frames), frames_b]
        alpha_labels = [f"{name} {alpha:.2f}" for alpha in np.linspace(0.0, 1.0, steps)]
        animated += list(zip(["A", *alpha_labels, "B"], rows, strict=True))
        indices = _frame_indices(max(len(frames) for frames in rows), every, max_frames)
        cells = [[frames[t] if t < len(frames) else None for t in indices] for frames in rows]
        image, row_centres, col_centres = _montage(
            cells, row_gaps=[GROUP_GAP] + [CELL_GAP] * (steps - 1) + [GROUP_GAP]
        )
        alphas = np.linspace(0.0, 1.0, steps)
        held = "motion" if name == "content" else "content"
        panels.append(
            {
                "image": image,
                "row_centres": row_centres,
                "col_centres": col_centres,
                "row_labels": ["input A", *(f"\u03b1={alpha:.2f}" for alpha in alphas), "input B"],
                "col_labels": [f"t={t}" for t in indices],
                "title": f"{name} interpolation A \u2192 B ({held} of A held)",
            }
        )
    if gif_path is not None:
        save_video_gif(animated, gif_path, fps=fps, columns=steps + 2)
    return _save_figure(_montage_figure(panels, title, dpi), path, dpi)


# ----------------------------------------------------------------------------------------------------
# Training curves


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


LOSS_UNIT = "nats per video"  # the losses are summed over pixels and frames (BCE: nats), mean over videos
_SPLITS = (("train_", "-", "train"), ("val_", "--", "validation"))
_KL_MARKERS = {"kl_content": "o", "kl_motion": "s", "kl_z": "^", "kl": "D"}
_PANEL_TITLES = {"loss": "total loss", "recon": "reconstruction", "recon_loss": "reconstruction"}
_X_AXES = {"step": "optimizer step", "epoch": "epoch", "minutes": "training time (min, cumulative)"}


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
    return _save_figure(figure, out_path, dpi, tight=False)


__all__ = [
    "as_frames",
    "interpolation_frames",
    "mp4_twin",
    "pdf_twin",
    "plot_training_curves",
    "save_frame_grid",
    "save_interpolation_grid",
    "save_swap_matrix",
    "save_video_gif",
    "swap_grid",
]
