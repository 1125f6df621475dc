"""The motion judge's geometry, sub-pixel peaks and tracker on synthetic cases (no training)."""

from __future__ import annotations

import torch

from data import MovingMNIST, MovingMNISTConfig, render_digits
from evaluation.judges.order_free import trajectory_error
from evaluation.judges.tracking import centre_heatmap, extract_crops, find_peaks, track_digits

VIDEO = MovingMNISTConfig(image_size=32, digit_size=14, num_digits=2, num_frames=6)


# ----------------------------------------------------------------------------------------------------
# Geometry, peaks and the tracker (no training)


def test_crops_at_the_true_corners_are_the_digits():
    dataset = MovingMNIST("test", 4, VIDEO, seed=2)
    batch = dataset.generate(range(4))
    single = render_digits(dataset.digit_images(batch["digit_ids"][:, :1]), batch["trajectory"][:, :, :1], 32)
    crops = extract_crops(single.flatten(0, 1), batch["trajectory"][:, :, :1].flatten(0, 1), 14)
    images = dataset.digit_images(batch["digit_ids"][:, 0]).float() / 255  # (B, s, s)
    assert torch.allclose(crops.view(4, 6, 14, 14), images[:, None].expand(4, 6, 14, 14))


def test_find_peaks_recovers_sub_cell_centres_of_gaussian_bumps():
    corners = torch.tensor([[[10.3, 20.8], [40.0, 7.6]]])  # (1, D, 2) pixels, 28-px digits, 64 canvas
    heat = centre_heatmap(corners, 28, 64, sigma=1.0)[:, 0] * 0.9
    cells, scores = find_peaks(heat, 3)
    found = cells[0, :2] * 2 + 0.5 - 13.5  # cells -> pixels -> corners
    order = found[:, 0].argsort()
    assert torch.allclose(found[order], corners[0], atol=1e-3)
    assert scores[0, :2].min() > 0.5 and scores[0, 2] < 0.1


def synthetic_detections(true: torch.Tensor, drop: list[tuple[int, int]], noise: float = 0.3):
    """Peaks ``(B, T, K, 2)`` from true positions, strongest first, with some detections missing."""
    generator = torch.Generator().manual_seed(0)
    batch, frames, digits, _ = true.shape
    peaks = torch.cat([true, torch.zeros(batch, frames, 2, 2)], dim=2)
    peaks = peaks + noise * torch.randn(peaks.shape, generator=generator)
    scores = torch.full((batch, frames, digits + 2), 0.01)
    scores[:, :, :digits] = 0.9
    for frame, digit in drop:
        scores[:, frame, digit] = 0.01
    return peaks, scores


def test_tracker_follows_crossing_digits_through_a_missed_detection():
    frames = 12
    time = torch.arange(frames, dtype=torch.float32)
    first = torch.stack([5 + 3 * time, 20 + 0 * time], dim=-1)  # moving right
    second = torch.stack([38 - 3 * time, 22 + 0 * time], dim=-1)  # moving left, crossing the first
    true = torch.stack([first, second], dim=1)[None]  # (1, T, 2, 2)
    # Near the crossing (frames 5-6) only one digit is detected.
    peaks, scores = synthetic_detections(true, drop=[(5, 1), (6, 0)])
    tracks = track_digits(peaks, scores, 2, low=0.0, high=50.0, gate=7.0)
    assert tracks.shape == (1, frames, 2, 2)
    assert trajectory_error(tracks, true).item() < 1.0


def test_tracker_follows_a_bounce_off_the_wall():
    frames = 10
    time = torch.arange(frames, dtype=torch.float32)
    x = 30 + 4 * time
    x = torch.where(x > 36, 72 - x, x)  # bounces off the wall at 36
    bouncing = torch.stack([x, 10 + time], dim=-1)
    true = torch.stack([bouncing, torch.stack([5 + 0 * time, 30 - time], dim=-1)], dim=1)  # (T, 2, 2)
    peaks, scores = synthetic_detections(true[None], drop=[(3, 0)])
    tracks = track_digits(peaks, scores, 2, low=0.0, high=36.0, gate=7.0)
    assert trajectory_error(tracks, true[None]).item() < 1.0


def test_tracker_keeps_three_digits_apart():
    frames = 8
    time = torch.arange(frames, dtype=torch.float32)[:, None]
    starts = torch.tensor([[5.0, 5.0], [30.0, 8.0], [12.0, 30.0]])
    velocities = torch.tensor([[2.0, 1.0], [-1.0, 2.0], [1.5, -2.0]])
    true = (starts[None] + velocities[None] * time[..., None])[None]  # (1, T, 3, 2)
    peaks, scores = synthetic_detections(true, drop=[(4, 2)])
    shuffled = peaks.clone()
    shuffled[:, :, :3] = peaks[:, :, [2, 0, 1]]  # detections come in no particular order
    tracks = track_digits(shuffled, scores[:, :, [2, 0, 1, 3, 4]], 3, low=0.0, high=50.0, gate=7.0)
    assert trajectory_error(tracks, true).item() < 1.0
