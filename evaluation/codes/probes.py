"""Held-out splits and linear probes on numpy arrays: a shrinkage-LDA classifier and a ridge regression
whose penalty is chosen by exact leave-one-out error."""

from __future__ import annotations

import math

import numpy as np

from evaluation.codes.information import as_matrix


def split_mask(num_groups: int, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """A seeded held-out mask over ``num_groups`` items: ``round(test_fraction * n)`` of them (at least one,
    and at least one left for training when ``n >= 2``) are ``True``."""
    if num_groups < 2:
        raise ValueError(f"need at least 2 items to hold some out, got {num_groups}")
    num_test = min(max(1, round(test_fraction * num_groups)), num_groups - 1)
    mask = np.zeros(num_groups, dtype=bool)
    mask[np.random.default_rng(seed).permutation(num_groups)[:num_test]] = True
    return mask


def _standardiser(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _shrinkage_lda_log_proba(
    train_x: np.ndarray, train_y: np.ndarray, classes: np.ndarray, test_x: np.ndarray
) -> np.ndarray:
    """Log class probabilities of linear discriminant analysis with a shrunk pooled covariance.

    Standardised features; class means ``mu_c``, priors ``pi_c`` (training frequencies) and the pooled
    within-class covariance ``S``, shrunk to ``(1 - a) S + a tr(S)/p I`` with the Ledoit-Wolf ``a``
    (Ledoit & Wolf, 2004). Scores ``x' S^-1 mu_c - mu_c' S^-1 mu_c / 2 + log pi_c``, normalised by
    log-sum-exp. (sklearn's ``solver="lsqr", shrinkage="auto"`` shrinks each class's covariance
    separately instead; both are linear classifiers.)
    """
    mean, scale = _standardiser(train_x)
    train_x, test_x = (train_x - mean) / scale, (test_x - mean) / scale
    index = np.searchsorted(classes, train_y)
    one_hot = np.eye(len(classes))[index]
    counts = one_hot.sum(axis=0)
    means = one_hot.T @ train_x / counts[:, None]  # (C, p)
    within = train_x - means[index]  # (N, p) within-class deviations
    num_rows, num_features = within.shape
    covariance = within.T @ within / num_rows
    # Ledoit & Wolf (2004) shrinkage towards mu I, as sklearn.covariance.ledoit_wolf_shrinkage.
    target = np.trace(covariance) / num_features
    distance = ((covariance - target * np.eye(num_features)) ** 2).sum() / num_features
    spread = (((within**2).sum(axis=1) ** 2).sum() / num_rows - (covariance**2).sum()) / (num_features * num_rows)
    shrinkage = min(spread, distance) / distance if distance > 0 else 1.0
    covariance = (1 - shrinkage) * covariance + (shrinkage * target + 1e-9) * np.eye(num_features)
    weights = np.linalg.solve(covariance, means.T)  # (p, C)
    scores = test_x @ weights - 0.5 * (means * weights.T).sum(axis=1) + np.log(counts / counts.sum())
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)


def classification_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    test_groups: np.ndarray | None = None,
) -> dict[str, float]:
    """Held-out accuracy of a linear classifier: linear discriminant analysis with Ledoit-Wolf shrinkage.

    LDA (Gaussian classes with one shared covariance, :func:`_shrinkage_lda_log_proba`) is a linear
    probe like multinomial logistic regression, but closed-form: one covariance and one solve, far
    faster on 10^4 rows, and the shrinkage regularises it without a tuning loop.
    With ``test_groups`` (e.g. the video of each frame row), the log-probabilities of a group's rows are
    summed before the argmax and the accuracy is over groups (one label per group), so a probe on
    per-frame codes pools the evidence of all frames of a video.

    Returns:
        ``{"accuracy", "chance"}``: ``chance`` is the accuracy of always predicting the most frequent
        training class (on the same test groups). NaN when the features are not finite.
    """
    train_y, test_y = np.asarray(train_y).reshape(-1), np.asarray(test_y).reshape(-1)
    if test_groups is None:
        test_groups = np.arange(len(test_y))
    groups, group_index = np.unique(test_groups, return_inverse=True)
    group_labels = np.empty(len(groups), dtype=test_y.dtype)
    group_labels[group_index] = test_y
    classes, counts = np.unique(train_y, return_counts=True)
    chance = float(np.mean(group_labels == classes[counts.argmax()]))
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        return {"accuracy": math.nan, "chance": chance}
    if len(classes) == 1:
        return {"accuracy": chance, "chance": chance}
    log_probabilities = _shrinkage_lda_log_proba(train_x, train_y, classes, test_x)  # (Nte, C)
    pooled = np.zeros((len(groups), len(classes)))
    np.add.at(pooled, group_index, log_probabilities)
    predicted = classes[pooled.argmax(axis=1)]
    return {"accuracy": float(np.mean(predicted == group_labels)), "chance": chance}


