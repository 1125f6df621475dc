"""How the motion judge reads positions: heatmap geometry, sub-pixel peaks and a digit tracker.

Pure tensor functions, used by :mod:`evaluation.judges.networks`: the centre detector outputs a heatmap at half
resolution (cells of ``_STRIDE`` pixels); :func:`find_peaks` finds its strongest local maxima with
sub-cell precision, and :func:`track_digits` links ``D`` digits through the frames with a
constant-velocity model that reflects off the walls.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------------------------------------------------
# Geometry: corners, centres, heatmap cells, crops

_STRIDE = 2  # heatmap cell size in pixels


def centre_offset(digit_size: int) -> float:
    """A digit drawn at corner ``c`` covers pixels ``c ... c + s - 1``: its centre is ``c + (s - 1) / 2``."""
    return (digit_size - 1) / 2.0


def pixels_to_cells(positions: Tensor) -> Tensor:
    """Pixel coordinates to heatmap-cell coordinates (cell ``j`` is centred on pixel ``2 j + 0.5``)."""
    return (positions - (_STRIDE - 1) / 2.0) / _STRIDE


def cells_to_pixels(cells: Tensor) -> Tensor:
    return cells * _STRIDE + (_STRIDE - 1) / 2.0


def centre_heatmap(corners: Tensor, digit_size: int, image_size: int, sigma: float) -> Tensor:
    """Target heatmap ``(N, 1, H/2, W/2)``: per cell, the largest Gaussian bump of the ``D`` digit centres.

    Args:
        corners: ``(N, D, 2)`` top-left corners ``(x, y)`` in pixels.
        digit_size: side of a digit.
        image_size: side of the canvas.
        sigma: bump width in cells.
    """
    cells = pixels_to_cells(corners + centre_offset(digit_size))  # (N, D, 2)
    grid = torch.arange(math.ceil(image_size / _STRIDE), device=corners.device, dtype=corners.dtype)
    gauss_x = torch.exp(-0.5 * ((grid - cells[..., 0:1]) / sigma) ** 2)  # (N, D, W')
    gauss_y = torch.exp(-0.5 * ((grid - cells[..., 1:2]) / sigma) ** 2)  # (N, D, H')
    bumps = gauss_y[..., :, None] * gauss_x[..., None, :]  # (N, D, H', W')
    return bumps.amax(dim=1, keepdim=True)


def extract_crops(frames: Tensor, corners: Tensor, digit_size: int) -> Tensor:
    """The ``digit_size`` square crops at the given (rounded, clamped) corners.

    Args:
        frames: ``(N, 1, H, W)``.
        corners: ``(N, D, 2)`` top-left corners ``(x, y)`` in pixels.

    Returns:
        ``(N, D, s, s)``.
    """
    height, width = frames.shape[-2:]
    x0 = corners[..., 0].round().long().clamp(0, width - digit_size)  # (N, D)
    y0 = corners[..., 1].round().long().clamp(0, height - digit_size)
    offsets = torch.arange(digit_size, device=frames.device)
    rows = (y0[..., None] + offsets)[..., :, None]  # (N, D, s, 1)
    cols = (x0[..., None] + offsets)[..., None, :]  # (N, D, 1, s)
    batch = torch.arange(frames.shape[0], device=frames.device).view(-1, 1, 1, 1)
    return frames[:, 0][batch, rows, cols]


# ----------------------------------------------------------------------------------------------------
# Peaks and tracking


def find_peaks(heat: Tensor, num_peaks: int) -> tuple[Tensor, Tensor]:
    """The strongest local maxima of heatmaps, refined to sub-cell precision.

    Each peak is refined per axis by the vertex of the parabola through the log-heat of the peak cell
    and its two neighbours (exact for a Gaussian bump).

    Args:
        heat: ``(N, h, w)`` probabilities in (0, 1).
        num_peaks: peaks per map (``K``).

    Returns:
        ``(positions (N, K, 2) as (x, y) in cells, scores (N, K))``, strongest first.
    """
    count, height, width = heat.shape
    # A vanishing raster-order tilt breaks ties, so a plateau (two equal cells) yields one peak.
    tilt = torch.arange(height * width, device=heat.device, dtype=torch.float64).view(height, width)
    tilted = heat.double() - 1e-9 * tilt / (height * width)
    maxima = tilted == F.max_pool2d(tilted[:, None], 3, stride=1, padding=1)[:, 0]
    scores, flat = torch.where(maxima, heat, torch.zeros_like(heat)).flatten(1).topk(num_peaks, dim=1)
    rows, cols = flat // width, flat % width
    log_heat = F.pad(heat.clamp_min(1e-6).log()[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    batch = torch.arange(count, device=heat.device)[:, None]

    def vertex(before: Tensor, centre: Tensor, after: Tensor) -> Tensor:
        curvature = before - 2 * centre + after
        peaked = curvature < -1e-6  # a flat or dented neighbourhood keeps the cell centre
        shift = 0.5 * (before - after) / torch.where(peaked, curvature, -torch.ones_like(curvature))
        return torch.where(peaked, shift, torch.zeros_like(shift)).clamp(-1.0, 1.0)

    centre = log_heat[batch, rows + 1, cols + 1]
    dx = vertex(log_heat[batch, rows + 1, cols], centre, log_heat[batch, rows + 1, cols + 2])
    dy = vertex(log_heat[batch, rows, cols + 1], centre, log_heat[batch, rows + 2, cols + 1])
    positions = torch.stack([cols.to(heat.dtype) + dx, rows.to(heat.dtype) + dy], dim=-1)
    return positions, scores


def track_digits(
    peaks: Tensor,
    scores: Tensor,
    num_digits: int,
    low: float,
    high: float,
    gate: float,
    min_score: float = 0.1,
    strong_score: float = 0.5,
    smoothing: float = 0.5,
    num_starts: int = 3,
) -> Tensor:
    """Link per-frame peaks into ``num_digits`` trajectories (constant velocity, reflecting walls).

    Starts, per video, at a frame whose ``D``-th peak is strong (digits apart) with its ``D`` strongest
    peaks, and tracks forward, then backward; of ``num_starts`` such runs it keeps the cheapest. At each
    step every track predicts its position (position + velocity, reflected into ``[low, high]``), then
    the cheapest joint choice is taken, each track either taking one detection or coasting:

    * taking a detection costs the squared distance to it; a weak one (``score < strong_score``) cannot
      be taken from farther than ``gate``;
    * coasting costs ``gate^2`` (a missing detection);
    * tracks may share a detection (two digits overlapping show one peak), for ``gate^2 / 4`` extra per
      sharer: the group's predictions are then shifted together so that their mean lands on it, which
      keeps their relative velocities, so digits that cross separate again on the right sides;
    * a strong detection nobody takes costs more than any distance, so a lost track re-acquires its digit.

    The velocity of a track that took a detection moves ``smoothing`` of the way towards its measured
    displacement (the first step, when no velocity is known yet, measures it outright).

    Args:
        peaks: ``(B, T, K, 2)`` candidate positions per frame (pixels), ``K >= num_digits``.
        scores: ``(B, T, K)`` their heat; candidates below ``min_score`` are ignored.
        num_digits: trajectories to return (``D``).
        low: smallest valid coordinate of a position.
        high: largest valid coordinate.
        gate: the distance scale of the costs above, in pixels.
        min_score: detections weaker than this do not count.
        strong_score: detections at least this strong must be taken.
        smoothing: weight of the newest displacement in the velocity estimate.
        num_starts: how many start frames to try (the frames with the strongest ``D``-th peaks); each
            video keeps the run whose choices cost least in total.

    Returns:
        ``(B, T, D, 2)`` positions in pixels.
    """
    batch, frames, num_candidates, _ = peaks.shape
    device, dtype = peaks.device, peaks.dtype
    # Every choice of a candidate (or K: coast) per track: (M, D); and who takes what: (M, D, K).
    options = torch.tensor(
        list(itertools.product(range(num_candidates + 1), repeat=num_digits)), device=device
    )
    takes = F.one_hot(options, num_candidates + 1)[..., :num_candidates].to(dtype)  # (M, D, K)
    takers = takes.sum(dim=1)  # (M, K)
    share_cost = (takers - 1).clamp_min(0).sum(dim=1) * gate**2 / 4  # (M,)
    unclaimed_cost = 4.0 * (high - low + 1.0) ** 2  # more than any squared distance on the canvas
    videos = torch.arange(batch, device=device)
    track_index = torch.arange(num_digits, device=device)

    def step(position: Tensor, velocity: Tensor, frame: Tensor, outright: Tensor) -> tuple[Tensor, ...]:
        """One frame for every video: ``frame``, ``outright`` (measure the velocity afresh) are ``(B,)``."""
        predicted = position + velocity
        # Reflect off the walls, as the digits do (and flip the velocity of those that bounce).
        over, under = predicted > high, predicted < low
        predicted = torch.where(over, 2 * high - predicted, predicted)
        predicted = torch.where(under, 2 * low - predicted, predicted)
        velocity = torch.where(over | under, -velocity, velocity)
        candidates, score = peaks[videos, frame], scores[videos, frame]  # (B, K, 2), (B, K)
        distance = (predicted[:, :, None] - candidates[:, None]).pow(2).sum(-1)  # (B, D, K)
        allowed = (score[:, None] >= strong_score) | ((score[:, None] >= min_score) & (distance <= gate**2))
        costs = torch.where(allowed, distance, torch.full_like(distance, math.inf))
        costs = torch.cat([costs, costs.new_full((batch, num_digits, 1), gate**2)], dim=2)  # coast option
        strong = score >= strong_score  # (B, K)
        total = costs[:, track_index, options].sum(dim=-1) + share_cost  # (B, M)
        total = total + unclaimed_cost * (strong[:, None] & (takers[None] == 0)).sum(dim=-1)
        best = total.argmin(dim=1)
        take = takes[best]  # (B, D, K): which candidate each track takes (a zero row: coasting)
        group = take.sum(dim=1)  # (B, K): how many tracks take each candidate
        # Shift each group's predictions so that their mean lands on the candidate they share.
        group_mean = torch.einsum("bdk,bdc->bkc", take, predicted) / group.clamp_min(1)[..., None]
        shift = torch.einsum("bdk,bkc->bdc", take, candidates - group_mean)  # (B, D, 2)
        new_position = (predicted + shift).clamp(low, high)
        took = take.sum(dim=2) > 0  # (B, D)
        # A group's common shift corrects its velocities too; their relative velocities are kept.
        smoothed = velocity + smoothing * (new_position - predicted)
        measured = torch.where(outright[:, None, None], new_position - position, smoothed)
        return new_position, torch.where(took[..., None], measured, velocity), total.min(dim=1).values

    def track_from(start: Tensor) -> tuple[Tensor, Tensor]:
        positions = peaks.new_zeros(batch, frames, num_digits, 2)
        positions[videos, start] = peaks[videos, start, :num_digits]
        cost = peaks.new_zeros(batch)
        first_velocity = peaks.new_zeros(batch, num_digits, 2)
        for direction in (1, -1):
            position = positions[videos, start]
            velocity = -first_velocity
            # Every video walks from its own start frame; videos past the end just stop changing.
            for offset in range(1, frames):
                frame = start + direction * offset
                active = (frame >= 0) & (frame < frames)
                if not active.any():
                    break
                safe = frame.clamp(0, frames - 1)
                # No velocity is known on the first step forward, nor backward when nothing lay ahead.
                outright = torch.full_like(active, offset == 1) & ((start == frames - 1) | (direction == 1))
                new_position, new_velocity, step_cost = step(position, velocity, safe, outright)
                if direction == 1 and offset == 1:
                    first_velocity = torch.where(active[:, None, None], new_velocity, first_velocity)
                position = torch.where(active[:, None, None], new_position, position)
                velocity = torch.where(active[:, None, None], new_velocity, velocity)
                cost = cost + torch.where(active, step_cost, torch.zeros_like(step_cost))
                positions[videos[active], safe[active]] = position[active]
        return positions, cost

    # Start where the D-th peak is strongest (digits apart), and from the next-best such frames too;
    # keep, per video, the run with the lowest total cost.
    starts = scores[:, :, num_digits - 1].topk(min(num_starts, frames), dim=1).indices  # (B, S)
    best_positions, best_cost = track_from(starts[:, 0])
    for index in range(1, starts.shape[1]):
        positions, cost = track_from(starts[:, index])
        better = cost < best_cost
        best_positions = torch.where(better[:, None, None, None], positions, best_positions)
        best_cost = torch.minimum(cost, best_cost)
    return best_positions
