"""Reconstruction metrics and computational cost, comparable with published Moving MNIST tables.

Videos are ``(B, T, C, H, W)`` floats in [0, 1]: ``pred`` is the reconstruction, ``target`` the truth.
The maths sits in pure per-video functions that return one number per video, shape ``(B,)`` (or per
frame, ``(B, T)``); the loops over a model and a loader (``reconstruction_metrics``, ``compare_models``)
only add those up. Every average over a data set is a mean over *videos* (each video weighs the same,
so a smaller last batch is weighted correctly), of per-video means over frames.

Conventions (``T`` frames, ``P = C * H * W`` pixels per frame, ``e = pred - target``; every value is a
mean over videos of the per-video value below):

* ``mse`` (lower is better): mean over frames and pixels of ``e^2``, the per-pixel MSE.
* ``mse_per_frame`` (lower): mean over frames of ``sum_pixels e^2``; OpenSTL's Moving MNIST "MSE".
* ``mae_per_frame`` (lower): mean over frames of ``sum_pixels |e|``; OpenSTL's "MAE".
* ``bce_per_frame`` (lower): mean over frames of ``sum_pixels BCE(pred, target)``, in nats.
* ``psnr`` (higher): mean over frames of ``10 log10(1 / MSE_frame)`` in dB; ``+inf`` for a perfect frame.
* ``ssim`` (higher): mean over frames of the frame SSIM, Gaussian window (Wang et al., 2004).
* ``ssim_uniform`` (higher): the same with scikit-image's default 7x7 box window (OpenSTL's call).
* ``temporal_consistency`` (lower): mean over ``t`` and pixels of
  ``((pred_{t+1} - pred_t) - (target_{t+1} - target_t))^2``.

The per-frame sums are the convention of published Moving MNIST tables (OpenSTL, Tan et al., 2023:
"MSE" and "MAE" per frame of 64x64 pixels in [0, 1]); ``mse * P`` equals ``mse_per_frame``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from data import video_of
from evaluation.metric_names import RECONSTRUCTION_KEYS
from utils.devices import resolve_device, synchronize

# SSIM constants of Wang et al. (2004), as scikit-image uses them with ``gaussian_weights=True``.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius int(3.5 * 1.5 + 0.5) = 5: an 11-tap window
SSIM_K1 = 0.01
SSIM_K2 = 0.03



# ----------------------------------------------------------------------------------------------------
# Checks and helpers


def _check_pair(pred: Tensor, target: Tensor, min_frames: int = 1) -> None:
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


def _compute_dtype(tensor: Tensor) -> torch.dtype:
    """The input's precision, at least float32: float64 inputs are computed in float64 (not on MPS, which
    lacks it); float32 sums over a frame's pixels and SSIM's local moments then agree with float64 to about
    1e-6, well inside the 1e-4 the tests ask of scikit-image agreement, at a third of the cost."""
    if tensor.dtype == torch.float64 and tensor.device.type != "mps":
        return torch.float64
    return torch.float32


def _pair_as(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    dtype = _compute_dtype(pred)
    return pred.to(dtype), target.to(dtype)


# ----------------------------------------------------------------------------------------------------
# Pure per-video metrics: (B, T, C, H, W) pairs in, (B,) or (B, T) out


def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel mean squared error of every frame.

    ``MSE_{b,t} = (1 / P) sum_pixels (pred - target)^2`` with ``P = C * H * W``.

    Args:
        pred: ``(B, T, C, H, W)`` reconstruction in [0, 1].
        target: ``(B, T, C, H, W)`` ground truth in [0, 1].

    Returns:
        ``(B, T)`` in the compute precision (float32, or float64 for float64 inputs).
    """
    _check_pair(pred, target)
    pred, target = _pair_as(pred, target)
    return (pred - target).pow(2).flatten(2).mean(dim=2)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel mean squared error of each video: ``mean over frames and pixels of (pred - target)^2``.

    Returns:
        ``(B,)``.
    """
    return frame_mse(pred, target).mean(dim=1)


def mse_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over a frame's pixels, averaged over frames (OpenSTL's Moving MNIST "MSE").

    ``mean_t sum_pixels (pred - target)^2``; equals ``mse * C * H * W``.

    Returns:
        ``(B,)``.
    """
    _check_pair(pred, target)
    pred, target = _pair_as(pred, target)
    return (pred - target).pow(2).flatten(2).sum(dim=2).mean(dim=1)


def mae_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute error summed over a frame's pixels, averaged over frames (OpenSTL's "MAE").

    ``mean_t sum_pixels |pred - target|``.

    Returns:
        ``(B,)``.
    """
    _check_pair(pred, target)
    pred, target = _pair_as(pred, target)
    return (pred - target).abs().flatten(2).sum(dim=2).mean(dim=1)


def bce_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy summed over a frame's pixels, averaged over frames (nats).

    ``mean_t sum_pixels -[target log(pred) + (1 - target) log(1 - pred)]``, with each log clamped at
    ``-100`` as :func:`torch.nn.functional.binary_cross_entropy` does (so a confident wrong pixel costs
    100 nats, not infinity). ``pred`` are probabilities (what ``reconstruct`` returns), not logits; it is
    the models' ``"bce"`` training loss per frame, evaluated at the posterior means.

    Returns:
        ``(B,)``.
    """
    _check_pair(pred, target)
    pred, target = _pair_as(pred, target)
    bce = F.binary_cross_entropy(pred.clamp(0.0, 1.0), target, reduction="none")
    return bce.flatten(2).sum(dim=2).mean(dim=1)


