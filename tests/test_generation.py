"""Tests of the generation metrics (evaluation/generation.py) against references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from data import MovingMNISTConfig
from evaluation.generation import (
    bounce_rate,
    compute_generation_metrics,
    frechet_distance,
    identity_consistency,
    judge_reading,
    precision_recall,
    wasserstein_1d,
)
from evaluation.judges.networks import Judges
from evaluation.metric_names import GENERATION_KEYS, METRICS, TABLES
from tests.test_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian_features(count: int = 300, dim: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    return rng.normal(size=(count, dim)) @ mixing + rng.normal(size=dim)


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (the reference FID code's route)."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_agrees_with_scipy_sqrtm():
    a, b = gaussian_features(seed=0), gaussian_features(seed=1) * 1.3 + 0.5
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_closed_forms():
    a = gaussian_features()
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([3.0, -1.0, 0.5, 0.0, 2.0])
    # A shifted copy has the same covariance: the distance is exactly |d|^2.
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-8)
    # Singular covariances (fewer rows than features) stay finite and non-negative.
    few = gaussian_features(count=4, dim=10)
    assert 0 <= frechet_distance(few, few + 1.0) == pytest.approx(10.0, rel=1e-6)
    assert math.isnan(frechet_distance(a[:1], a))


def test_precision_recall_identical_sets_and_drift():
    a = gaussian_features(200, 3)
    assert precision_recall(a, a) == {"precision": 1.0, "recall": 1.0}
    scores = [precision_recall(a, a + np.array([shift, 0.0, 0.0]) * a.std()) for shift in (0.0, 0.5, 2.0, 10.0)]
    precisions = [score["precision"] for score in scores]
    recalls = [score["recall"] for score in scores]
    assert precisions == sorted(precisions, reverse=True) and recalls == sorted(recalls, reverse=True)
    assert precisions[-1] == 0.0 and recalls[-1] == 0.0 and precisions[1] < 1.0


def test_precision_recall_separates_the_two_questions():
    real = gaussian_features(300, 2)
    collapsed = real[:30].repeat(10, axis=0) + 1e-3  # realistic samples that cover a tenth of the data
    scores = precision_recall(real, collapsed)
    assert scores["precision"] == 1.0 and scores["recall"] < 0.5
    assert math.isnan(precision_recall(real[:3], real[:3])["precision"])  # k = 3 needs more than 3 points


def test_identity_consistency_is_the_majority_share():
    frames = torch.tensor([
        [[3, 7], [7, 3], [3, 7], [3, 7]],  # every frame reads {3, 7} (any order): 1
        [[3, 7], [3, 1], [3, 7], [2, 2]],  # the majority {3, 7} in 2 of 4 frames: 0.5
        [[0, 1], [2, 3], [4, 5], [6, 7]],  # no two frames agree: 1 / T
    ])
    assert identity_consistency(frames).tolist() == [1.0, 0.5, 0.25]


def test_wasserstein_agrees_with_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.exponential(2.0, 500), rng.normal(3.0, 1.0, 300)
    assert wasserstein_1d(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-9)
    assert wasserstein_1d(a, a + 1.5) == pytest.approx(1.5)
    assert math.isnan(wasserstein_1d(a, []))


def test_bounce_rate_counts_reversals_only():
    steps = torch.tensor([2.0, 2.0, 2.0, -2.0, -2.0])  # x reverses once in 4 pairs of steps
    path = torch.cat([torch.zeros(1), steps.cumsum(0)])
    trajectory = torch.stack([path, torch.zeros(6)], dim=-1)[None, :, None]  # (1, 6, 1, 2)
    assert bounce_rate(trajectory).item() == pytest.approx(1 / 8)  # 1 of 4 step pairs x 2 axes
    jitter = trajectory + torch.tensor([0.0, 0.1]) * (-1) ** torch.arange(6)[None, :, None, None]
    assert bounce_rate(jitter).item() == pytest.approx(1 / 8)  # sub-threshold jitter is not a bounce


def test_judge_description_matches_the_pooled_reading():
    judges = Judges(MovingMNISTConfig(image_size=32, digit_size=14, num_frames=4)).eval()
    video = torch.rand(3, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    described = judges.describe(video)
    assert torch.allclose(described["log_probs"], judges.read_content_log_probs(video), atol=1e-6)
    assert described["frame_labels"].shape == (3, 4, 2) and described["embedding"].shape == (3, 128)
    reading = judge_reading(judges, video)
    assert reading["features"].shape == (3, 131) and reading["probabilities"].shape == (6, 10)


def test_generation_metrics_on_a_tiny_model():
    model = tiny_model("disentangled").eval()
    judges = Judges(MovingMNISTConfig(image_size=32, digit_size=14, num_frames=4)).eval()
    videos = torch.rand(10, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = [{"video": videos[:4]}, {"video": videos[4:]}]
    results = compute_generation_metrics(model, loader, judges, max_videos=9)
    assert results["num_videos"] == 9 and results["prior"]["content"] == "N(0, I)"
    assert set(results) == {*GENERATION_KEYS, "prior", "num_videos", "notes"}
    assert all(math.isfinite(results[key]) for key in GENERATION_KEYS)
    assert results["real_frechet_distance"] >= 0 and 1.0 <= results["real_inception_score"] <= 10.0
    again = compute_generation_metrics(model, loader, judges, max_videos=9)
    assert again["prior_frechet_distance"] == results["prior_frechet_distance"]  # seeded draws
    assert all(math.isnan(compute_generation_metrics(model, loader, None)[key]) for key in GENERATION_KEYS)


def test_every_generation_key_is_registered_and_tabled():
    assert {metric.key for metric in TABLES["generation"]} == set(GENERATION_KEYS)
    assert all(METRICS[key].section == "generation" for key in GENERATION_KEYS)


def test_a_perfect_reconstruction_scores_as_the_real_videos():
    """The reconstruction reference reads model.reconstruct: a decoder that gave the input back would sit
    exactly on the real videos' numbers, and a worse one falls below them."""
    model = tiny_model("disentangled").eval()
    judges = Judges(MovingMNISTConfig(image_size=32, digit_size=14, num_frames=4)).eval()
    videos = torch.rand(10, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = [{"video": videos}]
    model.reconstruct = lambda video: video.clone()
    results = compute_generation_metrics(model, loader, judges)
    for quantity in ("frechet_distance", "inception_score", "entropy_conditional", "identity_consistency",
                     "speed_w1_px", "bounce_rate", "precision", "recall"):
        assert results[f"reconstruction_{quantity}"] == pytest.approx(results[f"real_{quantity}"])
    model.reconstruct = lambda video: torch.zeros_like(video)
    blank = compute_generation_metrics(model, loader, judges)
    assert blank["reconstruction_frechet_distance"] > results["real_frechet_distance"]
    # The generated modes do not depend on the reconstructions (the draws consume the same generator).
    assert blank["prior_frechet_distance"] == results["prior_frechet_distance"]
