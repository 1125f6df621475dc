"""Object slots for the Disentangled VAE's ``architecture="slots"``: a tracker, glimpses and sprite placement.

Moving MNIST is made by pasting K digit images along K paths (``max`` where they overlap). This module
gives the Disentangled VAE that structure (as DDPAE, Hsieh et al. 2018, gives its model one slot per
object and a spatial transformer), so that the two factors travel on separate paths by construction:

- :func:`track_centroids` finds where each of K objects is in every frame: soft K-means over the pixels,
  weighted by their intensity, started on frame 0 along the mass's principal axis and on every later
  frame from the previous positions moved by their last velocity, so slot k follows the same object.
  It has no parameters and sees only pixels: no labels, no ground-truth paths.
- :func:`align_to_template` then moves each slot's position, frame by frame, to where its glimpse
  matches the slot's mean glimpse best: the K-means centres jitter by about a pixel around a digit.
- :func:`glimpses` crops a window around each slot's position in every frame (a spatial transformer:
  translation only), so what a content encoder sees of a slot does not depend on where the slot is.
- :func:`place_sprites` pastes each slot's sprite (logits of a glimpse-sized image) at that slot's
  position in every frame and combines the slots by ``max`` (in logit space, which is the ``max`` of
  the probabilities), as the generator combines overlapping digits.

Coordinates are ``grid_sample``'s: ``(x, y)`` in [-1, 1] with ``align_corners=False``, so pixel ``i`` of
a side ``S`` has its centre at ``(2 i + 1) / S - 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.orders import consistent_orders, reorder

BACKGROUND_LOGIT = -10.0  # what a sprite adds outside its window: sigmoid(-10) = 4.5e-5


def pixel_centres(size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(size * size, 2)`` pixel-centre coordinates ``(x, y)`` of a square frame, row-major."""
    axis = (2 * torch.arange(size, device=device, dtype=dtype) + 1) / size - 1  # (S,)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)  # (S * S, 2)


def _kmeans_steps(mass: Tensor, coords: Tensor, centres: Tensor, iterations: int, temperature: float) -> Tensor:
    """Soft K-means: each pixel's mass is shared among the centres by softmax(-distance^2 / temperature).

    Args:
        mass: ``(N, P)`` non-negative pixel weights.
        coords: ``(P, 2)`` pixel coordinates.
        centres: ``(N, K, 2)`` starting centres.

    Returns:
        ``(N, K, 2)`` centres after ``iterations`` updates (a centre with no mass stays where it was).
    """
    for _ in range(iterations):
        distance = (coords[None, None] - centres[:, :, None]).pow(2).sum(-1)  # (N, K, P)
        weights = torch.softmax(-distance / temperature, dim=1) * mass[:, None]  # (N, K, P)
        total = weights.sum(-1, keepdim=True)  # (N, K, 1)
        moved = weights @ coords / total.clamp_min(1e-6)  # (N, K, 2)
        centres = torch.where(total > 1e-6, moved, centres)
    return centres


def _principal_axis_start(mass: Tensor, coords: Tensor, slots: int) -> Tensor:
    """K starting centres spread along the principal axis of one frame's mass.

    Args:
        mass: ``(N, P)`` pixel weights of the first frame.
        coords: ``(P, 2)``.
        slots: K.

    Returns:
        ``(N, K, 2)``: the mass's centroid plus ``-1 ... 1`` standard deviations along its principal
        axis, the axis's sign fixed (x component >= 0, or y > 0 when vertical) so the order is defined.
    """
    total = mass.sum(-1, keepdim=True).clamp_min(1e-6)  # (N, 1)
    mean = mass @ coords / total  # (N, 2)
    centred = coords[None] - mean[:, None]  # (N, P, 2)
    covariance = torch.einsum("np,npi,npj->nij", mass, centred, centred) / total[..., None]  # (N, 2, 2)
    covariance = covariance + 1e-6 * torch.eye(2, device=mass.device, dtype=mass.dtype)
    variances, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    axis = vectors[..., 1]  # (N, 2) principal direction
    flip = (axis[:, 0] < -1e-4) | ((axis[:, 0].abs() <= 1e-4) & (axis[:, 1] < 0))
    axis = torch.where(flip[:, None], -axis, axis)
    spread = variances[:, 1].clamp_min(0).sqrt()  # (N,)
    offsets = torch.linspace(-1.0, 1.0, slots, device=mass.device, dtype=mass.dtype) if slots > 1 else mass.new_zeros(1)
    return mean[:, None] + offsets[None, :, None] * spread[:, None, None] * axis[:, None]  # (N, K, 2)


