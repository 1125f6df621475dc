"""The swap protocol: which video gives its motion to which, and how a swap is scored.

**Pairing.** Video ``A = i`` takes its motion from ``B = i - 1`` (the first from the last):
:func:`motion_sources` for one batch of ``n`` videos, :func:`motion_partners` across a loader's batches
(the first video of each later batch takes the previous batch's last), :func:`example_pairs` for the
figures' swaps. A swap decodes ``combine(c_A, m_B)``: "A's digits moving like B".

**Scores.** :func:`swap_fidelity` compares a swap with the exactly rendered ideal (A's digits along B's
paths); :class:`JudgedTally` reads swaps, reconstructions, resampled and sampled videos with the judges;
:func:`swap_scores` rescales the judged content preservation and motion correlation by their chance levels,
``(value - chance) / (1 - chance)`` clipped to [0, 1], into ``content_swap_score``, ``motion_swap_score``
and their geometric mean ``swap_quality``, stored with the metrics; :func:`swap_score` reads one back from a
metrics document (deriving it, with the same rule, from documents written before it was stored).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from data import render_digits
from evaluation.codes.information import inception_score
from evaluation.judges.order_free import align_trajectories, digit_accuracy, trajectory_error
from evaluation.metric_names import JUDGED_KEYS, metric_value
from evaluation.reconstruction.metrics import frame_psnr
from evaluation.reconstruction.ssim import frame_ssim

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


def chance_rescaled(value: float, chance: float) -> float:
    """``(value - chance) / (1 - chance)`` clipped to [0, 1]: 0 at (or below) chance, 1 perfect.

    NaN when either is NaN or not finite, or when ``chance >= 1``.
    """
    if not (math.isfinite(value) and math.isfinite(chance)) or chance >= 1:
        return math.nan
    return float(np.clip((value - chance) / (1.0 - chance), 0.0, 1.0))


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
# Swap fidelity against the exactly rendered ideal swap


def swap_fidelity(
    swapped: Tensor, digit_images: Tensor, trajectory: Tensor, image_size: int
) -> tuple[Tensor, Tensor]:
    """PSNR and SSIM of swapped videos against the ideal swap: A's digits moving along B's paths.

    For each video the ``D!`` assignments of A's digit images to B's trajectory slots are rendered
    (``data.render_digits``) and the one giving the swapped video the highest mean per-frame PSNR is
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
    for permutation in itertools.permutations(range(digit_images.shape[1])):
        ideal = render_digits(digit_images[:, list(permutation)], trajectory, image_size)
        psnr = frame_psnr(swapped, ideal).mean(dim=1)  # (B,)
        if best_psnr is None:
            best_psnr, best_ideal = psnr, ideal
        else:
            better = psnr > best_psnr
            best_psnr = torch.where(better, psnr, best_psnr)
            best_ideal = torch.where(better.view(-1, 1, 1, 1, 1), ideal, best_ideal)
    return best_psnr, frame_ssim(swapped, best_ideal).mean(dim=1)


# ----------------------------------------------------------------------------------------------------
# The judged tally: swaps, resampling and samples read by the judges


def _numpy(values: Any) -> np.ndarray:
    return torch.as_tensor(values).detach().cpu().numpy()


