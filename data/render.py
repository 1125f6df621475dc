"""How a Moving MNIST video is drawn: counter-based random draws, bouncing trajectories, rendering.

**Determinism.** Video ``i`` of a split with seed ``s`` is a pure function of ``(split, s, i)``: its random
draws (:func:`uniform_draws`) come from a counter-based hash of those three numbers (SplitMix64), never
from a shared random stream, so the pixels and factors do not depend on batch size, worker count or order.

Positions are continuous; a digit is drawn at the rounded position (:func:`render_digits`), so re-rendering
the digit images along a video's ``trajectory`` reproduces its frames exactly. ``render_digits`` is public:
it also renders the ideal result of a content/motion swap (digits of one video along another's paths).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .mnist import SPLITS

_SPLIT_IDS = {split: number for number, split in enumerate(SPLITS)}

# ----------------------------------------------------------------------------------------------------
# Counter-based randomness: uniform draws as a pure function of (seed, split, index, draw number)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al., 2014), elementwise on uint64 (wraps mod 2**64)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_draws(seed: int, split: str, indices: np.ndarray, num_draws: int) -> np.ndarray:
    """``(len(indices), num_draws)`` float64 uniforms in [0, 1), a pure function of each argument tuple."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(1, seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64))
        key = _splitmix64(key ^ np.uint64(_SPLIT_IDS[split]))
        per_video = _splitmix64(key ^ indices.astype(np.uint64))[:, None]
        draws = _splitmix64(per_video + np.arange(1, num_draws + 1, dtype=np.uint64)[None, :])
    return (draws >> np.uint64(11)).astype(np.float64) * 2.0**-53


