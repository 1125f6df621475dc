"""The swap protocol: which video gives its motion to which, the ideal swap, and how a swap is scored.

**Pairing.** Video ``A = i`` takes its motion from ``B = i - 1`` (the first from the last):
:func:`motion_sources` for one batch of ``n`` videos, :func:`motion_partners` across a loader's batches
(the first video of each later batch takes the previous batch's last), :func:`example_pairs` for the
figures' swaps. A swap decodes ``combine(c_A, m_B)``: "A's digits moving like B".

**Scores.** :func:`swap_fidelity` compares a swap with the exactly rendered ideal (:func:`ideal_swap`: A's
digits along B's paths); the judges read the swaps (:class:`evaluation.judges.tally.JudgedTally`), and
:func:`swap_scores` rescales the judged content preservation and motion correlation by their chance levels,
``(value - chance) / (1 - chance)`` clipped to [0, 1], into ``content_swap_score``, ``motion_swap_score``
and their geometric mean ``swap_quality``, stored with the metrics; :func:`swap_score` reads one back from a
metrics document (deriving it, with the same rule, from documents written before it was stored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from data import render_digits
from evaluation.codes.chance import chance_rescaled
from evaluation.metric_names import metric_value
from evaluation.reconstruction.metrics import frame_psnr
from evaluation.reconstruction.ssim import frame_ssim
from utils.orders import all_orders

# Each chance-rescaled swap score and the (measured, chance) keys it is computed from.
SWAP_SCORE_SOURCES = {
    "content_swap_score": ("content_preservation", "content_accuracy_chance"),
    "motion_swap_score": ("motion_correlation", "motion_correlation_chance"),
}


# ----------------------------------------------------------------------------------------------------
# Pairing


def motion_sources(num_videos: int) -> np.ndarray:
    """For a batch of ``num_videos`` videos, the index of the video each one takes its motion from.

    Video ``i`` takes video ``i - 1``'s motion and video 0 the last one's: ``[n - 1, 0, 1, ..., n - 2]``.

    Args:
        num_videos: the batch size ``n`` (at least 1; a single video is its own source).

    Returns:
        ``(n,)`` int64 indices.
    """
    if num_videos < 1:
        raise ValueError(f"need at least one video, got {num_videos}")
    return np.roll(np.arange(num_videos), 1)


def example_pairs(num_videos: int, count: int) -> list[tuple[int, int]]:
    """The first ``count`` disjoint ``(A, B)`` pairs of :func:`motion_sources` among ``num_videos`` videos, for
    figures: video ``2k + 1`` (content A) with its motion source ``2k`` (B); ``[(0, 0)]`` for a single video.

    Args:
        num_videos: videos available (at least 1).
        count: pairs wanted (at least 1); fewer come back when there are too few videos.

    Returns:
        ``[(a, b), ...]`` with ``b = motion_sources(num_videos)[a]``.
    """
    if count < 1:
        raise ValueError(f"need at least one pair, got {count}")
    sources = motion_sources(num_videos)
    if num_videos == 1:
        return [(0, 0)]
    return [(a, int(sources[a])) for a in range(1, num_videos, 2)][:count]


def motion_partners(current: dict[str, Tensor], previous: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Each video's motion source B across a loader's batches: the previous video in loader order.

    Args:
        current: a batch's tensors by name, each ``(B, ...)``.
        previous: the previous batch's last video (each ``(1, ...)``), or ``None`` for the first batch,
            whose first video then takes the batch's last (:func:`motion_sources`).

    Returns:
        The partners' tensors by name, aligned with ``current``.
    """
    if previous is None:
        sources = torch.as_tensor(motion_sources(len(next(iter(current.values())))))
        return {key: value[sources.to(value.device)] for key, value in current.items()}
    return {key: torch.cat([previous[key], value[:-1]]) for key, value in current.items()}


# ----------------------------------------------------------------------------------------------------
# Chance-rescaled swap scores


def swap_scores(metrics: Mapping[str, float]) -> dict[str, float]:
    """``content_swap_score``, ``motion_swap_score`` and ``swap_quality = sqrt(content * motion)`` from the
    judged swap metrics (``SWAP_SCORE_SOURCES``): both halves of a swap must work."""
    scores = {key: chance_rescaled(metrics[value], metrics[chance])
              for key, (value, chance) in SWAP_SCORE_SOURCES.items()}
    product = scores["content_swap_score"] * scores["motion_swap_score"]
    scores["swap_quality"] = math.sqrt(product) if product >= 0 else math.nan
    return scores


def swap_score(metrics: Mapping[str, Any], key: str) -> float:
    """One chance-rescaled swap score of a metrics document's ``disentanglement`` section: the stored value,
    or, in a document written before it was stored, the same rule applied to its sources (NaN if missing)."""
    if key in metrics:
        return metric_value(metrics, key)
    value, chance = SWAP_SCORE_SOURCES[key]
    return chance_rescaled(metric_value(metrics, value), metric_value(metrics, chance))


# ----------------------------------------------------------------------------------------------------
# The ideal swap, exactly rendered, and a swap's fidelity to it


def ideal_swap(digit_images: Tensor, trajectory: Tensor, image_size: int) -> Tensor:
    """The ideal swap "A's digits moving like B": A's digit images drawn along B's true paths
    (``data.render_digits``), in the order given (which digit takes which path is arbitrary).

    Args:
        digit_images: ``(B, D, s, s)`` A's digit images (uint8 or float).
        trajectory: ``(B, T, D, 2)`` B's digit corners.
        image_size: side of the canvas.

    Returns:
        ``(B, T, 1, H, W)`` videos in [0, 1].
    """
    return render_digits(digit_images, trajectory, image_size)


def swap_fidelity(
    swapped: Tensor, digit_images: Tensor, trajectory: Tensor, image_size: int
) -> tuple[Tensor, Tensor]:
    """PSNR and SSIM of swapped videos against the ideal swap: A's digits moving along B's paths.

    For each video the ``D!`` assignments of A's digit images to B's trajectory slots are rendered
    (:func:`ideal_swap`) and the one giving the swapped video the highest mean per-frame PSNR is
    the reference (the model cannot know which of A's digits should follow which of B's paths).

    Args:
        swapped: ``(B, T, 1, H, W)`` the model's ``combine(c_A, m_B)``, in [0, 1].
        digit_images: ``(B, D, s, s)`` A's digit images (uint8 or float).
        trajectory: ``(B, T, D, 2)`` B's digit corners.
        image_size: side of the canvas.

    Returns:
        ``(psnr, ssim)``, each ``(B,)``: means over frames of the per-frame PSNR of
        :mod:`evaluation.reconstruction.metrics` (``+inf`` for an exact match) and of the SSIM of :mod:`evaluation.reconstruction.ssim`.
    """
    digit_images = digit_images.to(swapped.device)
    trajectory = torch.as_tensor(trajectory).to(swapped.device)
    swapped = swapped.float()
    best_psnr, best_ideal = None, None
    for permutation in all_orders(digit_images.shape[1]).tolist():
        ideal = ideal_swap(digit_images[:, permutation], trajectory, image_size)
        psnr = frame_psnr(swapped, ideal).mean(dim=1)  # (B,)
        if best_psnr is None:
            best_psnr, best_ideal = psnr, ideal
        else:
            better = psnr > best_psnr
            best_psnr = torch.where(better, psnr, best_psnr)
            best_ideal = torch.where(better.view(-1, 1, 1, 1, 1), ideal, best_ideal)
    return best_psnr, frame_ssim(swapped, best_ideal).mean(dim=1)
