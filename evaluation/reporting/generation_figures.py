"""Figures of generated videos: samples beside real test videos, and the fix-one-resample-other grid.

* :func:`save_samples_vs_real`: real test video i above prior sample i, one frame per column, so a reader
  sees at a glance whether the samples look like the data.
* :func:`save_factor_grid`: ``R`` content codes and ``C`` motion codes, all drawn from the model's prior
  (``sample_factors``; the fitted prior when the model has one), and cell ``(i, j) = combine(c_i, m_j)``.
  Every row shares its content (the same digits should appear along a row) and every column its motion
  (the same paths down a column). A GIF of the whole grid, every frame, goes beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.reporting.latent_figures import _spread_indices, _strip
from utils.animation import captioned, write_gif
from utils.visualization import CELL_GAP, DPI, montage, montage_figure, save_figure, save_frame_grid


def save_samples_vs_real(real: torch.Tensor, samples: torch.Tensor, path: str | os.PathLike,
                         title: str | None = None) -> Path:
    """Real videos and samples in alternating rows (``real i`` above ``sample i``).

    Args:
        real: ``(N, T, 1, H, W)`` test videos.
        samples: ``(M, T', 1, H, W)`` generated videos; the first ``min(N, M)`` pairs are shown.
        path: the image file.
        title: a title above the grid.
    """
    count = min(len(real), len(samples))
    rows = []
    for index in range(count):
        rows += [(f"real {index}", real[index]), (f"sample {index}", samples[index])]
    return save_frame_grid(rows, path, title=title, group_size=2)


@torch.no_grad()
def factor_grid(model: Any, num_content: int, num_motion: int, num_frames: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``(R, C, T, 1, H, W)``: cell ``(i, j)`` decodes prior content code i with prior motion code j."""
    content, _ = model.sample_factors(num_content, num_frames, generator=generator)  # (R, Dc)
    _, motion = model.sample_factors(num_motion, num_frames, generator=generator)  # (C, T, Dm)
    rows = content[:, None].expand(-1, num_motion, -1).reshape(num_content * num_motion, -1)
    columns = motion[None].expand(num_content, -1, -1, -1).reshape(num_content * num_motion, *motion.shape[1:])
    videos = model.combine(rows, columns).float().cpu()  # (R * C, T, 1, H, W)
    return videos.view(num_content, num_motion, *videos.shape[1:])


def save_factor_grid(model: Any, path: str | os.PathLike, num_content: int = 4, num_motion: int = 4,
                     num_frames: int = 10, generator: torch.Generator | None = None, title: str | None = None,
                     gif_path: str | os.PathLike | None = None, fps: float = 4, scale: int = 2,
                     dpi: int = DPI) -> Path:
    """The fix-one-resample-other grid of the module docstring, as an image (each cell a strip of 4
    frames spread over time) and, with ``gif_path``, as an animated GIF."""
    grid = np.clip(np.nan_to_num(factor_grid(model, num_content, num_motion, num_frames, generator)[:, :, :, 0]
                                 .numpy(), nan=0.0), 0.0, 1.0)  # (R, C, T, H, W)
    indices = _spread_indices(num_frames, 4)
    cells = [[_strip(video[indices]) for video in row] for row in grid]
    image, row_centres, col_centres = montage(cells, row_gaps=[CELL_GAP] * (len(cells) - 1),
                                              col_gaps=[CELL_GAP] * (len(cells[0]) - 1))
    panel = {
        "image": image, "row_centres": row_centres, "col_centres": col_centres,
        "row_labels": [f"content {i}" for i in range(num_content)],
        "col_labels": [f"motion {j}" for j in range(num_motion)],
        "xlabel": f"motion drawn from the prior, one per column (each cell: frames "
                  f"{', '.join(f't={t}' for t in indices)})",
        "ylabel": "content drawn from the prior, one per row",
    }
    title = title if title is not None else "Rows share content, columns share motion (both from the prior)"
    result = save_figure(montage_figure([panel], title, dpi), path, dpi)
    if gif_path is not None:
        images = []
        for t in range(num_frames):
            frame_image, _, _ = montage([[video[t] for video in row] for row in grid],
                                        row_gaps=[CELL_GAP] * (len(grid) - 1),
                                        col_gaps=[CELL_GAP] * (len(grid[0]) - 1))
            images.append(captioned(frame_image, f"t={t}/{num_frames}  rows share content, columns motion", scale))
        write_gif(images, gif_path, fps)
    return result