@torch.no_grad()
def track_centroids(
    video: Tensor, slots: int, iterations: int = 6, temperature: float = 0.02
) -> Tensor:
    """Positions of ``slots`` objects in every frame, each slot following one object through time.

    Args:
        video: ``(B, T, C, H, W)`` in [0, 1] (channels are summed into one mass).
        slots: Number of objects K.
        iterations: Soft K-means updates per frame (twice as many on frame 0).
        temperature: Softness of the pixel-to-centre assignment, in squared normalised units
            (0.02 is a distance scale of about 4.5 pixels on a 64-pixel frame).

    Returns:
        ``(B, T, K, 2)`` centres ``(x, y)`` in [-1, 1]. Computed without gradient: a tracker of the
        pixels, not a learned encoder.
    """
    batch, frames, _, height, width = video.shape
    if height != width:
        raise ValueError(f"track_centroids expects square frames, got {height}x{width}")
    mass = video.float().sum(dim=2).flatten(2)  # (B, T, H * W)
    coords = pixel_centres(height, video.device, torch.float32)  # (P, 2)
    centres = _principal_axis_start(mass[:, 0], coords, slots)
    centres = _kmeans_steps(mass[:, 0], coords, centres, 2 * iterations, temperature)
    positions = [centres]
    velocity = torch.zeros_like(centres)
    for frame in range(1, frames):
        start = (centres + velocity).clamp(-1.0, 1.0)
        moved = _kmeans_steps(mass[:, frame], coords, start, iterations, temperature)
        velocity, centres = moved - centres, moved
        positions.append(centres)
    return torch.stack(positions, dim=1).to(video.dtype)  # (B, T, K, 2)


def _translation_grid(positions: Tensor, scale: float, size: int) -> Tensor:
    """Sampling grids that map an output window of side ``size`` to ``scale``-sized windows at ``positions``.

    Args:
        positions: ``(N, 2)`` window centres in the source's coordinates.
        scale: Window side / source side.
        size: Output side in pixels.

    Returns:
        ``(N, size, size, 2)`` grid for ``F.grid_sample``.
    """
    # ``affine_grid`` of the translation, written as what it is: the pixel centres scaled, plus the position. Its
    # backward is then a sum over the pixels, not the general affine backward (a product per window with the
    # base grid: 6% of the learned localiser model's step in the profiler; benchmarks/NOTES.md row 93).
    identity = torch.eye(2, 3, device=positions.device, dtype=positions.dtype)[None]
    base = F.affine_grid(identity, [1, 1, size, size], align_corners=False)  # (1, size, size, 2): pixel centres
    return base * scale + positions[:, None, None, :]


