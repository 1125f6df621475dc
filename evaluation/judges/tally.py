"""The judged tally of one model: real, reconstructed, swapped, resampled and sampled videos read by the
judges batch by batch (:class:`JudgedTally`), and the judged paths' correlation with the true ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from evaluation.codes.information import inception_score
from evaluation.judges.order_free import align_trajectories, digit_accuracy, trajectory_error
from evaluation.metric_names import JUDGED_KEYS
from evaluation.swaps import swap_scores

CLOSE_START_PX = 10.0  # the hard case: a video whose digits start at most this far apart (frame 0)


def close_start(trajectory: Tensor, within_px: float = CLOSE_START_PX) -> Tensor:
    """Which videos' digits start close: the smallest distance between two digits' positions in frame 0 is
    at most ``within_px`` (digits of one size, so corners and centres give the same distance).

    Args:
        trajectory: ``(B, T, D, 2)`` digit positions in pixels.
        within_px: The distance in pixels.

    Returns:
        ``(B,)`` bool; all False with fewer than two digits.
    """
    start = torch.as_tensor(trajectory)[:, 0].double()  # (B, D, 2)
    if start.shape[1] < 2:
        return torch.zeros(start.shape[0], dtype=torch.bool)
    distance = torch.cdist(start, start) + torch.diag(start.new_full((start.shape[1],), math.inf))
    return distance.flatten(1).amin(dim=1) <= within_px


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
        self.add("close_start", close_start(paths))
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
        close = values["close_start"].astype(bool)
        results["close_start_share"] = float(close.mean())
        for key in ("content_preservation", "recon_content_accuracy"):
            results[f"{key}_close_start"] = float(values[key][close].mean()) if close.any() else math.nan
        if not close.any():
            notes.append(f"no test video's digits start within {CLOSE_START_PX:g} px of each other (one digit, or "
                         "too few videos): the close-start numbers are NaN")
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
