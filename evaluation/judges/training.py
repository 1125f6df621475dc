"""How the judges (:mod:`evaluation.judges.networks`) learn to read: augmented training frames, a training loop, and
the measurement of their accuracy.

Both judges train on fresh videos of the TRAIN digit pool, with mild blur, noise and contrast augmentation
so that they also read blurry, dim generated videos: the motion judge's centre detector against Gaussian
bumps at the digits' centres, the content judge's classifier on jittered crops at the true positions. Each
runs a plain AdamW loop with the shared cosine schedule (:func:`utils.schedules.cosine_schedule`, linear
warm-up over a twentieth of the steps). Their accuracy is then measured on real videos of the TEST digit
pool (digit images they never saw) with the order-free scores of :mod:`evaluation.judges.order_free`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from data import MovingMNIST
from data.mnist import DigitSet, load_digits
from evaluation.judges.networks import JudgeConfig, Judges
from evaluation.judges.tracking import centre_heatmap, extract_crops
from utils.schedules import cosine_schedule

# ----------------------------------------------------------------------------------------------------
# Training frames


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


# ----------------------------------------------------------------------------------------------------
# The training loop


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
            group["lr"] = cosine_schedule(step, steps, max(1, steps // 20), config.learning_rate)
        loss = loss_of_batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    network.eval()
    return done, time.perf_counter() - began


# ----------------------------------------------------------------------------------------------------
# Training both judges


def train_judges(
    judges: Judges,
    digits: DigitSet | None = None,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = 1,
) -> Judges:
    """Train both judges on fresh TRAIN-pool videos and measure them on TEST-pool videos (no caching).

    Args:
        judges: untrained judges (:meth:`Judges.initialised`), on the device to train on; their
            ``video_config`` sets the videos, their ``config`` the hyper-parameters and budget.
        digits: the digit source (the embedded digits when None).
        seed: seed of the training videos, the augmentation, the dropout masks and the test videos.
        progress: show tqdm bars.
        num_threads: torch CPU threads while training and measuring (restored after); None leaves them
            alone. One by default: on 2 cores, 2 threads train 1.6x faster on an idle machine but 3-10x
            slower when another process keeps the cores busy.

    Returns:
        ``judges``, trained (eval mode), with ``accuracy`` filled in.
    """
    with _torch_threads(num_threads):
        return _train_judges(judges, digits, seed, progress)


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


def _train_judges(judges: Judges, digits: DigitSet | None, seed: int, progress: bool) -> Judges:
    video_config, config = judges.video_config, judges.config
    device = next(judges.parameters()).device
    digits = digits if digits is not None else load_digits()
    clip_config = replace(video_config, num_frames=config.clip_frames)
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


# ----------------------------------------------------------------------------------------------------
# Accuracy


@torch.no_grad()
def measure_judges(judges: Judges, digits: DigitSet, seed: int = 0, num_videos: int | None = None) -> dict:
    """The judges' accuracy on real TEST-pool videos of their configuration (digit images never trained on).

    Returns:
        ``content_digit_accuracy`` (mean :func:`evaluation.judges.order_free.digit_accuracy`),
        ``content_video_accuracy`` (share of videos with every digit right), ``motion_trajectory_error_px``
        (mean :func:`evaluation.judges.order_free.trajectory_error`), ``motion_trajectory_error_px_median`` and
        ``num_test_videos``.
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


__all__ = ["measure_judges", "train_judges"]
