"""Order-free scores of a reading against the truth: digits matched as multisets, trajectories by assignment.

Pure functions of tensors. A video's ``D`` digits carry no order, neither in what the judges
(:mod:`evaluation.judges.networks`) read nor in the data's labels, so :func:`digit_accuracy` matches the digits as
multisets and :func:`trajectory_error` takes the best assignment of whole trajectories (minimum over the
``D!`` permutations); :func:`align_trajectories` reorders a reading by that assignment.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.orders import all_orders

NUM_CLASSES = 10  # digit classes 0-9


def label_counts(labels: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Per-class counts ``(B, num_classes)`` of a ``(B, D)`` label tensor (the multiset of each row)."""
    if labels.ndim != 2:
        raise ValueError(f"expected labels of shape (B, D), got {tuple(labels.shape)}")
    return F.one_hot(labels.long(), num_classes).sum(dim=1)


def digit_accuracy(pred_labels: Tensor, true_labels: Tensor) -> Tensor:
    """Fraction of each video's digits read right, matched as multisets (order-free).

    ``acc_b = |pred_b ∩ true_b| / D`` where ``∩`` is the multiset intersection (per class, the smaller of
    the two counts): ``[3, 7]`` against ``[7, 3]`` scores 1, ``[3, 3]`` against ``[3, 7]`` scores 0.5.

    Args:
        pred_labels: ``(B, D)`` predicted classes 0-9, any order.
        true_labels: ``(B, D)`` true classes.

    Returns:
        ``(B,)`` float in [0, 1].
    """
    if pred_labels.shape != true_labels.shape or pred_labels.ndim != 2:
        raise ValueError(
            f"expected pred_labels and true_labels of the same shape (B, D), "
            f"got {tuple(pred_labels.shape)} and {tuple(true_labels.shape)}"
        )
    true_labels = true_labels.to(pred_labels.device)
    matched = torch.minimum(label_counts(pred_labels), label_counts(true_labels)).sum(dim=1)
    return matched.float() / pred_labels.shape[1]


def _check_trajectories(pred: Tensor, true: Tensor) -> None:
    if pred.shape != true.shape or pred.ndim != 4 or pred.shape[-1] != 2:
        raise ValueError(
            f"expected pred and true trajectories of the same shape (B, T, D, 2), "
            f"got {tuple(pred.shape)} and {tuple(true.shape)}"
        )


def trajectory_errors_per_assignment(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Mean Euclidean error of every assignment of predicted to true trajectories.

    Returns:
        ``(errors, permutations)``: ``errors[b, k]`` is ``mean_{t, d} ||pred[b, t, perm_k[d]] -
        true[b, t, d]||`` for the ``k``-th of the ``D!`` permutations ``permutations`` ``(D!, D)``.
    """
    _check_trajectories(pred, true)
    num_digits = pred.shape[2]
    permutations = all_orders(num_digits, pred.device)
    true = true.to(device=pred.device, dtype=pred.dtype)
    reordered = pred[:, :, permutations]  # (B, T, D!, D, 2)
    distances = (reordered - true[:, :, None]).norm(dim=-1)  # (B, T, D!, D)
    return distances.mean(dim=(1, 3)), permutations


def trajectory_error(pred: Tensor, true: Tensor) -> Tensor:
    """Mean Euclidean distance in pixels under the best whole-trajectory assignment (order-free).

    ``err_b = min_{pi in S_D} (1 / (T D)) sum_{t, d} ||pred_{b, t, pi(d)} - true_{b, t, d}||_2``: each
    predicted trajectory is matched to one true trajectory for all frames at once (a tracker that swaps
    two digits half-way is penalised).

    Args:
        pred: ``(B, T, D, 2)`` predicted positions, any digit order.
        true: ``(B, T, D, 2)`` true positions.

    Returns:
        ``(B,)`` in pixels.
    """
    errors, _ = trajectory_errors_per_assignment(pred, true)
    return errors.min(dim=1).values


def align_trajectories(pred: Tensor, true: Tensor) -> Tensor:
    """``pred`` with its digits reordered by their best assignment to ``true`` (:func:`trajectory_error`)."""
    errors, permutations = trajectory_errors_per_assignment(pred, true)
    best = permutations[errors.argmin(dim=1)]  # (B, D)
    index = best[:, None, :, None].expand(-1, pred.shape[1], -1, 2)
    return pred.gather(2, index)


__all__ = [
    "NUM_CLASSES",
    "align_trajectories",
    "digit_accuracy",
    "label_counts",
    "trajectory_error",
    "trajectory_errors_per_assignment",
]
