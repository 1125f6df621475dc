"""Trained judges that read what a (generated) Moving MNIST video shows: which digits, moving where.

Two small networks, trained once per data configuration on real videos with their ground-truth factors
and cached, read any video of that configuration:

* the **motion judge** finds the digits. A fully convolutional *centre detector* turns every frame into a
  heatmap of digit-box centres (stride 2; target: a Gaussian bump at each digit's centre, so the training
  loss is permutation-invariant by construction). The peaks are refined to sub-pixel precision (a
  parabola through the log-heat) and a tracker (:func:`evaluation.judges.tracking.track_digits`) links the ``D`` digits through
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
(:func:`evaluation.judges.order_free.trajectory_error`).

Both train on fresh videos of the TRAIN digit pool, with mild blur, noise and contrast augmentation so
that they also read blurry, dim generated videos, and their accuracy is measured on real videos of the
TEST digit pool (digit images they never saw): :mod:`evaluation.judges.training`. The accuracy travels
with the judges (``Judges.accuracy``) so that every judged number can be reported beside the judge's own
error.

This file holds the reader: the hyper-parameters, the two networks and :class:`Judges`; the cached
access (:func:`~evaluation.judges.cache.get_judges`) is :mod:`evaluation.judges.cache`. Scores are order-free (:mod:`evaluation.judges.order_free`):
digits match as multisets and trajectories by the best assignment of whole trajectories (minimum over
the ``D!`` permutations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data import MovingMNISTConfig
from evaluation.judges.order_free import NUM_CLASSES, digit_accuracy, trajectory_error
from evaluation.judges.tracking import cells_to_pixels, centre_offset, extract_crops, find_peaks, track_digits

FORMAT_VERSION = 1  # bump when the networks, the checkpoint or the reading (the stored accuracy) change


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


def overlap_weights(trajectory: Tensor, digit_size: int) -> Tensor:
    """Per frame, how much a tracked digit's reading counts: ``clamp(distance / s, 0.05, 1)^2`` for the
    distance to the nearest other digit and digit size ``s``, normalised over frames; ``(B, T, D)``."""
    batch, frames, num_digits, _ = trajectory.shape
    if num_digits > 1:
        gaps = (trajectory[:, :, :, None] - trajectory[:, :, None]).norm(dim=-1)  # (B, T, D, D)
        gaps = gaps + torch.eye(num_digits, device=gaps.device) * 1e6
        weights = (gaps.amin(dim=-1) / digit_size).clamp(0.05, 1.0) ** 2  # (B, T, D)
    else:
        weights = trajectory.new_ones(batch, frames, num_digits)
    return weights / weights.sum(dim=1, keepdim=True)


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

    def embed(self, crops: Tensor) -> Tensor:
        """The hidden layer before the class logits, ``(N, 128)``: the judge's features of a digit (the role
        Inception's pool features play in FID). ``head[3:]`` of it gives the logits (in eval mode)."""
        return self.head[:3](self.features(crops))


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

    @classmethod
    def initialised(
        cls, video_config: MovingMNISTConfig, config: JudgeConfig, seed: int, device: torch.device
    ) -> Judges:
        """Untrained judges on ``device`` with initial weights drawn from ``seed`` (the caller's global
        random state untouched), ready for :func:`evaluation.judges.training.train_judges`."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(video_config, config).to(device)

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
        trajectory, _, log_probs = self._classify_tracked(video, trajectory)
        weights = overlap_weights(trajectory, self.video_config.digit_size)
        return (log_probs * weights[..., None]).sum(dim=1)

    def _classify_tracked(self, video: Tensor, trajectory: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """The classifier on every tracked digit of every frame: ``(trajectory (B, T, D, 2), embedding
        (B, T, D, E), log_probs (B, T, D, 10))``; the trajectory is read when not given."""
        video = self._prepare(video, 1)
        if trajectory is None:
            trajectory = self.read_motion(video)
        batch, frames, num_digits, _ = trajectory.shape
        crops = extract_crops(video.flatten(0, 1), trajectory.flatten(0, 1), self.video_config.digit_size)
        was_training = self.training
        self.eval()
        flat = crops.flatten(0, 1)[:, None]  # (B*T*D, 1, s, s)
        embedding = torch.cat([self.classifier.embed(chunk) for chunk in flat.split(2048)])  # (B*T*D, E)
        log_probs = F.log_softmax(self.classifier.head[3:](embedding), dim=1)
        self.train(was_training)
        return (trajectory, embedding.view(batch, frames, num_digits, -1),
                log_probs.view(batch, frames, num_digits, NUM_CLASSES))

    @torch.no_grad()
    def describe(self, video: Tensor) -> dict[str, Tensor]:
        """Everything the generation metrics (:mod:`evaluation.generation`) read, with one detector pass.

        Returns:
            ``trajectory (B, T, D, 2)``; ``log_probs (B, D, 10)`` pooled over frames as
            :meth:`read_content_log_probs`; ``frame_labels (B, T, D)``: each frame's own reading, sorted;
            ``embedding (B, 128)``: the classifier's hidden features of each tracked digit, pooled over
            frames with the same weights, then averaged over the digits (order-free).
        """
        trajectory, embedding, log_probs = self._classify_tracked(video, None)
        weights = overlap_weights(trajectory, self.video_config.digit_size)[..., None]  # (B, T, D, 1)
        return {
            "trajectory": trajectory,
            "log_probs": (log_probs * weights).sum(dim=1),
            "frame_labels": log_probs.argmax(dim=-1).sort(dim=-1).values,
            "embedding": (embedding * weights).sum(dim=1).mean(dim=1),
        }

    @torch.no_grad()
    def read_content(self, video: Tensor) -> Tensor:
        """The digits a video shows: sorted labels ``(B, D)`` (a multiset: order carries no meaning).

        Args:
            video: ``(B, T, 1, H, W)`` in [0, 1], ``T >= 1``.
        """
        return self.read_content_log_probs(video).argmax(dim=-1).sort(dim=1).values

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
