"""Structural similarity (SSIM, Wang et al. 2004) of every frame, as scikit-image computes it.

Videos are ``(B, T, C, H, W)`` floats in [0, 1]. :func:`frame_ssim` gives one value per frame, with Wang et
al.'s Gaussian window or scikit-image's default 7x7 box (OpenSTL's call); :mod:`evaluation.reconstruction.metrics` averages
it into the per-video ``ssim`` and ``ssim_uniform``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from evaluation.reconstruction.tensor_checks import check_pair, compute_dtype, pair_as

# SSIM constants of Wang et al. (2004), as scikit-image uses them with ``gaussian_weights=True``.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius int(3.5 * 1.5 + 0.5) = 5: an 11-tap window
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _gaussian_taps(sigma: float, truncate: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian of ``scipy.ndimage.gaussian_filter`` (radius int(truncate*sigma+0.5))."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _band(taps: Tensor, length: int) -> Tensor:
    """``(length, length - k + 1)`` matrix ``M``: ``signal @ M`` is the valid correlation with ``k`` taps."""
    size = taps.numel()
    device = taps.device
    offsets = torch.arange(length, device=device)[:, None] - torch.arange(length - size + 1, device=device)
    inside = (offsets >= 0) & (offsets < size)
    return torch.where(inside, taps[offsets.clamp(0, size - 1)], taps.new_zeros(()))


def frame_ssim(pred: Tensor, target: Tensor, window: str = "gaussian") -> Tensor:
    """Structural similarity of every frame (Wang et al., 2004), as scikit-image computes it.

    With local means, variances and covariance over a window, ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``,
    ``K1 = 0.01``, ``K2 = 0.03`` and data range ``L = 1``::

        S = (2 mu_x mu_y + C1) (2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

    and the frame's SSIM is the mean of ``S`` over the *valid* positions, where the whole window lies
    inside the frame (scikit-image averages over ``crop(S, r)`` for window radius ``r``, where its
    reflect-padded filter equals the valid one). Two windows:

    * ``"gaussian"`` (the default, Wang et al.'s): Gaussian weights, ``sigma = 1.5``, 11 taps, population
      (co)variances; equals ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, data_range=1.0)``; valid region ``(H - 10) x (W - 10)``.
    * ``"uniform"``: scikit-image's default, a 7x7 box with sample (co)variances (``49 / 48``); equals
      ``structural_similarity(a, b, data_range=1.0)``, the call OpenSTL's Moving MNIST tables make.

    Frames with several channels average the channels' SSIM (skimage's ``channel_axis``). The separable
    filter runs as two matrix products, all frames at once.

    Args:
        pred: ``(B, T, C, H, W)`` in [0, 1], with ``H, W`` at least the window (11 or 7).
        target: the same shape.
        window: ``"gaussian"`` or ``"uniform"``.

    Returns:
        ``(B, T)``; 1 for identical frames.
    """
    check_pair(pred, target)
    batch, frames, channels, height, width = pred.shape
    dtype = compute_dtype(pred)
    if window == "gaussian":
        taps = _gaussian_taps(SSIM_SIGMA, SSIM_TRUNCATE, dtype, pred.device)
        covariance_scale = 1.0
    elif window == "uniform":
        taps = torch.full((7,), 1.0 / 7.0, dtype=dtype, device=pred.device)
        covariance_scale = 49.0 / 48.0  # sample covariance over the 49 pixels of the box
    else:
        raise ValueError(f"window must be 'gaussian' or 'uniform', got {window!r}")
    size = taps.numel()
    if height < size or width < size:
        raise ValueError(f"SSIM needs frames of at least {size}x{size} pixels, got {height}x{width}")
    pred, target = pair_as(pred, target)
    x = pred.reshape(-1, 1, height, width)  # (B*T*C, 1, H, W)
    y = target.reshape(-1, 1, height, width)
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, H, W)
    # Valid separable filtering as two matrix products with banded matrices (much faster on CPUs than a
    # grouped conv2d): band[i, j] = taps[i - j] for 0 <= i - j < size.
    local = _band(taps, height).t() @ maps @ _band(taps, width)  # (N, 5, H - size + 1, W - size + 1)
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = local.unbind(dim=1)
    var_x = covariance_scale * (mean_xx - mu_x * mu_x)
    var_y = covariance_scale * (mean_yy - mu_y * mu_y)
    cov_xy = covariance_scale * (mean_xy - mu_x * mu_y)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    per_channel = (numerator / denominator).flatten(1).mean(dim=1)  # (B*T*C,)
    return per_channel.view(batch, frames, channels).mean(dim=2)
