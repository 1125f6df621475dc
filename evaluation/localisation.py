"""How well an object-structured model's positions match where the digits are (evaluation only).

The ``"slots"`` and ``"keypoints"`` Disentangled VAEs give every slot a position per frame
(``model.track(video)``, ``(B, T, K, 2)`` in [-1, 1]). The generator knows where each digit really is
(``trajectory``: its top-left corner in pixels). Training never reads that; this module compares the two
after training:

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


def digit_centres(trajectory: Tensor, digit_size: int, image_size: int) -> Tensor:
    """Centres of the digits in ``grid_sample`` coordinates.

    Args:
        trajectory: ``(B, T, D, 2)`` top-left corners ``(x, y)`` in pixels (drawn at the rounded position).
        digit_size: Side of a digit in pixels.
        image_size: Side of the frame in pixels.

    Returns:
        ``(B, T, D, 2)`` in [-1, 1]: pixel ``i`` spans ``[i, i + 1)``, so the centre of a digit drawn at ``r``
        is ``r + digit_size / 2`` and maps to ``2 (r + digit_size / 2) / image_size - 1``.
    """
    corner = torch.round(trajectory.float())
    return 2 * (corner + digit_size / 2) / image_size - 1


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

    def update(self, video: Tensor, trajectory: Tensor) -> None:
        if not self.active or self.model.config.slots != trajectory.shape[2]:
            return
        self.positions.append(self.model.track(video).float().cpu())
        self.centres.append(digit_centres(trajectory, self.digit_size, self.image_size))

    def results(self) -> dict[str, float]:
        """``localisation_``-prefixed :func:`localisation_scores` (NaN when the model has no slots for the digits)."""
        if not self.positions:
            return dict.fromkeys(LOCALISATION_KEYS, math.nan)
        scores = localisation_scores(torch.cat(self.positions), torch.cat(self.centres), self.image_size)
        return {key: scores[key.removeprefix("localisation_")] for key in LOCALISATION_KEYS}