def glimpses(video: Tensor, positions: Tensor, window: int) -> Tensor:
    """Crop a ``window``-pixel square around every slot's position in every frame.

    Args:
        video: ``(B, T, C, H, W)``.
        positions: ``(B, T, K, 2)`` centres in [-1, 1].
        window: Side of the crop in pixels (also its output resolution: no resampling of scale).

    Returns:
        ``(B, T, K, C, window, window)``; outside the frame reads as 0.
    """
    batch, frames, channels, size, _ = video.shape
    slots = positions.shape[2]
    frames_per_slot = video[:, :, None].expand(batch, frames, slots, channels, size, size)
    flat = frames_per_slot.reshape(-1, channels, size, size)  # (B * T * K, C, H, W)
    grid = _translation_grid(positions.reshape(-1, 2), window / size, window)
    crops = F.grid_sample(flat, grid.to(flat.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.view(batch, frames, slots, channels, window, window)


def place_sprites(sprite_logits: Tensor, positions: Tensor, image_size: int) -> Tensor:
    """Paste each slot's sprite at its position in every frame; combine slots by ``max``.

    Args:
        sprite_logits: ``(B, K, C, w, w)`` logits of each slot's sprite (a window of side ``w`` pixels).
        positions: ``(B, T, K, 2)`` where each slot's window centre is, in [-1, 1].
        image_size: Side H = W of the output frames.

    Returns:
        ``(B, T, C, H, W)`` frame logits; :data:`BACKGROUND_LOGIT` where no sprite is.
    """
    batch, slots, channels, window, _ = sprite_logits.shape
    frames = positions.shape[1]
    # The inverse of the glimpse: output pixel u reads the sprite at (u - position) * size / window.
    scale = image_size / window
    inverse = -positions * scale  # (B, T, K, 2)
    grid = _translation_grid(inverse.reshape(-1, 2), scale, image_size)  # (B * T * K, H, W, 2)
    shifted = (sprite_logits - BACKGROUND_LOGIT)[:, None].expand(batch, frames, slots, channels, window, window)
    shifted = shifted.reshape(-1, channels, window, window)
    placed = F.grid_sample(shifted, grid.to(shifted.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    placed = placed.view(batch, frames, slots, channels, image_size, image_size)
    return placed.amax(dim=2) + BACKGROUND_LOGIT  # (B, T, C, H, W)


@torch.no_grad()
def reassociate(video: Tensor, positions: Tensor, window: int, rounds: int = 2) -> Tensor:
    """Reorder the slots frame by frame so that each slot keeps looking like the same object: the hand
    tracker's re-association, :func:`utils.orders.consistent_orders` of the slots' glimpses (pixels).

    Args:
        video: ``(B, T, C, H, W)``.
        positions: ``(B, T, K, 2)`` tracked centres.
        window: Glimpse side in pixels.
        rounds: How many times the slots' mean glimpses are recomputed.

    Returns:
        ``(B, T, K, 2)``: the same centres, permuted within each frame.
    """
    if positions.shape[2] < 2:
        return positions
    return reorder(positions, consistent_orders(glimpses(video, positions, window).flatten(3), rounds))


def _parabola_vertex(minus: Tensor, centre: Tensor, plus: Tensor) -> Tensor:
    """Where the parabola through ``(-1, minus), (0, centre), (1, plus)`` has its minimum, in [-0.5, 0.5]
    (0 where the three do not curve upwards)."""
    curvature = minus - 2 * centre + plus
    vertex = 0.5 * (minus - plus) / curvature.clamp_min(1e-12)
    return torch.where(curvature > 1e-12, vertex, torch.zeros_like(vertex)).clamp(-0.5, 0.5)


def _subpixel_offset(cost: Tensor, rows: Tensor, columns: Tensor, axis: int) -> Tensor:
    """The sub-pixel offset, along ``axis`` (0: rows, 1: columns), of the minimum of ``cost (N, S, S)`` near
    its whole-pixel minimum ``(rows, columns)`` (``(N,)`` each): :func:`_parabola_vertex` through the
    neighbours, 0 where the minimum is on the border."""
    side = cost.shape[-1]
    index = torch.arange(cost.shape[0], device=cost.device)
    step = (1, 0) if axis == 0 else (0, 1)
    centre = (rows, columns)[axis]
    inside = (centre > 0) & (centre < side - 1)
    before = cost[index, (rows - step[0]).clamp(0, side - 1), (columns - step[1]).clamp(0, side - 1)]
    after = cost[index, (rows + step[0]).clamp(0, side - 1), (columns + step[1]).clamp(0, side - 1)]
    return torch.where(inside, _parabola_vertex(before, cost[index, rows, columns], after), 0.0)


@torch.no_grad()
def align_to_template(video: Tensor, positions: Tensor, window: int, rounds: int = 2, radius: int = 3) -> Tensor:
    """Move each slot's position, frame by frame, to where its glimpse best matches the slot's mean glimpse.

    The soft K-means centres of :func:`track_centroids` move with every pixel that a slot shares with
    the other objects, so they jitter by about a pixel around a digit from frame to frame (NOTES row 47),
    and a sprite pasted at them must be blurred to fit every frame. A Moving MNIST digit only translates,
    so its glimpses differ only by that jitter. Each round takes the template ``M_k`` (slot k's glimpse,
    summed over channels, averaged over the T frames) and, in every frame, the integer shift ``s`` within
    ``radius`` pixels that minimises the sum of squared differences ``sum_u (G_t(u + s) - M_k(u))^2``
    (the frame's glimpse around the shifted position against the template), refined to sub-pixel by the
    vertex of a parabola through the neighbouring shifts on each axis. Repeated rounds sharpen the
    template as the positions agree (congealing; Learned-Miller 2006). It has no parameters and sees only pixels.

    Args:
        video: ``(B, T, C, H, W)`` in [0, 1], H = W.
        positions: ``(B, T, K, 2)`` window centres in [-1, 1] (e.g. :func:`reassociate`'s).
        window: Glimpse side in pixels.
        rounds: Template-and-shift rounds (0 returns ``positions``).
        radius: Largest shift per round, in pixels.

    Returns:
        ``(B, T, K, 2)``: the refined centres, each within ``rounds * (radius + 0.5)`` pixels of its start.
    """
    batch, frames, channels, size, _ = video.shape
    slots = positions.shape[2]
    count = batch * frames * slots
    wide = window + 2 * radius
    side = 2 * radius + 1
    ones = video.new_ones(count, 1, window, window, dtype=torch.float32)
    for _ in range(rounds):
        context = glimpses(video.float(), positions.float(), wide).sum(dim=3)  # (B, T, K, w + 2r, w + 2r)
        # The wide window samples the same pixel grid as the glimpse: its centre is the slot's glimpse.
        template = context[..., radius:radius + window, radius:radius + window].mean(dim=1)  # (B, K, w, w)
        context = context.reshape(1, count, wide, wide)
        kernels = template[:, None].expand(batch, frames, slots, window, window).reshape(count, 1, window, window)
        # SSD up to the template's constant energy: sum G_s^2 - 2 sum G_s M, for every shift s (valid convs).
        cost = F.conv2d(context.pow(2), ones, groups=count)[0] - 2 * F.conv2d(context, kernels, groups=count)[0]
        best = cost.flatten(1).argmin(dim=1)  # (N,)
        row, column = best // side, best % side
        dx = _subpixel_offset(cost, row, column, axis=1)
        dy = _subpixel_offset(cost, row, column, axis=0)
        shift = torch.stack([column - radius + dx, row - radius + dy], dim=-1)  # (N, 2) pixels, (x, y)
        positions = positions + (shift * (2.0 / size)).view(batch, frames, slots, 2).to(positions.dtype)
    return positions


def track_objects(video: Tensor, slots: int, window: int, align_rounds: int = 0) -> Tensor:
    """Track K objects: :func:`track_centroids` on frames at half resolution, then :func:`reassociate`,
    then ``align_rounds`` rounds of :func:`align_to_template`.

    Args:
        video: ``(B, T, C, H, W)`` in [0, 1], H = W even.
        slots: Number of objects K.
        window: Glimpse side used to tell the objects apart, in pixels of the full frame.
        align_rounds: Rounds of template alignment (0: the centres as tracked).

    Returns:
        ``(B, T, K, 2)`` centres in [-1, 1] (normalised coordinates do not depend on the resolution).
    """
    batch, frames, channels, size, _ = video.shape
    half = F.avg_pool2d(video.reshape(batch * frames, channels, size, size), 2)
    half = half.view(batch, frames, channels, size // 2, size // 2)
    positions = reassociate(video, track_centroids(half, slots), window)
    return align_to_template(video, positions, window, align_rounds) if align_rounds else positions
