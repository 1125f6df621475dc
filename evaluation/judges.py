"""Trained judges that read what a (generated) Moving MNIST video shows: which digits, moving where.

Two small networks, trained once per data configuration on real videos with their ground-truth factors
and cached, read any video of that configuration:

* the **motion judge** finds the digits. A fully convolutional *centre detector* turns every frame into a
  heatmap of digit-box centres (stride 2; target: a Gaussian bump at each digit's centre, so the training
  loss is permutation-invariant by construction). The peaks are refined to sub-pixel precision (a
  parabola through the log-heat) and a tracker (:func:`evaluation.tracking.track_digits`) links the ``D`` digits through
  the frames with a constant-velocity model that reflects off the walls, coasting or sharing a peak
  while digits overlap. Output: ``(B, T, D, 2)`` top-left corners ``(x, y)`` in pixels, like the
  data's ``trajectory``; the order of the ``D`` digits is arbitrary.
* the **content judge** classifies each tracked digit. A small CNN reads the ``digit_size`` crop at the
  digit's position in every frame; each digit's class is the argmax of its log-probabilities averaged
  over frames, weighted towards frames where it does not overlap another digit. Output: the sorted
  labels ``(B, D)`` (a multiset) or the per-class counts ``(B, 10)``. It reads where the motion judge
  points, so a digit the motion judge loses is also misread.

Why a detector and a tracker rather than a network that regresses ``D`` ordered trajectories with a
loss minimised over the ``D!`` assignments: a heatmap gets dense supervision from every pixel, so it
localises to about a pixel after a minute of CPU training, while a slot regressor must also learn a
consistent digit order, which it does slowly. The ``D!`` assignment is still how a reading is scored
(:func:`trajectory_error`).

Both train on fresh videos of the TRAIN digit pool, with mild blur, noise and contrast augmentation so
that they also read blurry, dim generated videos, and their accuracy is measured on real videos of the
TEST digit pool (digit images they never saw). The accuracy travels with the judges
(``Judges.accuracy``) so that every judged number can be reported beside the judge's own error.

Scores are order-free: :func:`digit_accuracy` matches digits as multisets and :func:`trajectory_error`
takes the best assignment of whole trajectories (minimum over the ``D!`` permutations).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from data import MovingMNIST, MovingMNISTConfig, mnist
from data.mnist import DigitSet, load_digits
from evaluation.tracking import (
    cells_to_pixels,
    centre_heatmap,
    centre_offset,
    extract_crops,
    find_peaks,
    track_digits,
)
from utils.atomic import atomic_torch_save
from utils.devices import resolve_device

NUM_CLASSES = 10
_FORMAT_VERSION = 1  # bump when the networks, the checkpoint or the reading (the stored accuracy) change


# ----------------------------------------------------------------------------------------------------
# Order-free scores (pure functions)


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
    permutations = torch.tensor(list(itertools.permutations(range(num_digits))), device=pred.device)
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


# ----------------------------------------------------------------------------------------------------
# Hyper-parameters


@dataclass(frozen=True)
class JudgeConfig:
    """Hyper-parameters and training budget of the judges (all part of the cache key).

    Attributes:
        detector_width: channels of the centre detector's first stage (the second has twice as many).
        classifier_width: channels of the digit classifier's first stage (then 2x and 4x).
        detector_steps: optimisation steps of the detector.
        classifier_steps: optimisation steps of the classifier.
        batch_videos: fresh training videos per step.
        clip_frames: frames rendered per training video (frames of one video are much alike).
        learning_rate: peak AdamW learning rate (linear warm-up, cosine decay).
        heatmap_sigma: standard deviation of the centre bumps, in heatmap cells (2 pixels).
        crop_jitter: training crops are shifted by up to this many pixels, so the classifier tolerates
            tracking error.
        augment: train on blurred / noisy / dimmed frames as well (robust reading of generated videos).
        max_seconds: optional wall-clock cap on training (split between the two judges in proportion to
            their steps); training then depends on the machine's speed. None: steps only.
        test_videos: real test-pool videos on which the accuracy is measured.
    """

    detector_width: int = 16
    classifier_width: int = 16
    detector_steps: int = 500
    classifier_steps: int = 800
    batch_videos: int = 32
    clip_frames: int = 2
    learning_rate: float = 3e-3
    heatmap_sigma: float = 0.75
    crop_jitter: int = 2
    augment: bool = True
    max_seconds: float | None = None
    test_videos: int = 500

    def __post_init__(self) -> None:
        for name in ("detector_width", "classifier_width", "batch_videos", "clip_frames", "test_videos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("detector_steps", "classifier_steps", "crop_jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.clip_frames < 2:
            raise ValueError(f"clip_frames must be at least 2, got {self.clip_frames}")
        if not (self.learning_rate > 0 and self.heatmap_sigma > 0):
            raise ValueError("learning_rate and heatmap_sigma must be positive")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive or None, got {self.max_seconds!r}")


# ----------------------------------------------------------------------------------------------------
# Networks


def _conv(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class CentreDetector(nn.Module):
    """Frames ``(N, 1, H, W)`` -> logits ``(N, 1, H/2, W/2)`` of a heatmap of digit-box centres.

    Two stride-2 stages, dilated convolutions at stride 4 (receptive field wider than a digit), and an
    upsampled path added to the stride-2 features.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fine = nn.Sequential(_conv(1, width, stride=2), _conv(width, width))
        self.coarse = nn.Sequential(
            _conv(width, 2 * width, stride=2), _conv(2 * width, 2 * width, dilation=2),
            _conv(2 * width, 2 * width, dilation=4),
        )
        self.merge = nn.Conv2d(2 * width, width, 1)
        self.head = nn.Sequential(_conv(width, width), nn.Conv2d(width, 1, 1))
        nn.init.constant_(self.head[-1].bias, -4.0)  # start near "no centre anywhere"

    def forward(self, frames: Tensor) -> Tensor:
        fine = self.fine(frames)  # (N, w, H/2, W/2)
        coarse = self.coarse(fine)  # (N, 2w, H/4, W/4)
        up = F.interpolate(self.merge(coarse), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(fine + up)


class DigitClassifier(nn.Module):
    """Crops ``(N, 1, s, s)`` of one digit (plus whatever overlaps it) -> class logits ``(N, 10)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(1, width), nn.MaxPool2d(2), _conv(width, 2 * width), nn.MaxPool2d(2),
            _conv(2 * width, 4 * width), nn.AdaptiveAvgPool2d(3),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * width * 9, 128), nn.ReLU(inplace=True), nn.Dropout(0.3),
            nn.Linear(128, NUM_CLASSES),
        )

    def forward(self, crops: Tensor) -> Tensor:
        return self.head(self.features(crops))


# ----------------------------------------------------------------------------------------------------
# The judges


class Judges(nn.Module):
    """The trained content and motion judges of one video configuration.

    Attributes:
        video_config: the configuration the judges were trained for (image size, digit size, D).
        config: the judges' hyper-parameters.
        accuracy: the judges' own accuracy on real test-pool videos (see :func:`get_judges`).
    """

    def __init__(
        self, video_config: MovingMNISTConfig, config: JudgeConfig | None = None, accuracy: dict | None = None
    ) -> None:
        super().__init__()
        self.video_config = video_config
        self.config = config if config is not None else JudgeConfig()
        self.detector = CentreDetector(self.config.detector_width)
        self.classifier = DigitClassifier(self.config.classifier_width)
        self.accuracy: dict[str, Any] = dict(accuracy or {})

    # -- input checks ---------------------------------------------------------------------------------
    def _prepare(self, video: Tensor, min_frames: int) -> Tensor:
        size = self.video_config.image_size
        if video.ndim != 5 or tuple(video.shape[2:]) != (1, size, size) or video.shape[1] < min_frames:
            raise ValueError(
                f"expected video of shape (B, T, 1, {size}, {size}) with T >= {min_frames}, "
                f"got {tuple(video.shape)}"
            )
        parameter = next(self.parameters())
        return video.to(device=parameter.device, dtype=parameter.dtype)

    # -- reading --------------------------------------------------------------------------------------
    @torch.no_grad()
    def heatmaps(self, video: Tensor) -> Tensor:
        """Centre heatmaps ``(B, T, H/2, W/2)`` in (0, 1), in chunks of frames to bound memory."""
        video = self._prepare(video, 1)
        was_training = self.training
        self.eval()
        frames = video.flatten(0, 1)  # (B*T, 1, H, W)
        heat = torch.cat([torch.sigmoid(self.detector(chunk)) for chunk in frames.split(512)])
        self.train(was_training)
        return heat.view(*video.shape[:2], *heat.shape[-2:])

    @torch.no_grad()
    def read_motion(self, video: Tensor) -> Tensor:
        """Each digit's trajectory: ``(B, T, D, 2)`` top-left corners ``(x, y)`` in pixels, any digit order.

        Args:
            video: ``(B, T, 1, H, W)`` in [0, 1], ``T >= 1``, the judges' image size.
        """
        video = self._prepare(video, 1)
        cfg = self.video_config
        heat = self.heatmaps(video)  # (B, T, h, w)
        batch, frames = heat.shape[:2]
        num_peaks = cfg.num_digits + 2
        cells, scores = find_peaks(heat.flatten(0, 1), num_peaks)
        centres = cells_to_pixels(cells).view(batch, frames, num_peaks, 2)
        offset = centre_offset(cfg.digit_size)
        low, high = offset, cfg.image_size - 1 - offset
        # Coasting beats a detection farther than a quarter digit or a frame's travel (plus slack) away.
        gate = max(0.25 * cfg.digit_size, cfg.max_speed + 2.0)
        tracks = track_digits(centres, scores.view(batch, frames, num_peaks), cfg.num_digits, low, high, gate)
        return tracks - offset

    @torch.no_grad()
    def read_content_log_probs(self, video: Tensor, trajectory: Tensor | None = None) -> Tensor:
        """Per tracked digit, class log-probabilities ``(B, D, 10)`` pooled over frames.

        Frames where the digit overlaps another weigh less: weight ``clamp(distance / s, 0.05, 1)^2`` for
        the distance to the nearest other digit and digit size ``s``.
        """
        video = self._prepare(video, 1)
        cfg = self.video_config
        if trajectory is None:
            trajectory = self.read_motion(video)
        batch, frames, num_digits, _ = trajectory.shape
        crops = extract_crops(video.flatten(0, 1), trajectory.flatten(0, 1), cfg.digit_size)  # (B*T, D, s, s)
        was_training = self.training
        self.eval()
        flat = crops.flatten(0, 1)[:, None]
        log_probs = torch.cat([F.log_softmax(self.classifier(chunk), dim=1) for chunk in flat.split(2048)])
        self.train(was_training)
        log_probs = log_probs.view(batch, frames, num_digits, NUM_CLASSES)
        if num_digits > 1:
            gaps = (trajectory[:, :, :, None] - trajectory[:, :, None]).norm(dim=-1)  # (B, T, D, D)
            gaps = gaps + torch.eye(num_digits, device=gaps.device) * 1e6
            weights = (gaps.amin(dim=-1) / cfg.digit_size).clamp(0.05, 1.0) ** 2  # (B, T, D)
        else:
            weights = log_probs.new_ones(batch, frames, num_digits)
        weights = weights / weights.sum(dim=1, keepdim=True)
        return (log_probs * weights[..., None]).sum(dim=1)

    @torch.no_grad()
    def read_content(self, video: Tensor) -> Tensor:
        """The digits a video shows: sorted labels ``(B, D)`` (a multiset: order carries no meaning).

        Args:
            video: ``(B, T, 1, H, W)`` in [0, 1], ``T >= 1``.
        """
        return self.read_content_log_probs(video).argmax(dim=-1).sort(dim=1).values

    @torch.no_grad()
    def read_counts(self, video: Tensor) -> Tensor:
        """The digits a video shows as per-class counts ``(B, 10)`` summing to ``D``."""
        return label_counts(self.read_content(video))

    @torch.no_grad()
    def read(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Both readings with one detector pass: ``(labels (B, D) sorted, trajectory (B, T, D, 2))``."""
        trajectory = self.read_motion(video)
        labels = self.read_content_log_probs(video, trajectory).argmax(dim=-1).sort(dim=1).values
        return labels, trajectory

    def evaluate(self, video: Tensor, labels: Tensor, trajectory: Tensor) -> dict[str, Tensor]:
        """Per-video scores of the readings against the truth: ``digit_accuracy``, ``trajectory_error``."""
        read_labels, read_trajectory = self.read(video)
        return {
            "digit_accuracy": digit_accuracy(read_labels, labels),
            "trajectory_error": trajectory_error(read_trajectory, trajectory),
        }


# ----------------------------------------------------------------------------------------------------
# Training


def _separable_blur(frames: Tensor, taps: Tensor) -> Tensor:
    """Blur ``(N, 1, H, W)`` frames with per-frame 1-D kernels ``(N, k)`` along both axes (zero padding).

    Written as a sum of shifted copies: for one-channel maps this is far faster on CPUs than ``conv2d``.
    """
    radius = taps.shape[1] // 2
    height, width = frames.shape[-2:]
    weights = taps.t().reshape(taps.shape[1], -1, 1, 1, 1)  # (k, N, 1, 1, 1)
    padded = F.pad(frames, (radius, radius, 0, 0))
    rows = sum(weights[k] * padded[..., k : k + width] for k in range(taps.shape[1]))
    padded = F.pad(rows, (0, 0, radius, radius))
    return sum(weights[k] * padded[..., k : k + height, :] for k in range(taps.shape[1]))


def _augment(frames: Tensor, generator: torch.Generator) -> Tensor:
    """Mild degradations like those of generated videos: Gaussian blur, dimming, noise.

    Half the frames are left clean; each other frame gets a Gaussian blur of sigma ~ U(0.3, 1.5) px
    (7 taps), a brightness scale ~ U(0.6, 1) and additive Gaussian noise of std ~ U(0, 0.08), and is
    clamped to [0, 1].

    Args:
        frames: ``(N, 1, H, W)``.
        generator: source of every random choice.
    """
    count = frames.shape[0]
    device, dtype = frames.device, frames.dtype

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(count, generator=generator, device=device, dtype=dtype)

    offsets = torch.arange(-3, 4, device=device, dtype=dtype)
    taps = torch.exp(-0.5 * (offsets[None] / uniform(0.3, 1.5)[:, None]) ** 2)
    blurred = _separable_blur(frames, taps / taps.sum(dim=1, keepdim=True))
    noise = torch.randn(frames.shape, generator=generator, device=device, dtype=dtype)
    degraded = blurred * uniform(0.6, 1.0).view(-1, 1, 1, 1) + noise * uniform(0.0, 0.08).view(-1, 1, 1, 1)
    degrade = torch.rand(count, generator=generator, device=device) < 0.5
    return torch.where(degrade.view(-1, 1, 1, 1), degraded.clamp(0.0, 1.0), frames)


def _schedule(step: int, total: int, peak: float) -> float:
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _training_frames(
    dataset: MovingMNIST, step: int, config: JudgeConfig, device: torch.device, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """A batch of fresh training frames ``(N, 1, H, W)`` with corners ``(N, D, 2)`` and labels ``(N, D)``."""
    start = step * config.batch_videos
    batch = dataset.generate(range(start, start + config.batch_videos), device=device)
    frames = batch["video"].flatten(0, 1)  # (B*T, 1, H, W)
    corners = batch["trajectory"].to(device).flatten(0, 1)  # (B*T, D, 2)
    labels = batch["labels"].to(device).repeat_interleave(batch["video"].shape[1], dim=0)  # (B*T, D)
    if config.augment:
        frames = _augment(frames, generator)
    return frames, corners, labels


def _train(
    network: nn.Module,
    loss_of_batch,
    steps: int,
    config: JudgeConfig,
    seconds: float | None,
    progress: bool,
    desc: str,
) -> tuple[int, float]:
    """A plain AdamW loop; returns ``(steps done, seconds)``."""
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    network.train()
    began = time.perf_counter()
    done = 0
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if seconds is not None and time.perf_counter() - began > seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step, steps, config.learning_rate)
        loss = loss_of_batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    network.eval()
    return done, time.perf_counter() - began


def train_judges(
    video_config: MovingMNISTConfig,
    device: str | torch.device = "cpu",
    digits: DigitSet | None = None,
    config: JudgeConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = 1,
) -> Judges:
    """Train both judges on fresh TRAIN-pool videos and measure them on TEST-pool videos (no caching).

    Args:
        video_config: the videos to read (image size, digit size, number of digits, speeds).
        device: where to train.
        digits: the digit source (the embedded digits when None).
        config: hyper-parameters and budget.
        seed: seed of the training videos, the initial weights, the augmentation and the test videos.
        progress: show tqdm bars.
        num_threads: torch CPU threads while training and measuring (restored after); None leaves them
            alone. One by default: on 2 cores, 2 threads train 1.6x faster on an idle machine but 3-10x
            slower when another process keeps the cores busy.

    Returns:
        The trained :class:`Judges` (eval mode) with ``accuracy`` filled in.
    """
    with _torch_threads(num_threads):
        return _train_judges(video_config, resolve_device(device), digits, config, seed, progress)


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` torch CPU threads (small convolutions on a busy machine run far
    faster on one thread than on several), then restore the previous count."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_judges(
    video_config: MovingMNISTConfig,
    device: torch.device,
    digits: DigitSet | None,
    config: JudgeConfig | None,
    seed: int,
    progress: bool,
) -> Judges:
    config = config if config is not None else JudgeConfig()
    digits = digits if digits is not None else load_digits()
    clip_config = replace(video_config, num_frames=config.clip_frames)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, caller's global RNG untouched
        torch.manual_seed(seed)
        judges = Judges(video_config, config).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    total_steps = max(1, config.detector_steps + config.classifier_steps)
    share = None if config.max_seconds is None else config.max_seconds / total_steps
    size, sigma = video_config.image_size, config.heatmap_sigma

    detector_data = MovingMNIST("train", 1, clip_config, seed=seed, digits=digits)

    def detector_loss(step: int) -> Tensor:
        frames, corners, _ = _training_frames(detector_data, step, config, device, generator)
        target = centre_heatmap(corners, video_config.digit_size, size, sigma)
        logits = judges.detector(frames)
        # Cells near a centre weigh more: otherwise the empty background dominates the mean.
        weights = 1.0 + 20.0 * target
        return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weights).mean()

    classifier_data = MovingMNIST("train", 1, clip_config, seed=seed + 1, digits=digits)
    jitter = config.crop_jitter

    def classifier_loss(step: int) -> Tensor:
        frames, corners, labels = _training_frames(classifier_data, step, config, device, generator)
        shift = torch.randint(-jitter, jitter + 1, corners.shape, generator=generator, device=device)
        crops = extract_crops(frames, corners + shift, video_config.digit_size)  # (N, D, s, s)
        logits = judges.classifier(crops.flatten(0, 1)[:, None])
        return F.cross_entropy(logits, labels.flatten(), label_smoothing=0.05)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout masks
        detector_steps, detector_seconds = _train(
            judges.detector, detector_loss, config.detector_steps, config,
            None if share is None else share * config.detector_steps, progress, "motion judge",
        )
        classifier_steps, classifier_seconds = _train(
            judges.classifier, classifier_loss, config.classifier_steps, config,
            None if share is None else share * config.classifier_steps, progress, "content judge",
        )
    judges.eval()
    judges.accuracy = {
        **measure_judges(judges, digits, seed=seed),
        "detector_steps": detector_steps,
        "classifier_steps": classifier_steps,
        "train_seconds": detector_seconds + classifier_seconds,
    }
    return judges


@torch.no_grad()
def measure_judges(judges: Judges, digits: DigitSet, seed: int = 0, num_videos: int | None = None) -> dict:
    """The judges' accuracy on real TEST-pool videos of their configuration (digit images never trained on).

    Returns:
        ``content_digit_accuracy`` (mean :func:`digit_accuracy`), ``content_video_accuracy`` (share of
        videos with every digit right), ``motion_trajectory_error_px`` (mean :func:`trajectory_error`),
        ``motion_trajectory_error_px_median`` and ``num_test_videos``.
    """
    num_videos = num_videos if num_videos is not None else judges.config.test_videos
    dataset = MovingMNIST("test", num_videos, judges.video_config, seed=seed, digits=digits)
    device = next(judges.parameters()).device
    accuracies, errors = [], []
    for start in range(0, num_videos, 64):
        batch = dataset.generate(range(start, min(num_videos, start + 64)), device=device)
        scores = judges.evaluate(batch["video"], batch["labels"], batch["trajectory"])
        accuracies.append(scores["digit_accuracy"].cpu())
        errors.append(scores["trajectory_error"].cpu())
    accuracy, error = torch.cat(accuracies), torch.cat(errors)
    return {
        "content_digit_accuracy": accuracy.mean().item(),
        "content_video_accuracy": (accuracy == 1).float().mean().item(),
        "motion_trajectory_error_px": error.mean().item(),
        "motion_trajectory_error_px_median": error.median().item(),
        "num_test_videos": num_videos,
    }


# ----------------------------------------------------------------------------------------------------
# Cached access


def judges_key(video_config: MovingMNISTConfig, digits: DigitSet, config: JudgeConfig, seed: int) -> str:
    """Hash of everything the trained judges depend on: video config, digit source, hyper-parameters, seed."""
    description = {
        "format": _FORMAT_VERSION,
        "video": asdict(video_config),
        "digits": {"source": digits.source, "count": int(len(digits.labels))},
        "judges": asdict(config),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]


def get_judges(
    video_config: MovingMNISTConfig,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    mnist_root: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    config: JudgeConfig | None = None,
    digits: DigitSet | None = None,
    retrain: bool = False,
    num_threads: int | None = 1,
    **overrides: Any,
) -> Judges:
    """The judges of a video configuration: loaded from the cache, or trained once and cached.

    The cache file ``<cache_dir>/judges_<key>.pt`` (default ``cache_dir``: ``data.mnist.cache_dir() /
    "judges"``) holds only tensors and plain values and is read with ``torch.load(weights_only=True)``;
    it is written atomically (a temporary file, then ``os.replace``). The key hashes the video config,
    the digit source, the judge hyper-parameters and the seed (:func:`judges_key`).

    Args:
        video_config: the videos to read; ``num_frames`` only sets the test videos' length (the judges
            read any number of frames).
        device: where to train and run the judges.
        cache_dir: folder of the cached judges.
        mnist_root: folder of the official MNIST files; None uses the embedded digits.
        seed: training and test seed.
        progress: show tqdm bars while training.
        config: hyper-parameters and training budget (:class:`JudgeConfig`).
        digits: the digit set itself (e.g. ``loader.dataset.digits``); replaces ``mnist_root``.
        retrain: train even when a cached file exists (and overwrite it).
        num_threads: torch CPU threads while training (see :func:`train_judges`; restored after); None
            leaves them alone. Not part of the key: it changes the speed, not (beyond rounding) the result.
        **overrides: fields of :class:`JudgeConfig` (e.g. ``detector_steps=300``, ``max_seconds=180``).

    Returns:
        :class:`Judges` in eval mode on ``device``, with ``accuracy``: ``content_digit_accuracy``,
        ``content_video_accuracy``, ``motion_trajectory_error_px``, ``motion_trajectory_error_px_median``,
        ``num_test_videos``, ``detector_steps``, ``classifier_steps``, ``train_seconds`` and ``cached``
        (whether this call loaded it).
    """
    known = {field.name for field in fields(JudgeConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown judge option(s) {unknown}; valid options are {sorted(known)}")
    config = replace(config if config is not None else JudgeConfig(), **overrides)
    device = resolve_device(device)
    digits = digits if digits is not None else load_digits(mnist_root)
    folder = Path(cache_dir) if cache_dir is not None else mnist.cache_dir() / "judges"
    path = folder / f"judges_{judges_key(video_config, digits, config, seed)}.pt"
    if path.exists() and not retrain:
        try:
            payload = torch.load(path, map_location=device, weights_only=True)
            judges = Judges(video_config, config, accuracy=payload["accuracy"])
            judges.detector.load_state_dict(payload["detector"])
            judges.classifier.load_state_dict(payload["classifier"])
            judges.to(device).eval()
            judges.accuracy["cached"] = True
            return judges
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError):
            pass  # unreadable or stale cache: train again and overwrite it
    judges = train_judges(video_config, device, digits, config, seed, progress, num_threads)
    payload = {
        "detector": {name: tensor.cpu() for name, tensor in judges.detector.state_dict().items()},
        "classifier": {name: tensor.cpu() for name, tensor in judges.classifier.state_dict().items()},
        "accuracy": dict(judges.accuracy),
        "video_config": asdict(video_config),
        "judge_config": asdict(config),
    }
    atomic_torch_save(payload, path)
    judges.accuracy["cached"] = False
    return judges
