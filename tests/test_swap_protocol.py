"""Tests of the swap protocol (evaluation/swaps.py): the pairing rule, the chance-rescaled scores
stored with the metrics and read back from older files, the judged trajectory correlation and the swap
fidelity against the ideal render."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data import MovingMNIST, render_digits
from evaluation.codes.chance import chance_rescaled
from evaluation.judges.tally import trajectory_correlation
from evaluation.swaps import (
    example_pairs,
    motion_partners,
    motion_sources,
    swap_fidelity,
    swap_score,
    swap_scores,
)


def test_each_video_takes_the_previous_ones_motion():
    assert motion_sources(4).tolist() == [3, 0, 1, 2]
    assert motion_sources(1).tolist() == [0]
    with pytest.raises(ValueError):
        motion_sources(0)


def test_partners_cross_batch_boundaries_in_loader_order():
    videos = torch.arange(7)
    first, second = {"v": videos[:4]}, {"v": videos[4:]}
    assert motion_partners(first, None)["v"].tolist() == [3, 0, 1, 2]
    assert motion_partners(second, {"v": first["v"][-1:]})["v"].tolist() == [3, 4, 5]


def test_chance_rescaled_scores_and_their_geometric_mean():
    assert chance_rescaled(0.6, 0.2) == pytest.approx(0.5)
    assert chance_rescaled(0.1, 0.2) == 0.0 and chance_rescaled(1.5, 0.2) == 1.0
    assert all(math.isnan(chance_rescaled(*pair)) for pair in ((math.nan, 0.2), (0.5, math.nan), (0.5, 1.0)))
    measured = {"content_preservation": 0.6, "content_accuracy_chance": 0.2, "motion_correlation": 0.5,
                "motion_correlation_chance": 0.5}
    scores = swap_scores(measured)
    assert scores == {"content_swap_score": pytest.approx(0.5), "motion_swap_score": 0.0, "swap_quality": 0.0}
    assert math.isnan(swap_scores({**measured, "motion_correlation": math.nan})["swap_quality"])


def test_a_stored_swap_score_is_read_and_an_older_file_derives_it():
    older = {"content_preservation": 0.52, "content_accuracy_chance": 0.2}
    assert swap_score(older, "content_swap_score") == pytest.approx(0.4)
    assert swap_score({**older, "content_swap_score": 0.7}, "content_swap_score") == 0.7
    assert math.isnan(swap_score({}, "motion_swap_score"))


def test_trajectory_correlation():
    rng = np.random.default_rng(7)
    paths = rng.uniform(0, 30, size=(3, 5, 2, 2))
    assert trajectory_correlation(paths[:, :, ::-1], paths) == pytest.approx(1.0)  # order-free
    assert trajectory_correlation(2 * paths + 1, paths) == pytest.approx(1.0)  # affine maps keep r = 1
    # Unrelated paths: choosing each video's closer assignment biases r upwards (hence the reported
    # motion_correlation_chance), but it stays far from 1.
    unrelated = trajectory_correlation(rng.uniform(0, 30, size=(200, 5, 2, 2)), rng.uniform(0, 30, size=(200, 5, 2, 2)))
    assert 0.0 < unrelated < 0.3
    assert math.isnan(trajectory_correlation(np.zeros_like(paths), paths))


def test_swap_fidelity_takes_the_best_digit_assignment():
    dataset = MovingMNIST("test", 4)
    factors = dataset.factors(np.arange(4))
    images = dataset.digit_images(factors["digit_ids"])
    paths = torch.from_numpy(factors["trajectory"])
    ideal_swapped_slots = render_digits(images[:, [1, 0]], paths, 64)  # A's digits on B's paths, other order
    psnr, ssim = swap_fidelity(ideal_swapped_slots, images, paths, 64)
    assert torch.isinf(psnr).all() and torch.allclose(ssim, torch.ones(4))
    psnr_blank, _ = swap_fidelity(torch.zeros_like(ideal_swapped_slots), images, paths, 64)
    assert torch.isfinite(psnr_blank).all() and (psnr_blank < 30).all()


def test_example_pairs_follow_the_pairing_rule():
    for num_videos in (1, 2, 5, 8):
        pairs = example_pairs(num_videos, 3)
        sources = motion_sources(num_videos)
        assert all(b == sources[a] for a, b in pairs)
        assert len({index for pair in pairs for index in pair}) == (1 if num_videos == 1 else 2 * len(pairs))
    assert example_pairs(8, 3) == [(1, 0), (3, 2), (5, 4)]
    assert example_pairs(5, 5) == [(1, 0), (3, 2)]
    with pytest.raises(ValueError, match="at least one pair"):
        example_pairs(4, 0)
