"""The ground-truth factors that the disentanglement metrics score codes against.

Moving MNIST's digit slots come in random order, so every factor is symmetric in them:

* content (per video, discrete): the per-class digit counts ``n_k = #{d : label_d = k}``, k = 0..9, the
  multi-hot description of *which* digits a video shows (:data:`CONTENT_FACTOR_NAMES`); the sorted labels
  for probes and judges;
* motion (per frame, continuous, pixels): ``mean_x``, ``mean_y`` (centroid of the digits' top-left
  corners) and ``spread_x``, ``spread_y`` (mean over digit pairs of ``|x_i - x_j|``, ``|y_i - y_j|``):
  *where* the digits are (:data:`MOTION_FACTOR_NAMES`). For 2 digits they give the unordered x- and
  y-pairs (only the sign of ``dx * dy`` is lost). A factor that is constant on the evaluated videos
  (spreads with 1 digit, a class that never occurs) is left out by :func:`evaluation.codes.code_metrics.code_metrics`,
  with a note.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from evaluation.judges.order_free import NUM_CLASSES, label_counts

CONTENT_FACTOR_NAMES = tuple(f"count_{k}" for k in range(NUM_CLASSES))
MOTION_FACTOR_NAMES = ("mean_x", "mean_y", "spread_x", "spread_y")


def content_factors(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-class digit counts ``n_k = #{d : labels[d] = k}``: ``(B, D)`` labels -> ``(B, num_classes)``."""
    return label_counts(torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)), num_classes).numpy()


def motion_factors(trajectory: np.ndarray) -> np.ndarray:
    """Per-frame centroid and spread of the digits' corners: ``(B, T, D, 2)`` -> ``(B, T, 4)``.

    Columns ``MOTION_FACTOR_NAMES``: ``mean_x, mean_y`` (mean over digits) and ``spread_x, spread_y``
    (mean over digit pairs of ``|x_i - x_j|``; 0 for a single digit). Symmetric in the digit slots.
    """
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.ndim != 4 or trajectory.shape[-1] != 2:
        raise ValueError(f"expected a trajectory of shape (B, T, D, 2), got {trajectory.shape}")
    pairs = list(itertools.combinations(range(trajectory.shape[2]), 2))
    if pairs:
        first, second = (list(side) for side in zip(*pairs, strict=True))
        spread = np.abs(trajectory[:, :, first] - trajectory[:, :, second]).mean(axis=2)  # (B, T, 2)
    else:
        spread = np.zeros(trajectory.shape[:2] + (2,))
    return np.concatenate([trajectory.mean(axis=2), spread], axis=-1)
