"""Judges: order-free scores on hand-made cases, the tracker on synthetic peaks, and tiny trained judges."""

from __future__ import annotations

import pytest
import torch

from data import MovingMNIST, MovingMNISTConfig, render_digits
from evaluation.judges import (
    JudgeConfig,
    Judges,
    align_trajectories,
    digit_accuracy,
    get_judges,
    judges_key,
    label_counts,
    trajectory_error,
)
from evaluation.tracking import centre_heatmap, extract_crops, find_peaks, track_digits

TINY_VIDEO = MovingMNISTConfig(image_size=32, digit_size=14, num_digits=2, num_frames=6)
TINY_JUDGES = dict(
    detector_width=8, classifier_width=8, detector_steps=150, classifier_steps=250, batch_videos=16,
    test_videos=64,
)


# ----------------------------------------------------------------------------------------------------
# Order-free scores


def test_digit_accuracy_matches_multisets():
    true = torch.tensor([[3, 7], [3, 7], [3, 7], [3, 3], [1, 2]])
    pred = torch.tensor([[7, 3], [3, 7], [3, 3], [3, 7], [5, 6]])
    assert digit_accuracy(pred, true).tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]
    three = torch.tensor([[4, 4, 9]])
    assert digit_accuracy(torch.tensor([[9, 4, 4]]), three).item() == 1.0
    assert digit_accuracy(torch.tensor([[4, 9, 9]]), three).item() == pytest.approx(2 / 3)


def test_label_counts_sum_to_the_number_of_digits():
    counts = label_counts(torch.tensor([[3, 3, 0], [9, 1, 2]]))
    assert counts.shape == (2, 10)
    assert counts[0, 3] == 2 and counts[0, 0] == 1 and counts.sum(dim=1).tolist() == [3, 3]


def test_trajectory_error_takes_the_best_whole_trajectory_assignment():
    generator = torch.Generator().manual_seed(0)
    true = 30 * torch.rand(4, 5, 3, 2, generator=generator)
    permuted = true[:, :, [2, 0, 1]]
    assert torch.allclose(trajectory_error(permuted, true), torch.zeros(4), atol=1e-6)
    assert torch.allclose(align_trajectories(permuted, true), true)
    shifted = true + torch.tensor([3.0, 4.0])  # every position 5 px off
    assert torch.allclose(trajectory_error(shifted[:, :, [1, 2, 0]], true), torch.full((4,), 5.0), atol=1e-5)


def test_trajectory_error_penalises_identity_swaps_within_a_video():
    # Two digits 10 px apart; the prediction swaps them after frame 1 of 4.
    true = torch.tensor([[[[0.0, 0.0], [10.0, 0.0]]] * 4])  # (1, 4, 2, 2)
    swapped = true.clone()
    swapped[:, 2:] = true[:, 2:, [1, 0]]
    # Best assignment keeps frames 0-1 right and frames 2-3 10 px off for both digits: mean 5 px.
    assert trajectory_error(swapped, true).item() == pytest.approx(5.0)


def test_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        digit_accuracy(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T, D, 2\)"):
        trajectory_error(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2))


# ----------------------------------------------------------------------------------------------------
# Geometry, peaks and the tracker (no training)


def test_crops_at_the_true_corners_are_the_digits():
    dataset = MovingMNIST("test", 4, TINY_VIDEO, seed=2)
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


# ----------------------------------------------------------------------------------------------------
# Tiny trained judges


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("judges_cache")


@pytest.fixture(scope="module")
def judges(cache) -> Judges:
    return get_judges(TINY_VIDEO, "cpu", cache_dir=cache, seed=0, progress=False, **TINY_JUDGES)


@pytest.fixture(scope="module")
def test_batch():
    return MovingMNIST("test", 32, TINY_VIDEO, seed=9).generate(range(32))


@pytest.mark.slow
def test_tiny_judges_beat_chance_by_a_wide_margin(judges, test_batch):
    accuracy = judges.accuracy
    assert set(accuracy) >= {
        "content_digit_accuracy", "content_video_accuracy", "motion_trajectory_error_px", "num_test_videos",
    }
    assert accuracy["num_test_videos"] == 64 and accuracy["cached"] is False
    assert accuracy["content_digit_accuracy"] > 0.6  # chance is about 0.2
    # The error of always answering the middle of the canvas, for reference.
    truth = test_batch["trajectory"]
    centre = torch.full_like(truth, TINY_VIDEO.travel / 2)
    centre_error = trajectory_error(centre, truth).mean().item()
    read_error = trajectory_error(judges.read_motion(test_batch["video"]), truth).mean().item()
    assert accuracy["motion_trajectory_error_px"] < 0.4 * centre_error
    assert read_error < 0.4 * centre_error


