"""Reconstruction metrics of videos, one function each, and the loops that run them over a model and a loader
(``reconstruction_metrics``; ``compare_models`` adds the cost of :mod:`evaluation.reconstruction.cost`), comparable with
published Moving MNIST tables. The frame SSIM is computed in :mod:`evaluation.reconstruction.ssim`.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from data import video_of
from evaluation.metric_names import RECONSTRUCTION_KEYS
from evaluation.reconstruction.cost import count_parameters, median_time_ms
from evaluation.reconstruction.ssim import frame_ssim
from evaluation.reconstruction.tensor_checks import check_pair, pair_as
from utils.devices import resolve_device

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
    check_pair(pred, target)
    pred, target = pair_as(pred, target)
    return (pred - target).pow(2).flatten(2).mean(dim=2)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel mean squared error of each video: ``mean over frames and pixels of (pred - target)^2``.

    Returns:
        ``(B,)``.
    """
    return frame_mse(pred, target).mean(dim=1)


def frame_error_sums(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Squared and absolute error summed over each frame's pixels: ``sum_pixels (pred - target)^2`` and
    ``sum_pixels |pred - target|``, each ``(B, T)`` (OpenSTL's Moving MNIST "MSE" and "MAE" of one frame)."""
    check_pair(pred, target)
    pred, target = pair_as(pred, target)
    error = (pred - target).flatten(2)  # (B, T, C * H * W)
    return error.pow(2).sum(dim=2), error.abs().sum(dim=2)


def mse_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over a frame's pixels, averaged over frames (OpenSTL's Moving MNIST "MSE").

    ``mean_t sum_pixels (pred - target)^2``; equals ``mse * C * H * W``.

    Returns:
        ``(B,)``.
    """
    return frame_error_sums(pred, target)[0].mean(dim=1)


def mae_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute error summed over a frame's pixels, averaged over frames (OpenSTL's "MAE").

    ``mean_t sum_pixels |pred - target|``.

    Returns:
        ``(B,)``.
    """
    return frame_error_sums(pred, target)[1].mean(dim=1)


def bce_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy summed over a frame's pixels, averaged over frames (nats).

    ``mean_t sum_pixels -[target log(pred) + (1 - target) log(1 - pred)]``, with each log clamped at
    ``-100`` as :func:`torch.nn.functional.binary_cross_entropy` does (so a confident wrong pixel costs
    100 nats, not infinity). ``pred`` are probabilities (what ``reconstruct`` returns), not logits; it is
    the models' ``"bce"`` training loss per frame, evaluated at the posterior means.

    Returns:
        ``(B,)``.
    """
    check_pair(pred, target)
    pred, target = pair_as(pred, target)
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
    check_pair(pred, target, min_frames=2)
    pred, target = pair_as(pred, target)
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
    check_pair(pred, target, min_frames=2)
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

