"""Judges: tiny trained judges read real videos, the cache, and the options (order-free scores and the
tracker: tests/test_order_free.py, tests/test_tracking.py)."""

from __future__ import annotations

import pytest
import torch

from data import MovingMNIST, MovingMNISTConfig
from evaluation.judges.cache import get_judges, judges_key
from evaluation.judges.networks import JudgeConfig, Judges
from evaluation.judges.order_free import digit_accuracy, trajectory_error

TINY_VIDEO = MovingMNISTConfig(image_size=32, digit_size=14, num_digits=2, num_frames=6)
TINY_JUDGES = dict(
    detector_width=8, classifier_width=8, detector_steps=150, classifier_steps=250, batch_videos=16,
    test_videos=64,
)


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