def frame_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of every frame, in dB, for data in [0, 1] (data range 1).

    ``PSNR_{b,t} = 10 log10(1 / MSE_{b,t})`` with the per-pixel ``MSE_{b,t}`` of :func:`frame_mse`, as
    ``skimage.metrics.peak_signal_noise_ratio(target_frame, pred_frame, data_range=1)``. A perfect frame
    (``MSE = 0``) has ``PSNR = +inf``.

    Returns:
        ``(B, T)``.
    """
    return -10.0 * torch.log10(frame_mse(pred, target))


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over frames of the frame PSNR (:func:`frame_psnr`), in dB.

    PSNR is averaged per frame (not computed from the mean MSE), as published video tables do. A
    perfect frame contributes ``+inf``, so a video with a perfect frame has ``+inf``: the average keeps
    infinities rather than dropping or capping them (values are otherwise at least 0 dB for data in
    [0, 1], so no ``-inf`` or NaN can arise).

    Returns:
        ``(B,)``.
    """
    return frame_psnr(pred, target).mean(dim=1)


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
    _check_pair(pred, target)
    batch, frames, channels, height, width = pred.shape
    dtype = _compute_dtype(pred)
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
    pred, target = _pair_as(pred, target)
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


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over frames of the frame SSIM with Wang et al.'s Gaussian window (:func:`frame_ssim`).

    Returns:
        ``(B,)``.
    """
    return frame_ssim(pred, target).mean(dim=1)


def ssim_uniform(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over frames of the frame SSIM with scikit-image's default 7x7 box (as OpenSTL reports it).

    Returns:
        ``(B,)``.
    """
    return frame_ssim(pred, target, window="uniform").mean(dim=1)


def temporal_consistency(pred: Tensor, target: Tensor) -> Tensor:
    """How far the reconstruction's frame-to-frame changes are from the truth's (lower is better).

    ``TC = 1 / ((T - 1) P) sum_{t=1}^{T-1} sum_pixels ((pred_{t+1} - pred_t) - (target_{t+1} - target_t))^2``

    Measured against the ground truth, so a frozen video (no change at all) scores the mean squared
    frame difference of the truth, not 0, while a constant offset added to every frame scores 0.

    Args:
        pred: ``(B, T, C, H, W)`` with ``T >= 2``.
        target: the same shape.

    Returns:
        ``(B,)``.
    """
    _check_pair(pred, target, min_frames=2)
    pred, target = _pair_as(pred, target)
    change_error = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])  # (B, T-1, C, H, W)
    return change_error.pow(2).flatten(1).mean(dim=1)


PER_VIDEO_METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": mse,
    "mse_per_frame": mse_per_frame,
    "mae_per_frame": mae_per_frame,
    "bce_per_frame": bce_per_frame,
    "psnr": psnr,
    "ssim": ssim,
    "ssim_uniform": ssim_uniform,
    "temporal_consistency": temporal_consistency,
}


def video_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Every metric of :data:`~evaluation.metric_names.RECONSTRUCTION_KEYS` for each video.

    Args:
        pred: ``(B, T, C, H, W)`` reconstruction in [0, 1], ``T >= 2``, ``H, W >= 11``.
        target: the same shape.

    Returns:
        Metric name -> ``(B,)`` tensor.
    """
    _check_pair(pred, target, min_frames=2)
    return {name: metric(pred, target) for name, metric in PER_VIDEO_METRICS.items()}


# ----------------------------------------------------------------------------------------------------
# Loops over a model and a loader


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode for a block, then the module's previous mode back (a no-op for objects that are not modules)."""
    was_training = model.training if isinstance(model, nn.Module) else None
    if was_training is not None:
        model.eval()
    try:
        yield
    finally:
        if was_training is not None:
            model.train(was_training)


def _batches(loader: Iterable, max_batches: int | None, progress: bool, desc: str) -> Iterable:
    if max_batches is not None and (isinstance(max_batches, bool) or max_batches <= 0):
        raise ValueError(f"max_batches must be a positive integer or None, got {max_batches!r}")
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    bar = tqdm(loader, total=total, desc=desc, disable=not progress, leave=False, unit="batch")
    for number, batch in enumerate(bar):
        if max_batches is not None and number >= max_batches:
            break
        yield batch


