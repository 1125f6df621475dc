"""The figures and GIFs of ``evaluate.py``: reconstructions, samples, interpolation and swaps of one model.

:func:`make_figures` writes them all into one folder, each named after the experiment
(``NAME_reconstructions.png``, ``NAME_swaps.gif``, ...; ``evaluate.py --help`` lists them), from the first
videos of the test set. The figures that run the model's latent verbs are :mod:`evaluation.reporting.latent_figures`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from data import video_of
from evaluation.reporting.generation_figures import save_factor_grid, save_samples_vs_real
from evaluation.reporting.latent_figures import save_interpolation_grid, save_swap_matrix
from evaluation.swaps import example_pairs
from utils.animation import mp4_twin, save_video_gif
from utils.visualization import pdf_twin, save_frame_grid

MAX_SWAP_VIDEOS = 8  # the swap matrix grows as the square of its videos
MAX_SWAP_PAIRS = 3


def first_videos(loader: Any, count: int) -> torch.Tensor:
    """The first ``count`` videos of a loader (fewer if it has fewer), ``(N, T, 1, H, W)`` on the CPU."""
    videos, found = [], 0
    for batch in loader:
        videos.append(video_of(batch))
        found += videos[-1].shape[0]
        if found >= count:
            break
    return torch.cat(videos)[:count]


@torch.no_grad()
def _in_batches(
    function: Callable[..., torch.Tensor], batch_size: int, device: torch.device, *videos
) -> torch.Tensor:
    """``function(*chunks)`` over chunks of ``batch_size`` videos, concatenated on the CPU."""
    parts = []
    for start in range(0, videos[0].shape[0], batch_size):
        chunk = [video[start : start + batch_size].to(device) for video in videos]
        parts.append(function(*chunk).float().cpu())
    return torch.cat(parts)


def make_figures(
    model: torch.nn.Module,
    test_loader: Any,
    save_dir: str | os.PathLike,
    name: str,
    *,
    device: torch.device,
    num_samples: int,
    batch_size: int,
    interpolation_steps: int,
    fps: float,
    seed: int,
    log: Callable[[str], None] = print,
    dataset_title: str | None = None,
) -> list[Path]:
    """Every figure and GIF of one model (``evaluate.py``'s ``NAME_*.png`` / ``.gif``, with their twins).

    Args:
        model: the model, in eval mode on ``device``.
        test_loader: the test set; its first videos are shown.
        save_dir: the folder written into (it exists).
        name: the experiment name every file starts with.
        device: where the model runs.
        num_samples: videos per figure (reconstructions, samples; the swap matrix shows at most
            :data:`MAX_SWAP_VIDEOS`).
        batch_size: videos per reconstruction call.
        interpolation_steps: points on each interpolation path, both ends included.
        fps: frames per second of the GIFs.
        seed: seed of the prior samples.
        log: where progress lines go.
        dataset_title: the data's name for the titles (e.g. "Moving Fashion-MNIST"); None leaves it out.

    Returns:
        The paths written: figures and GIFs, then their PDF / MP4 twins.
    """
    out = Path(save_dir)
    label = f"{name} ({dataset_title})" if dataset_title else name  # the titles' subject; files use the name
    videos = first_videos(test_loader, max(num_samples, 2))
    count = min(num_samples, videos.shape[0])
    if count < num_samples:
        log(f"note: the test set has only {count} videos; showing {count}")
    shown = videos[:count]
    num_frames = videos.shape[1]
    written: list[Path] = []

    log(f"figures: reconstructions of {count} test videos")
    recon = _in_batches(model.reconstruct, batch_size, device, shown)
    rows = {}
    for index in range(count):
        rows[f"test {index}: truth"] = shown[index]
        rows[f"test {index}: reconstruction"] = recon[index]
    written.append(
        save_frame_grid(
            rows,
            out / f"{name}_reconstructions.png",
            title=f"{label}: test videos and their reconstructions",
            group_size=2,
        )
    )
    written.append(
        save_video_gif(
            [*shown, *recon],
            out / f"{name}_reconstructions.gif",
            fps=fps,
            labels=[f"truth {i}" for i in range(count)] + [f"recon {i}" for i in range(count)],
            columns=count,
        )
    )

    log(f"figures: {num_samples} samples from the prior")
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        samples = model.sample(num_samples, num_frames, generator=generator).float().cpu()
    sample_rows = {f"sample {index}": video for index, video in enumerate(samples)}
    written.append(
        save_frame_grid(
            sample_rows, out / f"{name}_samples.png", title=f"{label}: samples from the prior (seed {seed})"
        )
    )
    written.append(save_video_gif(sample_rows, out / f"{name}_samples.gif", fps=fps))
    prior = "the fitted prior" if getattr(model, "fitted_prior", None) is not None else "the prior"
    written.append(save_samples_vs_real(
        videos[:num_samples], samples, out / f"{name}_samples_vs_real.png",
        title=f"{label}: real test videos above samples from {prior} (seed {seed})",
    ))
    log("figures: fix one factor, resample the other (rows share content, columns share motion)")
    written.append(save_factor_grid(
        model, out / f"{name}_factor_grid.png", num_frames=num_frames, generator=generator, fps=fps,
        title=f"{label}: rows share content, columns share motion (both from {prior})",
        gif_path=out / f"{name}_factor_grid.gif",
    ))
    written.append(out / f"{name}_factor_grid.gif")

    log("figures: content and motion interpolation between test videos 0 and 1")
    video_b = videos[1] if videos.shape[0] > 1 else videos[0]
    written.append(
        save_interpolation_grid(
            model,
            videos[0],
            video_b,
            out / f"{name}_interpolation.png",
            steps=interpolation_steps,
            factor="both",
            title=f"{label}: latent interpolation from test video 0 (A) to test video 1 (B)",
            gif_path=out / f"{name}_interpolation.gif",
            fps=fps,
        )
    )
    written.append(out / f"{name}_interpolation.gif")

    swap_videos = videos[: max(min(num_samples, MAX_SWAP_VIDEOS), min(2, videos.shape[0]))]
    log(f"figures: {len(swap_videos)}x{len(swap_videos)} swap matrix")
    written.append(
        save_swap_matrix(
            model,
            swap_videos,
            swap_videos,
            out / f"{name}_content_swap.png",
            title=f"{label}: content from row, motion from column (the diagonal is the reconstruction)",
            gif_path=out / f"{name}_swaps.gif",
            fps=fps,
        )
    )
    swaps_gif = out / f"{name}_swaps.gif"

    log("figures: swaps frame by frame")
    rows = []
    for a, b in example_pairs(len(swap_videos), MAX_SWAP_PAIRS):  # A = 2k + 1 takes B = 2k's motion
        video_a, video_b = swap_videos[a : a + 1], swap_videos[b : b + 1]
        with torch.no_grad():
            a_moving_like_b = model.swap(video_a.to(device), video_b.to(device)).float().cpu()[0]
            b_moving_like_a = model.swap(video_b.to(device), video_a.to(device)).float().cpu()[0]
        rows += [
            (f"test {a}", video_a[0]),
            (f"test {b}", video_b[0]),
            (f"content {a} + motion {b}", a_moving_like_b),
            (f"content {b} + motion {a}", b_moving_like_a),
        ]
    written.append(
        save_frame_grid(
            rows,
            out / f"{name}_motion_swap.png",
            title=f"{label}: swaps frame by frame ('content X + motion Y': X's objects along Y's paths)",
            group_size=4,
        )
    )
    written.append(swaps_gif)
    # Each PNG has a PDF beside it, and each GIF an MP4 where imageio-ffmpeg is installed.
    twins = [twin for path in written for twin in (pdf_twin(path), mp4_twin(path)) if twin is not None]
    return written + twins


__all__ = ["MAX_SWAP_VIDEOS", "first_videos", "make_figures"]
