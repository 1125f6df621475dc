"""How well an object-structured model's positions match where the digits are (evaluation only).

The ``"slots"`` and ``"keypoints"`` Disentangled VAEs give every slot a position per frame
(``model.track(video)``, ``(B, T, K, 2)`` in [-1, 1]). The generator knows where each digit really is
(``trajectory``: its top-left corner in pixels) and draws each digit's image there. Training never reads
that; this module compares the two after training:

- a digit's true centre is the centre of mass of its ink (:func:`digit_centres` with the digit images): the
  one point of a digit that its pixels define, and the point the object models place a sprite by. The box
  centre (corner plus half a digit) is the fallback where the images are unknown; on MNIST it is half a pixel
  up and left of the ink in each axis, because MNIST centres each digit's mass on pixel index 14 of 0-27
  (benchmarks/NOTES.md row 104: every model's slot error carried that half pixel before);

- slots and digits are matched once per video (the one order of the K slots, among all K!, with the least
  mean distance over the frames): a slot is meant to follow one digit through the whole video;
- ``median_error_px`` / ``p90_error_px``: the distance in pixels between each matched slot and its digit's
  centre, over every (video, frame, slot);
- ``slot_consistency``: the share of videos in which, in every frame where the digits are more than
  ``apart_px`` apart, each slot's nearest digit is the digit it was matched to (1-digit videos: every frame
  counts). Where digits overlap no position can tell them apart, so those frames are not judged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from evaluation.metric_names import LOCALISATION_KEYS
from models.disentangled_vae import OBJECT_ARCHITECTURES
from utils.orders import all_orders


def tracks_objects(model: object) -> bool:
    """Whether ``model`` places one object per slot (a Disentangled VAE with ``"slots"`` or ``"keypoints"``)."""
    return getattr(getattr(model, "config", None), "architecture", None) in OBJECT_ARCHITECTURES


def ink_offsets(images: Tensor) -> Tensor:
    """Where each image's ink has its centre of mass, from the image's top-left corner in pixels.

    Args:
        images: ``(..., s, s)`` non-negative intensities (uint8 or float).

    Returns:
        ``(..., 2)`` float ``(x, y)``: pixel ``i`` spans ``[i, i + 1)``, so a pixel's mass sits at ``i + 1/2``.
        An image without ink gives its box centre ``(s / 2, s / 2)``.
    """
    images = images.float()
    size = images.shape[-1]
    middles = torch.arange(size, dtype=torch.float32, device=images.device) + 0.5  # (s,)
    mass = images.sum(dim=(-2, -1))  # (...)
    x = (images.sum(dim=-2) * middles).sum(dim=-1)  # (...): columns' mass times their middles
    y = (images.sum(dim=-1) * middles).sum(dim=-1)
    inked = mass > 0
    safe = torch.where(inked, mass, torch.ones_like(mass))
    centre = torch.stack([x / safe, y / safe], dim=-1)
    return torch.where(inked[..., None], centre, torch.full_like(centre, size / 2))


def digit_centres(trajectory: Tensor, digit_size: int, image_size: int, images: Tensor | None = None) -> Tensor:
    """Centres of the digits in ``grid_sample`` coordinates: each digit's ink centre, or its box centre.

    Args:
        trajectory: ``(B, T, D, 2)`` top-left corners ``(x, y)`` in pixels (drawn at the rounded position).
        digit_size: Side of a digit in pixels.
        image_size: Side of the frame in pixels.
        images: ``(B, D, digit_size, digit_size)``: the images drawn (``dataset.digit_images``), or None.

    Returns:
        ``(B, T, D, 2)`` in [-1, 1]: pixel ``i`` spans ``[i, i + 1)``. A digit drawn at ``r`` has its centre
        at ``r + c``: ``c`` its image's ink centre of mass (:func:`ink_offsets`) or, without images, the box
        centre ``digit_size / 2``; ``r + c`` maps to ``2 (r + c) / image_size - 1``.
    """
    corner = torch.round(trajectory.float())
    if images is None:
        offset = torch.full((), digit_size / 2)
    else:
        if tuple(images.shape) != (corner.shape[0], corner.shape[2], digit_size, digit_size):
            raise ValueError(f"digit images {tuple(images.shape)} must be (videos, digits, side, side) = "
                             f"{(corner.shape[0], corner.shape[2], digit_size, digit_size)}")
        offset = ink_offsets(images.to(corner.device))[:, None]  # (B, 1, D, 2)
    return 2 * (corner + offset) / image_size - 1


def localisation_scores(positions: Tensor, centres: Tensor, image_size: int, apart_px: float = 20.0) -> dict:
    """Matched position error and slot consistency (module docstring).

    Args:
        positions: ``(B, T, K, 2)`` slot positions in [-1, 1].
        centres: ``(B, T, D, 2)`` true digit centres in [-1, 1], ``D == K``.
        image_size: Side of the frame in pixels (converts errors to pixels).
        apart_px: Digits closer than this (centre to centre) in a frame are not judged for consistency.

    Returns:
        ``{"median_error_px", "p90_error_px", "slot_consistency", "videos"}``.
    """
    if positions.shape != centres.shape:
        raise ValueError(
            f"positions {tuple(positions.shape)} and digit centres {tuple(centres.shape)} must have one shape "
            "(as many slots as digits)"
        )
    batch, frames, slots, _ = positions.shape
    scale = image_size / 2  # normalised units -> pixels
    positions, centres = positions.float(), centres.float()
    orders = all_orders(slots)  # (P, K)
    # cost[b, p] = mean distance when slot k follows digit orders[p, k]
    matched = centres[:, :, orders]  # (B, T, P, K, 2)
    distance = (positions[:, :, None] - matched).norm(dim=-1)  # (B, T, P, K)
    best = distance.mean(dim=(1, 3)).argmin(dim=1)  # (B,)
    errors = distance[torch.arange(batch), :, best] * scale  # (B, T, K)
    assigned = orders[best]  # (B, K): slot k -> digit assigned[b, k]

    to_digits = (positions[:, :, :, None] - centres[:, :, None]).norm(dim=-1)  # (B, T, K, D)
    nearest = to_digits.argmin(dim=-1)  # (B, T, K)
    keeps = nearest == assigned[:, None]  # (B, T, K)
    if slots > 1:
        gaps = (centres[:, :, :, None] - centres[:, :, None]).norm(dim=-1) * scale  # (B, T, D, D)
        gaps = gaps + torch.eye(slots) * 1e9
        judged = gaps.flatten(2).amin(dim=-1) > apart_px  # (B, T)
    else:
        judged = torch.ones(batch, frames, dtype=torch.bool)
    consistent = (keeps.all(dim=-1) | ~judged).all(dim=1)  # (B,)
    flat = errors.flatten()
    return {
        "median_error_px": float(flat.median()),
        "p90_error_px": float(torch.quantile(flat, 0.9)),
        "slot_consistency": float(consistent.float().mean()),
        "videos": batch,
    }


class LocalisationTally:
    """Collects ``model.track`` positions and the true digit centres batch by batch (evaluation only).

    Args:
        model: Any model; :meth:`results` is NaN unless :func:`tracks_objects` and it has one slot per digit.
        digit_size: Side of a digit in pixels.
        image_size: Side of the frame in pixels.
    """

    def __init__(self, model: object, digit_size: int, image_size: int) -> None:
        self.model, self.digit_size, self.image_size = model, digit_size, image_size
        self.active = tracks_objects(model)
        self.positions: list[Tensor] = []
        self.centres: list[Tensor] = []

    def update(self, video: Tensor, trajectory: Tensor, images: Tensor | None = None) -> None:
        """One batch: ``trajectory`` ``(B, T, D, 2)`` corners and, where known, the ``(B, D, s, s)`` digit
        images drawn (the centres are then the ink centres; :func:`digit_centres`)."""
        if not self.active or self.model.config.slots != trajectory.shape[2]:
            return
        self.positions.append(self.model.track(video).float().cpu())
        self.centres.append(digit_centres(trajectory, self.digit_size, self.image_size, images))

    def results(self) -> dict[str, float]:
        """``localisation_``-prefixed :func:`localisation_scores` (NaN when the model has no slots for the digits)."""
        if not self.positions:
            return dict.fromkeys(LOCALISATION_KEYS, math.nan)
        scores = localisation_scores(torch.cat(self.positions), torch.cat(self.centres), self.image_size)
        return {key: scores[key.removeprefix("localisation_")] for key in LOCALISATION_KEYS}
