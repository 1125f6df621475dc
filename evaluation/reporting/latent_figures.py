"""Figures of the latent codes at work, which run a model: the swap matrix and latent interpolations.

:func:`swap_grid` and :func:`save_swap_matrix` show every content with every motion (``model.swap``);
:func:`interpolation_frames` and :func:`save_interpolation_grid` walk the latent path between two videos
(``model.interpolate``). The drawing itself (montages, GIFs) is :mod:`utils.visualization` and
:mod:`utils.animation`; every ``save_*`` function writes one file and returns its path (a ``.png`` gets a
``.pdf`` beside it, a GIF an ``.mp4`` where ``imageio-ffmpeg`` is installed). :mod:`evaluation.reporting.figures`
uses them for ``evaluate.py``'s figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.animation import captioned, save_video_gif, write_gif
from utils.visualization import (
    CELL_GAP,
    DPI,
    GROUP_GAP,
    as_frames,
    check_positive,
    montage,
    montage_figure,
    save_figure,
    select_frames,
)

STRIP_GAP = 1  # pixels of grey between the frames of one cell
FACTORS = ("content", "motion")


# ----------------------------------------------------------------------------------------------------
# Inputs


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
    check_positive("chunk_size", chunk_size)
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
    image, row_centres, col_centres = montage(
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
    result = save_figure(montage_figure([panel], title, dpi), path, dpi)

    if gif_path is not None:
        check_positive("scale", scale)
        images = []
        for t in range(num_frames):
            cells = _swap_cells(content, motion, swapped, lambda video, t=t: video[min(t, len(video) - 1)])
            frame_image, _, _ = montage(
                cells,
                row_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells) - 2),
                col_gaps=[GROUP_GAP] + [CELL_GAP] * (len(cells[0]) - 2),
            )
            images.append(
                captioned(frame_image, f"t={t}/{num_frames}  content from row, motion from column", scale)
            )
        write_gif(images, gif_path, fps)
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
        indices = select_frames(max(len(frames) for frames in rows), every, max_frames)
        cells = [[frames[t] if t < len(frames) else None for t in indices] for frames in rows]
        image, row_centres, col_centres = montage(
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
    return save_figure(montage_figure(panels, title, dpi), path, dpi)


__all__ = ["interpolation_frames", "save_interpolation_grid", "save_swap_matrix", "swap_grid"]
