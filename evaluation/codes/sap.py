"""SAP (Separated Attribute Predictability, Kumar et al. 2018) on numpy arrays: the score matrix of single
code dimensions against factors, its top-two gap, and the best-dimension block scores.

Conventions as :mod:`evaluation.codes.information`: ``codes`` ``(N, Dz)``, ``factors`` ``(N, K)``, ``discrete``
per factor.
"""

from __future__ import annotations

import math

import numpy as np

from evaluation.codes.information import TINY_VARIANCE, check_codes_factors, top_two_gap
from evaluation.codes.probes import split_mask


def _r_squared_columns(codes: np.ndarray, code_variance: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``R^2`` of the 1-D least-squares fit of ``target`` on each code column: the squared Pearson r."""
    centred = target - target.mean()
    covariance = codes.T @ centred / len(target)
    with np.errstate(divide="ignore", invalid="ignore"):
        return covariance**2 / (code_variance * centred.var())


def _nearest_mean_scores(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray
) -> np.ndarray:
    """Chance-adjusted balanced test accuracy of a 1-D nearest-class-mean classifier per code column.

    Balanced accuracy ``A`` is the mean recall over the classes present in the test rows; the score is
    ``(A - 1/K) / (1 - 1/K)`` with ``K`` those classes (0 at chance, 1 perfect; NaN when ``K = 1``).
    On a line the nearest mean is found by comparing with the midpoints between sorted class means.
    """
    classes, train_index = np.unique(train_labels, return_inverse=True)
    one_hot = np.eye(len(classes))[train_index]  # (Ntr, C)
    means = one_hot.T @ train_codes / one_hot.sum(axis=0)[:, None]  # (C, Dz)
    order = np.argsort(means, axis=0, kind="stable")  # (C, Dz)
    ordered = np.take_along_axis(means, order, axis=0)
    midpoints = ((ordered[1:] + ordered[:-1]) / 2).astype(test_codes.dtype)  # (C - 1, Dz) decision boundaries
    position = np.argsort(order, axis=0)  # (C, Dz): where class c sits among dimension j's sorted means
    test_classes = np.unique(test_labels)
    if len(test_classes) < 2:
        return np.full(train_codes.shape[1], np.nan)
    rank = np.zeros(test_codes.shape, dtype=np.int16)  # (Nte, Dz): the predicted class's position
    for boundary in midpoints:  # C - 1 comparisons
        rank += test_codes > boundary
    recall = np.zeros((len(test_classes), train_codes.shape[1]))
    for row, label in enumerate(test_classes):
        found = np.flatnonzero(classes == label)
        if found.size:  # a class never seen in training is never predicted: recall 0
            recall[row] = (rank[np.asarray(test_labels) == label] == position[found[0]]).mean(axis=0)
    chance = 1.0 / len(test_classes)
    return (recall.mean(axis=0) - chance) / (1.0 - chance)


def sap_score_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    discrete: bool | np.ndarray,
    test_mask: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The SAP score matrix ``S[j, k]``: how well code dimension ``j`` alone predicts factor ``k``.

    Kumar et al. (2018), "Variational Inference of Disentangled Latent Concepts from Unlabeled
    Observations", Sec. 3. Continuous factor: ``S = R^2`` of the linear regression of the factor on
    ``z_j`` (the squared Pearson correlation, over all rows, as disentanglement_lib). Discrete factor: the
    held-out accuracy of a classifier on ``z_j`` alone; here a 1-D nearest-class-mean classifier (linear,
    closed form, vectorised over dimensions) scored by chance-adjusted balanced accuracy, so that ``S`` is
    0 at chance and 1 when perfect, on the scale of ``R^2`` (disentanglement_lib uses a ``LinearSVC`` and
    raw accuracy, whose chance level is not 0). Dead dimensions (variance <= 1e-12) score 0, as in
    disentanglement_lib; non-finite dimensions and constant factors give NaN.

    Args:
        codes: ``(N, Dz)``.
        factors: ``(N, K)``.
        discrete: per factor (or one for all) whether it is discrete.
        test_mask: ``(N,)`` bool, the rows held out for the classifiers; ``None`` holds out a seeded 20%.
        seed: seed of the default split.

    Returns:
        ``(Dz, K)`` scores, each in [0, 1] up to sampling noise (adjusted accuracies can dip below 0).
    """
    codes, factors, flags = check_codes_factors(codes, factors, discrete)
    test_mask = split_mask(len(codes), seed=seed) if test_mask is None else np.asarray(test_mask, dtype=bool)
    if test_mask.shape != (len(codes),) or test_mask.all() or not test_mask.any():
        raise ValueError("test_mask must be one bool per row with both train and test rows")
    finite_dims = np.isfinite(codes).all(axis=0)
    clean = np.where(finite_dims, codes, 0.0)
    code_variance = clean.var(axis=0)
    scores = np.empty((codes.shape[1], factors.shape[1]))
    train_codes, test_codes = clean[~test_mask], clean[test_mask].astype(np.float32)
    for k in range(factors.shape[1]):
        column = factors[:, k]
        if not np.isfinite(column).all() or column.var() <= 0:
            scores[:, k] = np.nan
        elif flags[k]:
            scores[:, k] = _nearest_mean_scores(train_codes, column[~test_mask], test_codes, column[test_mask])
        else:
            scores[:, k] = _r_squared_columns(clean, code_variance, column)
    scores[code_variance <= TINY_VARIANCE] = 0.0
    scores[~finite_dims] = np.nan
    return scores


def sap_score(
    codes: np.ndarray,
    factors: np.ndarray,
    discrete: bool | np.ndarray,
    test_mask: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray | float]:
    """Separated Attribute Predictability (Kumar et al., 2018).

    ``SAP = mean_k (S[j1, k] - S[j2, k])`` with ``S`` the score matrix of :func:`sap_score_matrix` and
    ``j1, j2`` the dimensions with the largest and second largest score for factor ``k``. Range [0, 1],
    higher is better: high when each factor is predictable from one dimension and not from any other.

    Returns:
        ``{"sap": float, "per_factor": (K,), "score_matrix": (Dz, K)}``.
    """
    matrix = sap_score_matrix(codes, factors, discrete, test_mask, seed)
    per_factor = top_two_gap(matrix)
    return {"sap": float(np.mean(per_factor)), "per_factor": per_factor, "score_matrix": matrix}


def best_dimension_scores(matrix: np.ndarray, dims: np.ndarray, factors: np.ndarray) -> float:
    """``mean_{k in factors} max_{j in dims} S[j, k]``: how well the best single dimension of a block of
    the code predicts each factor of a kind, on average (NaN propagates)."""
    block = np.asarray(matrix, dtype=np.float64)[np.ix_(np.asarray(dims), np.asarray(factors))]
    if block.size == 0:
        return math.nan
    best = np.where(np.isnan(block).any(axis=0), np.nan, block.max(axis=0))
    return float(np.mean(best))