def bounce_trajectories(
    start_positions: np.ndarray, velocities: np.ndarray, num_frames: int, travel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Straight-line motion with elastic bounces, in closed form (no loop over frames).

    The unbounded position ``p0 + v t`` is folded into ``[0, travel]`` by a triangle wave, which is
    exactly a point reflecting off both walls.

    Args:
        start_positions: ``(..., 2)`` positions at frame 0, each coordinate in ``[0, travel]``.
        velocities: ``(..., 2)`` initial velocities in pixels per frame.
        num_frames: number of frames ``T``.
        travel: the wall distance (``image_size - digit_size``).

    Returns:
        ``(positions, velocities)``, each ``(T, ..., 2)``: the position and the current velocity
        (initial velocity with the sign of each coordinate flipped after every bounce) at each frame.
    """
    times = np.arange(num_frames, dtype=np.float64).reshape((-1,) + (1,) * start_positions.ndim)
    unfolded = start_positions[None] + velocities[None] * times
    if travel == 0:
        return np.zeros_like(unfolded), np.zeros_like(unfolded)
    phase = np.mod(unfolded, 2.0 * travel)
    moving_forward = phase <= travel
    positions = np.where(moving_forward, phase, 2.0 * travel - phase)
    current_velocity = np.where(moving_forward, 1.0, -1.0) * velocities[None]
    return positions, current_velocity


def render_digits(digit_images: torch.Tensor, trajectories: torch.Tensor, image_size: int) -> torch.Tensor:
    """Draw digits along trajectories; overlapping digits combine by ``max``.

    Vectorised over videos, frames and pixels (one indexed write per digit slot). Used by the generator
    and to render the ideal result of a swap (digit images of one video along another's trajectories).

    Args:
        digit_images: ``(B, D, h, w)`` digit images, float in [0, 1] or uint8 in [0, 255].
        trajectories: ``(B, T, D, 2)`` top-left corners (x, y) in pixels; rounded to the nearest pixel.
        image_size: side of the square canvas.

    Returns:
        ``(B, T, 1, image_size, image_size)`` float32 video in [0, 1], on the digit images' device.
    """
    if digit_images.ndim != 4 or trajectories.ndim != 4 or trajectories.shape[-1] != 2:
        raise ValueError(
            f"expected digit_images (B, D, h, w) and trajectories (B, T, D, 2), "
            f"got {tuple(digit_images.shape)} and {tuple(trajectories.shape)}"
        )
    batch, num_digits, height, width = digit_images.shape
    if trajectories.shape[0] != batch or trajectories.shape[2] != num_digits:
        raise ValueError(
            f"digit_images {tuple(digit_images.shape)} and trajectories {tuple(trajectories.shape)} "
            "disagree on the number of videos or digits"
        )
    device = digit_images.device
    if digit_images.dtype == torch.uint8:
        digit_images = digit_images.float() / 255.0
    digit_images = digit_images.float()
    corners = torch.round(trajectories.to(device=device, dtype=torch.float32)).long()  # (B, T, D, 2)
    limit_x, limit_y = image_size - width, image_size - height
    if corners.numel() and (
        corners[..., 0].min() < 0 or corners[..., 1].min() < 0
        or corners[..., 0].max() > limit_x or corners[..., 1].max() > limit_y
    ):
        raise ValueError(f"trajectories leave the {image_size}x{image_size} canvas for {height}x{width} digits")

    if device.type == "cpu":
        return _render_windows(digit_images, corners, image_size)
    return _render_flat(digit_images, corners, image_size)


def _render_windows(digit_images: torch.Tensor, corners: torch.Tensor, image_size: int) -> torch.Tensor:
    """``render_digits`` on the CPU: each digit is pasted through a strided view of every frame's
    ``h x w`` windows, indexed by (video, frame, top, left), so no per-pixel index is built (about 2x
    faster than ``_render_flat`` here). Not used on other devices, where writing through a view whose
    windows overlap in memory is not guaranteed by every indexing kernel (e.g. deterministic CUDA)."""
    batch, num_digits, height, width = digit_images.shape
    num_frames = corners.shape[1]
    canvas = torch.zeros(batch, num_frames, image_size, image_size)
    frame_area = image_size * image_size
    windows = canvas.as_strided(
        (batch, num_frames, image_size - height + 1, image_size - width + 1, height, width),
        (num_frames * frame_area, frame_area, image_size, 1, image_size, 1),
    )
    videos = torch.arange(batch).view(batch, 1)
    frames = torch.arange(num_frames).view(1, num_frames)
    for digit in range(num_digits):  # D is 1-3: a loop over digit slots, not over videos or frames
        where = (videos, frames, corners[:, :, digit, 1], corners[:, :, digit, 0])
        stamp = digit_images[:, digit].unsqueeze(1)  # (B, 1, h, w), broadcast over frames
        # The canvas starts at 0 and stamps are >= 0, so the first slot needs no max.
        windows[where] = stamp if digit == 0 else torch.maximum(windows[where], stamp)
    return canvas.view(batch, num_frames, 1, image_size, image_size)


def _render_flat(digit_images: torch.Tensor, corners: torch.Tensor, image_size: int) -> torch.Tensor:
    """``render_digits`` with an explicit flat index per (video, frame, digit pixel): plain indexed
    writes into a contiguous canvas, safe on every device."""
    batch, num_digits, height, width = digit_images.shape
    num_frames = corners.shape[1]
    device = digit_images.device
    frame_area = image_size * image_size
    canvas = torch.zeros(batch * num_frames * frame_area, device=device)
    # int32 index arithmetic is cheaper; the final flat index is widened to int64 for indexing.
    index_type = torch.int32 if canvas.numel() < 2**31 else torch.int64
    corners = corners.to(index_type)
    frame_starts = torch.arange(batch * num_frames, device=device, dtype=index_type) * frame_area
    frame_starts = frame_starts.view(batch, num_frames, 1, 1)
    pixel_offsets = (
        torch.arange(height, device=device, dtype=index_type).view(1, 1, height, 1) * image_size
        + torch.arange(width, device=device, dtype=index_type).view(1, 1, 1, width)
    )  # (1, 1, h, w)
    for digit in range(num_digits):
        corner = corners[:, :, digit, 1] * image_size + corners[:, :, digit, 0]  # (B, T)
        where = (frame_starts + corner.view(batch, num_frames, 1, 1) + pixel_offsets).reshape(-1).long()
        stamp = digit_images[:, digit].unsqueeze(1).expand(batch, num_frames, height, width).reshape(-1)
        canvas[where] = stamp if digit == 0 else torch.maximum(canvas[where], stamp)
    return canvas.view(batch, num_frames, 1, image_size, image_size)


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, 28, 28)`` uint8 digits to ``size`` pixels (area averaging down, bilinear up)."""
    if images.shape[-1] == size:
        return images
    tensor = torch.from_numpy(images).float().unsqueeze(1)
    mode = "area" if size < images.shape[-1] else "bilinear"
    resized = F.interpolate(tensor, size=(size, size), mode=mode)
    return resized.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()
