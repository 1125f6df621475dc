"""Checks and compute precision of ``(pred, target)`` video pairs, shared by the per-video metrics and SSIM."""

from __future__ import annotations

import torch
from torch import Tensor


def check_pair(pred: Tensor, target: Tensor, min_frames: int = 1) -> None:
    """Raise ``ValueError`` unless both are ``(B, T, C, H, W)`` of the same shape with ``T >= min_frames``."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"expected tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.ndim != 5 or pred.shape != target.shape:
        raise ValueError(
            f"expected pred and target of the same shape (B, T, C, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.shape[1] < min_frames:
        raise ValueError(f"expected videos of at least {min_frames} frames, got shape {tuple(pred.shape)}")


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The input's precision, at least float32: float64 inputs are computed in float64 (not on MPS, which
    lacks it); float32 sums over a frame's pixels and SSIM's local moments then agree with float64 to about
    1e-6, well inside the 1e-4 the tests ask of scikit-image agreement, at a third of the cost."""
    if tensor.dtype == torch.float64 and tensor.device.type != "mps":
        return torch.float64
    return torch.float32


def pair_as(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Both tensors in the compute precision of :func:`compute_dtype`."""
    dtype = compute_dtype(pred)
    return pred.to(dtype), target.to(dtype)