def reconstruction_metrics(
    model: Any,
    loader: Iterable,
    device: str | torch.device,
    max_batches: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Reconstruction quality of a model over a loader, averaged over videos.

    Each video is reconstructed from its posterior means, ``model.reconstruct(video)``, in eval mode
    without gradients (an ``nn.Module`` is moved to ``device`` and returned to its previous train/eval
    mode afterwards). Every metric is the mean over all videos of the per-video value (see the module
    table), so batches of different sizes are weighted by their number of videos. ``psnr`` is ``+inf``
    as soon as one frame is reconstructed exactly (see :func:`psnr`); ``json.dump`` writes it as
    ``Infinity``.

    Args:
        model: anything with ``reconstruct(video) -> (B, T, C, H, W)`` probabilities.
        loader: yields batch dicts with a ``video`` entry (or bare video tensors).
        device: where to run (``"cpu"``, ``"cuda"``, ``"mps"``, ``"auto"`` or a ``torch.device``).
        max_batches: stop after this many batches (None: the whole loader).
        progress: show a tqdm bar over batches.

    Returns:
        The floats of :data:`~evaluation.metric_names.RECONSTRUCTION_KEYS` (``mse``, ``mse_per_frame``, ``mae_per_frame``,
        ``bce_per_frame``, ``psnr``, ``ssim``, ``ssim_uniform``, ``temporal_consistency``) and
        ``num_videos`` (int).

    Raises:
        ValueError: the loader yields no batch.
    """
    device = resolve_device(device)
    if isinstance(model, nn.Module):
        model.to(device)
    totals = dict.fromkeys(RECONSTRUCTION_KEYS, 0.0)
    num_videos = 0
    with eval_mode(model), torch.no_grad():
        for batch in _batches(loader, max_batches, progress, "reconstruction metrics"):
            video = video_of(batch).to(device=device, dtype=torch.float32)
            recon = model.reconstruct(video)
            for name, values in video_metrics(recon, video).items():
                totals[name] += values.sum().item()
            num_videos += video.shape[0]
    if num_videos == 0:
        raise ValueError("the loader yielded no videos")
    results: dict[str, Any] = {name: total / num_videos for name, total in totals.items()}
    results["num_videos"] = num_videos
    return results


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (0, 0 for an object without parameters)."""
    parameters = list(model.parameters()) if isinstance(model, nn.Module) else []
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return trainable, sum(p.numel() for p in parameters)


def median_time_ms(
    function: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5
) -> float:
    """Median wall time of ``function()`` in milliseconds, after ``warmup`` untimed calls.

    Each timed call is bracketed by :func:`utils.devices.synchronize`, so queued CUDA/MPS work is counted.
    """
    if repeats <= 0 or warmup < 0:
        raise ValueError(f"need repeats > 0 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def compare_models(
    models: Mapping[str, Any],
    loader: Iterable,
    device: str | torch.device,
    max_batches: int | None = None,
    progress: bool = True,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Reconstruction metrics, size and speed of several models on the same data.

    What is timed, for each model on ``device`` in eval mode without gradients, on the first batch of
    ``loader`` (its ``B`` videos of ``T`` frames; both are reported):

    * ``forward_time_ms``: one ``model.reconstruct(video)`` of the batch (encode, then decode the
      posterior means: inference);
    * ``generation_time_ms``: one ``model.sample(B, T, generator)`` (the prior, then the decoder).

    Each is the median of ``repeats`` timed calls after ``warmup`` untimed ones, synchronised on
    CUDA/MPS; data loading and the host-device copy of the batch are not timed.

    Args:
        models: display name -> model.
        loader: the evaluation loader (batch dicts or bare videos).
        device: where to run.
        max_batches: batches of ``loader`` for the reconstruction metrics (None: all).
        progress: show a tqdm bar over batches.
        warmup: untimed calls before timing.
        repeats: timed calls; their median is reported.
        seed: seed of the generator passed to ``sample``.

    Returns:
        Name -> the keys of :func:`reconstruction_metrics` plus ``trainable_parameters``,
        ``total_parameters``, ``forward_time_ms``, ``generation_time_ms``, ``timed_batch_size`` and
        ``timed_num_frames``.
    """
    device = resolve_device(device)
    first = next(iter(loader), None)
    if first is None:
        raise ValueError("the loader yielded no videos")
    timing_video = video_of(first).to(device=device, dtype=torch.float32)
    batch_size, num_frames = timing_video.shape[:2]
    results = {}
    for name, model in models.items():
        metrics = reconstruction_metrics(model, loader, device, max_batches=max_batches, progress=progress)
        trainable, total = count_parameters(model)
        generator = torch.Generator(device=device)
        with eval_mode(model), torch.no_grad():
            forward_ms = median_time_ms(lambda m=model: m.reconstruct(timing_video), device, warmup, repeats)
            generator.manual_seed(seed)
            generation_ms = median_time_ms(
                lambda m=model, g=generator: m.sample(batch_size, num_frames, generator=g),
                device, warmup, repeats,
            )
        results[name] = {
            **metrics,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "forward_time_ms": forward_ms,
            "generation_time_ms": generation_ms,
            "timed_batch_size": int(batch_size),
            "timed_num_frames": int(num_frames),
        }
    return results