@pytest.mark.slow
def test_tiny_judges_still_read_blurred_dimmed_videos(judges, test_batch):
    video = test_batch["video"]
    frames = video.flatten(0, 2)[:, None]  # (B*T, 1, H, W)
    taps = torch.exp(-0.5 * torch.arange(-3.0, 4.0) ** 2)  # sigma 1 px
    taps = (taps / taps.sum()).view(1, 1, 7)
    blurred = torch.nn.functional.conv2d(frames, taps.view(1, 1, 1, 7), padding=(0, 3))
    blurred = torch.nn.functional.conv2d(blurred, taps.view(1, 1, 7, 1), padding=(3, 0))
    degraded = 0.7 * blurred.view(video.shape)
    labels, trajectory = judges.read(degraded)
    assert digit_accuracy(labels, test_batch["labels"]).mean() > 0.5
    truth = test_batch["trajectory"]
    centre_error = trajectory_error(torch.full_like(truth, TINY_VIDEO.travel / 2), truth)
    assert trajectory_error(trajectory, truth).mean() < 0.5 * centre_error.mean()


@pytest.mark.slow
def test_readings_have_the_documented_shapes(judges, test_batch):
    video = test_batch["video"][:5]
    labels = judges.read_content(video)
    assert labels.shape == (5, 2) and labels.dtype == torch.long
    assert torch.equal(labels, labels.sort(dim=1).values)
    counts = judges.read_counts(video)
    assert counts.shape == (5, 10) and counts.sum(dim=1).tolist() == [2] * 5
    assert judges.read_motion(video).shape == (5, 6, 2, 2)
    both = judges.read(video)
    assert torch.equal(both[0], labels) and torch.allclose(both[1], judges.read_motion(video))
    # Any number of frames: one frame for content, two for motion, more than trained on.
    assert judges.read_content(video[:, :1]).shape == (5, 2)
    assert judges.read_motion(video[:, :2]).shape == (5, 2, 2, 2)
    assert judges.read_motion(torch.cat([video, video], dim=1)).shape == (5, 12, 2, 2)
    with pytest.raises(ValueError, match=r"\(B, T, 1, 32, 32\)"):
        judges.read_content(torch.zeros(2, 3, 1, 64, 64))


@pytest.mark.slow
def test_second_call_loads_the_cache_and_reads_identically(judges, cache, test_batch):
    files = list(cache.glob("judges_*.pt"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    payload = torch.load(files[0], weights_only=True)
    assert set(payload) >= {"detector", "classifier", "accuracy"}
    loaded = get_judges(TINY_VIDEO, "cpu", cache_dir=cache, seed=0, progress=False, **TINY_JUDGES)
    assert loaded.accuracy["cached"] is True
    assert loaded.accuracy["content_digit_accuracy"] == judges.accuracy["content_digit_accuracy"]
    video = test_batch["video"]
    assert torch.equal(loaded.read_content(video), judges.read_content(video))
    assert torch.equal(loaded.read_motion(video), judges.read_motion(video))


def test_an_unreadable_cache_file_is_trained_again(tmp_path):
    options = dict(cache_dir=tmp_path, progress=False, detector_steps=1, classifier_steps=1, batch_videos=2,
                   test_videos=2, detector_width=4, classifier_width=4)
    get_judges(TINY_VIDEO, "cpu", **options)
    (path,) = tmp_path.glob("judges_*.pt")
    path.write_bytes(b"not a checkpoint")
    judges = get_judges(TINY_VIDEO, "cpu", **options)
    assert judges.accuracy["cached"] is False
    assert torch.load(path, weights_only=True)["accuracy"]["num_test_videos"] == 2


def test_cache_key_changes_with_what_the_judges_depend_on():
    from data.mnist import load_digits

    digits = load_digits()
    base = judges_key(TINY_VIDEO, digits, JudgeConfig(), 0)
    assert base == judges_key(TINY_VIDEO, digits, JudgeConfig(), 0)
    three_digits = MovingMNISTConfig(image_size=32, digit_size=14, num_digits=3)
    assert base != judges_key(three_digits, digits, JudgeConfig(), 0)
    assert base != judges_key(TINY_VIDEO, digits, JudgeConfig(detector_steps=1), 0)
    assert base != judges_key(TINY_VIDEO, digits, JudgeConfig(), 1)


def test_unknown_options_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="unknown judge option"):
        get_judges(TINY_VIDEO, "cpu", cache_dir=tmp_path, train_steps=5)
    with pytest.raises(ValueError, match="clip_frames"):
        JudgeConfig(clip_frames=1)


def test_judges_do_not_touch_the_global_random_state(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_judges(TINY_VIDEO, "cpu", cache_dir=tmp_path, progress=False, detector_steps=1, classifier_steps=1,
               batch_videos=2, test_videos=2, detector_width=4, classifier_width=4)
    assert torch.equal(torch.rand(3), expected)
    assert len(list(tmp_path.glob("judges_*.pt"))) == 1
