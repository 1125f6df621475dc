"""Linear dependence between content and per-frame motion codes, frame by frame across videos."""

from __future__ import annotations

import math

import numpy as np

from evaluation.codes.information import TINY_VARIANCE, as_matrix


def correlation_scores(content: np.ndarray, motion: np.ndarray) -> dict[str, np.ndarray | float]:
    """Linear dependence between content and (per-frame) motion codes, frame by frame across videos.

    ``R_t[i, j]`` is the Pearson correlation, across the ``N`` videos, of content dimension ``c_i`` with
    motion dimension ``m_{t, j}`` at frame ``t``. ``mean_abs_correlation = mean_{t,i,j} |R_t[i, j]|`` and
    ``max_abs_correlation = max_{i,j} mean_t |R_t[i, j]|`` (the most dependent pair, its per-frame |r|
    averaged over frames so the maximum is not taken over ``T`` times more noisy estimates). Frames are
    kept apart because pooling (video, frame) pairs would make the implicit protocol of Baseline/LSTM
    (``m_t = mu_t - mean_t mu_t``) uncorrelated with ``c`` by construction. A dimension that is constant
    across videos (variance <= 1e-12) has correlation 0 (it carries nothing). ``correlation_chance`` is ``E|r|`` for
    independent Gaussian codes, ``sqrt(2 / (pi (N - 1)))``, the floor that finite ``N`` leaves.
    Range [0, 1], lower is better.

    Args:
        content: ``(N, Dc)``.
        motion: ``(N, T, Dm)``, or ``(N, Dm)`` for a single frame.

    Returns:
        ``{"mean_abs_correlation", "max_abs_correlation", "correlation_chance": float,
        "abs_correlation": (Dc, Dm) mean over frames of |R_t|}``.
    """
    content = as_matrix("content", content)
    motion = np.asarray(motion, dtype=np.float64)
    motion = motion[:, None] if motion.ndim == 2 else motion
    if motion.ndim != 3 or motion.shape[0] != content.shape[0] or content.shape[0] < 2:
        raise ValueError(f"expected content (N, Dc) and motion (N, T, Dm), N >= 2; got {content.shape}, {motion.shape}")
    if not (np.isfinite(content).all() and np.isfinite(motion).all()):
        nan = np.full((content.shape[1], motion.shape[2]), np.nan)
        return {"mean_abs_correlation": math.nan, "max_abs_correlation": math.nan,
                "correlation_chance": math.sqrt(2.0 / (math.pi * (len(content) - 1))), "abs_correlation": nan}

    def standardise(values: np.ndarray) -> np.ndarray:
        """Zero mean, unit variance across videos (axis 0); dead dimensions become all 0."""
        centred = values - values.mean(axis=0)
        variance = (centred**2).mean(axis=0)
        alive = variance > TINY_VARIANCE
        return np.where(alive, centred / np.sqrt(np.where(alive, variance, 1.0)), 0.0)

    content_z = standardise(content)  # (N, Dc)
    motion_z = standardise(motion)  # (N, T, Dm)
    num_frames, motion_dim = motion.shape[1:]
    per_frame = content_z.T @ motion_z.reshape(len(content), -1) / len(content)  # (Dc, T * Dm)
    per_frame = per_frame.reshape(-1, num_frames, motion_dim).transpose(1, 0, 2)  # (T, Dc, Dm)
    absolute = np.abs(per_frame)
    averaged = absolute.mean(axis=0)
    return {
        "mean_abs_correlation": float(absolute.mean()),
        "max_abs_correlation": float(averaged.max()),
        "correlation_chance": math.sqrt(2.0 / (math.pi * (len(content) - 1))),
        "abs_correlation": averaged,
    }
