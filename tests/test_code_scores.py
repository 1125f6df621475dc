"""Tests of the pure code scores on arrays (evaluation/codes/information.py, sap.py, correlation.py, probes.py):
oracle codes, hand-computed cases and independent references (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mutual_info_score

from evaluation.codes.correlation import correlation_scores
from evaluation.codes.information import NUM_BINS, discretize, inception_score, mig_score, mutual_information
from evaluation.codes.probes import _ridge_loo, _shrinkage_lda_log_proba
from evaluation.codes.sap import sap_score


def independent_factors(num: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two discrete factors (4 classes) and two continuous ones, all independent."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.integers(0, 4, size=(num, 2)), rng.uniform(size=(num, 2))], axis=1)
    return values, np.array([True, True, False, False])



# ---------------------------------------------------------------------------------------------------- SAP / MIG


def test_one_to_one_code_scores_near_the_top():
    factors, discrete = independent_factors()
    noise = np.random.default_rng(1).normal(size=(len(factors), 2))
    codes = np.concatenate([factors, noise], axis=1)
    sap = sap_score(codes, factors, discrete)
    mig = mig_score(codes, factors, discrete)
    assert sap["sap"] > 0.97
    assert mig["mig"] > 0.9
    np.testing.assert_allclose(np.diag(sap["score_matrix"][:4]), 1.0)


def test_constant_codes_score_zero():
    factors, discrete = independent_factors()
    codes = np.full((len(factors), 3), 0.7)
    assert sap_score(codes, factors, discrete)["sap"] == 0.0
    assert mig_score(codes, factors, discrete)["mig"] == 0.0


def test_a_duplicated_latent_lowers_sap_and_mig():
    factors, discrete = independent_factors()
    one_to_one = (sap_score(factors, factors, discrete), mig_score(factors, factors, discrete))
    codes = np.concatenate([factors[:, :1], factors], axis=1)  # factor 0 carried by two dimensions
    sap, mig = sap_score(codes, factors, discrete), mig_score(codes, factors, discrete)
    assert sap["per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert mig["per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert sap["sap"] < one_to_one[0]["sap"] - 0.2
    assert mig["mig"] < one_to_one[1]["mig"] - 0.2


def test_shuffled_codes_score_near_zero():
    factors, discrete = independent_factors()
    codes = factors[np.random.default_rng(2).permutation(len(factors))]
    assert abs(sap_score(codes, factors, discrete)["sap"]) < 0.05
    assert mig_score(codes, factors, discrete)["mig"] < 0.05


def test_mig_hand_computed():
    # y = (0, 0, 1, 1). z0 = (0, 0, 0, 1): I = ln 2 - 3/4 h(1/3). z1 = (0, 1, 0, 1) is independent: I = 0.
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    factor = np.array([0, 0, 1, 1])
    binary_entropy = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    expected = (math.log(2) - 0.75 * binary_entropy) / math.log(2)  # 0.311278
    result = mig_score(codes, factor, discrete=True)
    assert result["mig"] == pytest.approx(expected, rel=1e-9)
    assert result["mig"] == pytest.approx(0.311278, abs=1e-6)
    assert result["mutual_information"][1, 0] == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_agrees_with_sklearn_on_histogram_bins():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(500, 3)) + np.arange(3)
    labels = rng.integers(0, 5, size=500)
    codes[:, 0] += labels  # one informative dimension
    bins = discretize(codes)
    for j in range(3):
        edges = np.histogram(codes[:, j], NUM_BINS)[1][:-1]
        np.testing.assert_array_equal(bins[:, j], np.digitize(codes[:, j], edges) - 1)  # disentanglement_lib
    expected = [mutual_info_score(labels, bins[:, j]) for j in range(3)]
    np.testing.assert_allclose(mutual_information(bins, labels), expected, rtol=1e-10)


def test_sap_hand_computed_continuous():
    # r^2(z0, y) = 6.5^2 / (8.75 * 5) = 0.965714; r^2(z1, y) = 1 / 5 = 0.2; SAP = 0.765714.
    codes = np.array([[1.0, 1.0], [2.0, 0.0], [3.0, 1.0], [5.0, 0.0]])
    factor = np.array([1.0, 2.0, 3.0, 4.0])
    result = sap_score(codes, factor, discrete=False, test_mask=np.array([False, False, False, True]))
    np.testing.assert_allclose(result["score_matrix"][:, 0], [42.25 / 43.75, 0.2])
    assert result["sap"] == pytest.approx(42.25 / 43.75 - 0.2)


def test_sap_hand_computed_discrete():
    # Training means 0, 1, 2; test codes (0.1, 1.6, 1.9, 0.4) -> predictions (0, 2, 2, 0) for labels
    # (0, 1, 2, 1): recalls 1, 0, 1, balanced accuracy 2/3, adjusted (2/3 - 1/3) / (2/3) = 0.5.
    informative = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 0.1, 1.6, 1.9, 0.4])
    codes = np.stack([informative, np.ones(10)], axis=1)  # second dimension dead: score 0
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 1])
    test_mask = np.arange(10) >= 6
    result = sap_score(codes, labels, discrete=True, test_mask=test_mask)
    np.testing.assert_allclose(result["score_matrix"][:, 0], [0.5, 0.0])
    assert result["sap"] == pytest.approx(0.5)


def test_non_finite_codes_give_nan_not_a_dropped_value():
    factors, discrete = independent_factors(200)
    codes = factors.copy()
    codes[5, 2] = np.nan
    assert math.isnan(sap_score(codes, factors, discrete)["sap"])
    assert math.isnan(mig_score(codes, factors, discrete)["mig"])
    motion = np.random.default_rng(0).normal(size=(200, 3, 2))
    assert math.isnan(correlation_scores(codes, motion)["mean_abs_correlation"])


# ---------------------------------------------------------------------------------------------------- correlation


def test_correlation_of_independent_and_identical_codes():
    rng = np.random.default_rng(4)
    content = rng.normal(size=(1000, 4))
    independent = correlation_scores(content, rng.normal(size=(1000, 5, 3)))
    assert independent["mean_abs_correlation"] == pytest.approx(independent["correlation_chance"], rel=0.3)
    assert independent["max_abs_correlation"] < 0.1
    identical = correlation_scores(content, np.repeat(content[:, None], 5, axis=1))
    assert identical["max_abs_correlation"] == pytest.approx(1.0)
    assert identical["mean_abs_correlation"] > 0.25  # the diagonal: 4 of 16 pairs at |r| = 1
    dead = correlation_scores(np.ones((1000, 2)), rng.normal(size=(1000, 5, 3)))
    assert dead["max_abs_correlation"] == 0.0


# ---------------------------------------------------------------------------------------------------- probes


def test_ridge_probe_agrees_with_sklearn_ridgecv():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 6))
    y = np.stack([x[:, 0] * 2 + rng.normal(size=300), x[:, 1] - x[:, 2]], axis=1)
    weights, intercept = _ridge_loo(x, y, np.logspace(-3, 3, 7))
    reference = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(x, y)
    np.testing.assert_allclose(x @ weights + intercept, reference.predict(x), atol=1e-8)


def test_lda_covariance_uses_the_ledoit_wolf_shrinkage_of_sklearn(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(80, 30)) @ rng.normal(size=(30, 30))
    captured = {}
    original_solve = np.linalg.solve

    def spy(covariance, right):
        captured["covariance"] = covariance
        return original_solve(covariance, right)

    monkeypatch.setattr(np.linalg, "solve", spy)
    _shrinkage_lda_log_proba(x, np.zeros(80, dtype=int), np.array([0]), x[:2])  # one class: S = cov
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)
    covariance = standardised.T @ standardised / len(x)
    shrinkage = ledoit_wolf_shrinkage(standardised, assume_centered=True)
    target = np.trace(covariance) / 30
    expected = (1 - shrinkage) * covariance + (shrinkage * target + 1e-9) * np.eye(30)
    np.testing.assert_allclose(captured["covariance"], expected, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- Inception Score


def test_inception_score():
    confident = inception_score(np.eye(10))
    assert confident["inception_score"] == pytest.approx(10.0)
    assert confident["entropy_conditional"] == pytest.approx(0.0)
    assert confident["entropy_marginal"] == pytest.approx(math.log(10))
    assert inception_score(np.tile(np.eye(10)[3], (5, 1)))["inception_score"] == pytest.approx(1.0)