def _ridge_loo(train_x: np.ndarray, train_y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression (centred, so an unpenalised intercept) with the penalty of least leave-one-out error.

    With ``X' X = V diag(l) V'`` and ``Z = X V``, the hat matrix diagonal is
    ``h_i = sum_k Z_ik^2 / (l_k + alpha)`` and the leave-one-out residual ``e_i / (1 - h_i)`` (the
    exact identity sklearn's ``RidgeCV`` uses), so every penalty costs one small product.

    Returns:
        ``(weights (p, Ky), intercept (Ky,))`` for the best ``alpha``.
    """
    x_mean, y_mean = train_x.mean(axis=0), train_y.mean(axis=0)
    x, y = train_x - x_mean, train_y - y_mean
    eigenvalues, vectors = np.linalg.eigh(x.T @ x)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    rotated = x @ vectors  # (N, p)
    projected = rotated.T @ y  # (p, Ky)
    leverage_base = rotated**2 + 1.0 / len(x)  # the intercept adds 1/N to every h_i
    best = None
    for alpha in alphas:
        shrink = 1.0 / (eigenvalues + alpha)
        fitted = rotated @ (shrink[:, None] * projected)  # (N, Ky)
        leverage = leverage_base @ shrink  # (N,) hat-matrix diagonal
        residual = (y - fitted) / np.maximum(1.0 - leverage, 1e-12)[:, None]
        error = float((residual**2).sum())
        if best is None or error < best[0]:
            best = (error, shrink)
    weights = vectors @ (best[1][:, None] * projected)
    return weights, y_mean - x_mean @ weights


def regression_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> dict[str, float]:
    """Held-out ``R^2`` of a ridge regression on standardised features, averaged over target columns.

    The penalty is chosen among ``10^-3 ... 10^3`` by exact leave-one-out error on the training rows
    (:func:`_ridge_loo`, as sklearn's ``RidgeCV``). ``R^2_k = 1 - sum (y - yhat)^2 / sum (y - mean y)^2``
    on the test rows, per target column ``k``, then the uniform mean over columns.

    Returns:
        ``{"r2", "chance"}``: ``chance`` is the ``R^2`` of predicting the training mean (about 0, slightly
        below). NaN when the features are not finite.
    """
    train_x, test_x = as_matrix("train_x", train_x), as_matrix("test_x", test_x)
    train_y, test_y = as_matrix("train_y", train_y), as_matrix("test_y", test_y)
    residual_total = ((test_y - test_y.mean(axis=0)) ** 2).sum(axis=0)

    def r_squared(predicted: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(1.0 - ((test_y - predicted) ** 2).sum(axis=0) / residual_total))

    chance = r_squared(np.broadcast_to(train_y.mean(axis=0), test_y.shape))
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        return {"r2": math.nan, "chance": chance}
    mean, scale = _standardiser(train_x)
    weights, intercept = _ridge_loo((train_x - mean) / scale, train_y, np.logspace(-3, 3, 7))
    return {"r2": r_squared((test_x - mean) / scale @ weights + intercept), "chance": chance}
