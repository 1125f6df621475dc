"""Tests of the ground-truth factors (evaluation/codes/factors.py) and of the scores of codes against them
(evaluation/codes/code_metrics.py) on an oracle code (the factors themselves) and a leaky one."""

from __future__ import annotations

import numpy as np
import pytest

from data import MovingMNIST
from evaluation.codes.code_metrics import code_metrics
from evaluation.codes.factors import content_factors, motion_factors
from evaluation.metric_names import CODE_KEYS


@pytest.fixture(scope="module")
def video_factors():
    """Factors of 300 videos (no pixels): labels (N, 2), trajectory (N, T, 2, 2)."""
    dataset = MovingMNIST("test", 300, config=None)
    factors = dataset.factors(np.arange(300))
    return factors["labels"], factors["trajectory"][:, :8]


def test_probes_on_an_oracle_and_a_leaky_code(video_factors):
    labels, trajectory = video_factors
    content = content_factors(labels).astype(float)  # the oracle content code: the counts
    motion = motion_factors(trajectory)  # the oracle motion code: the motion factors
    oracle = code_metrics(content, motion, labels, trajectory)
    assert list(oracle) == [*CODE_KEYS, "notes"]
    assert oracle["sap_content_content"] > 0.9 and oracle["sap_motion_motion"] > 0.99
    assert oracle["sap_content_motion"] < 0.1 and oracle["sap_motion_content"] < 0.1
    assert oracle["sap_disentanglement"] > 0.6 and oracle["mig_content"] > 0.6 and oracle["mig_motion"] > 0.3
    assert oracle["probe_content_from_content"] > 0.8
    assert oracle["probe_content_from_motion"] < oracle["probe_content_chance"] + 0.15
    assert oracle["probe_motion_from_motion"] > 0.99
    assert oracle["probe_motion_from_content"] < 0.1
    assert oracle["mean_abs_correlation"] < 3 * oracle["correlation_chance"]
    assert oracle["overall_disentanglement"] > 0.7
    # A content code that also carries the video's mean position leaks motion: the scores must see it.
    leaky_content = np.concatenate([content, motion.mean(axis=1)], axis=1)
    leaky = code_metrics(leaky_content, motion, labels, trajectory)
    assert leaky["sap_content_motion"] > oracle["sap_content_motion"] + 0.2
    assert leaky["probe_motion_from_content"] > oracle["probe_motion_from_content"] + 0.2
    assert leaky["max_abs_correlation"] > 0.5
    assert leaky["overall_disentanglement"] < oracle["overall_disentanglement"] - 0.1


def test_factors_are_order_free(video_factors):
    labels, trajectory = video_factors
    swapped_labels, swapped_paths = labels[:, ::-1], trajectory[:, :, ::-1]
    np.testing.assert_array_equal(content_factors(labels), content_factors(swapped_labels))
    np.testing.assert_allclose(motion_factors(trajectory), motion_factors(swapped_paths))
    assert content_factors(labels).sum(axis=1).tolist() == [2] * len(labels)