def trajectory_correlation(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson r of predicted and true coordinates, pooled over videos, frames, digits and both axes,
    after each video's best digit assignment (:func:`evaluation.judges.order_free.align_trajectories`).

    1 when the prediction follows the truth exactly (up to an affine map); about 0 for unrelated paths;
    NaN when either side is constant or not finite.

    Args:
        pred: ``(B, T, D, 2)`` positions, any digit order.
        true: ``(B, T, D, 2)`` positions.
    """
    pred = torch.from_numpy(np.array(pred, dtype=np.float64))  # a copy: negative strides are fine
    true = torch.from_numpy(np.array(true, dtype=np.float64))
    aligned = align_trajectories(pred, true).reshape(-1).numpy()
    truth = true.reshape(-1).numpy()
    if not (np.isfinite(aligned).all() and np.isfinite(truth).all()) or aligned.std() == 0 or truth.std() == 0:
        return math.nan
    return float(np.corrcoef(aligned, truth)[0, 1])


class JudgedTally:
    """Per-video judge readings of one model (real, reconstructed, swapped, resampled and sampled videos),
    accumulated batch by batch; :meth:`results` gives the ``JUDGED_KEYS``."""

    def __init__(self, judges: Any, model: Any, generator: torch.Generator) -> None:
        self.judges, self.model, self.generator = judges, model, generator
        self.values: dict[str, list[np.ndarray]] = {}
        self.can_resample = hasattr(model, "sample_factors")
        self.can_score_samples = hasattr(judges, "content_probabilities") or hasattr(
            judges, "read_content_log_probs"
        )

    def add(self, key: str, values: Tensor) -> None:
        self.values.setdefault(key, []).append(_numpy(values).astype(np.float64))

    def read(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Judged ``(labels (B, D), trajectory (B, T, D, 2))``; one detector pass when the judges have ``read``."""
        if hasattr(self.judges, "read"):
            return self.judges.read(video)
        return self.judges.read_content(video), self.judges.read_motion(video)

    def class_probabilities(self, video: Tensor) -> np.ndarray:
        """``(B, 10)`` from ``content_probabilities``, else ``(B * D, 10)``: one row per tracked digit."""
        if hasattr(self.judges, "content_probabilities"):
            return _numpy(self.judges.content_probabilities(video))
        log_probabilities = _numpy(self.judges.read_content_log_probs(video))  # (B, D, 10)
        return np.exp(log_probabilities.reshape(-1, log_probabilities.shape[-1]))

    def update(self, video: Tensor, content: Tensor, motion: Tensor, swapped: Tensor,
               own: Mapping[str, Tensor], partner: Mapping[str, Tensor]) -> None:
        """Judge one batch: the real videos A, their reconstructions, the swaps ``combine(c_A, m_B)``
        (``partner`` holds B's factors, :func:`motion_partners`), and the resampled and sampled videos."""
        labels, paths = own["labels"], own["trajectory"]
        judged_labels, judged_paths = self.read(video)
        self.add("judge_content_digit_accuracy", digit_accuracy(judged_labels, labels))
        self.add("judge_motion_trajectory_error_px", trajectory_error(judged_paths, paths))
        judged_labels, judged_paths = self.read(self.model.combine(content, motion))
        self.add("recon_content_accuracy", digit_accuracy(judged_labels, labels))
        self.add("recon_trajectory_error_px", trajectory_error(judged_paths, paths))
        self.add("content_accuracy_chance", digit_accuracy(partner["labels"], labels))
        self.add("trajectory_error_chance_px", trajectory_error(partner["trajectory"], paths))
        judged_labels, judged_paths = self.read(swapped)
        self.add("content_preservation", digit_accuracy(judged_labels, labels))
        self.add("swap_content_leak_accuracy", digit_accuracy(judged_labels, partner["labels"]))
        self.add("swap_trajectory_error_px", trajectory_error(judged_paths, partner["trajectory"]))
        self.add("swap_judged_paths", judged_paths)
        self.add("swap_partner_paths", partner["trajectory"])
        self.add("swap_own_paths", paths)
        batch, frames = motion.shape[:2]
        if self.can_resample:
            prior_content, prior_motion = self.model.sample_factors(batch, frames, generator=self.generator)
            judged_labels, judged_paths = self.read(self.model.combine(content, prior_motion))
            self.add("resample_motion_content_accuracy", digit_accuracy(judged_labels, labels))
            self.add("resample_motion_trajectory_error_px", trajectory_error(judged_paths, paths))
            judged_labels, judged_paths = self.read(self.model.combine(prior_content, motion))
            self.add("resample_content_trajectory_error_px", trajectory_error(judged_paths, paths))
            self.add("resample_content_content_accuracy", digit_accuracy(judged_labels, labels))
        if self.can_score_samples:
            samples = self.model.sample(batch, frames, generator=self.generator)
            self.add("sample_probabilities", self.class_probabilities(samples))

    def results(self, notes: list[str]) -> dict[str, float]:
        """The ``JUDGED_KEYS`` over every video added; what could not be computed is NaN, with a note."""
        values = {key: np.concatenate(parts) for key, parts in self.values.items()}
        results = {key: float(np.mean(values[key])) if key in values else math.nan for key in JUDGED_KEYS}
        results["motion_correlation"] = trajectory_correlation(values["swap_judged_paths"],
                                                               values["swap_partner_paths"])
        results["motion_correlation_chance"] = trajectory_correlation(values["swap_own_paths"],
                                                                      values["swap_partner_paths"])
        results.update(swap_scores(results))
        if self.can_score_samples:
            scores = inception_score(values["sample_probabilities"])
            results["sample_inception_score"] = scores["inception_score"]
            results["sample_entropy_conditional"] = scores["entropy_conditional"]
            results["sample_entropy_marginal"] = scores["entropy_marginal"]
        else:
            notes.append(
                "the judges have neither content_probabilities(video) nor read_content_log_probs(video): "
                "sample Inception Score is NaN"
            )
        if not self.can_resample:
            notes.append("the model has no sample_factors(n, T, generator): resampling metrics are NaN")
        return results
