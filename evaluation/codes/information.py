"""Information-theoretic scores on numpy arrays: discretisation, entropy, mutual information, MIG, the
top-two gap MIG and SAP share, and the Inception Score of a judge classifier.

Also the input checks every code score uses. Conventions: ``codes`` are ``(N, Dz)``, ``factors``
``(N, K)``, ``discrete`` says per factor whether it is a class (``True``) or a continuous value
(``False``). Logarithms are natural (nats). Non-finite inputs give NaN outputs; nothing is silently dropped.
"""

from __future__ import annotations

import math

import numpy as np

NUM_BINS = 20  # disentanglement_lib's MIG discretisation
TINY_VARIANCE = 1e-12  # disentanglement_lib's threshold for a "dead" code dimension
_CHUNK_ELEMENTS = 4_000_000  # cap on the size of temporary arrays (elements)


# ----------------------------------------------------------------------------------------------------
# Input checks and discretisation


def as_matrix(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as float64 ``(N, K)`` (a 1-D array becomes one column)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"expected {name} of shape (N, K), got {array.shape}")
    return array


def check_codes_factors(
    codes: np.ndarray, factors: np.ndarray, discrete: bool | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``codes (N, Dz)``, ``factors (N, K)`` as float64 and ``discrete`` as one bool per factor; raises
    ``ValueError`` on mismatched or too few rows."""
    codes, factors = as_matrix("codes", codes), as_matrix("factors", factors)
    if codes.shape[0] != factors.shape[0] or codes.shape[0] < 2:
        raise ValueError(
            f"codes {codes.shape} and factors {factors.shape} must have the same number N >= 2 of rows"
        )
    flags = np.asarray(discrete, dtype=bool)
    if flags.ndim == 0:
        flags = np.full(factors.shape[1], bool(flags))
    if flags.shape != (factors.shape[1],):
        raise ValueError(f"discrete must be a bool or one bool per factor ({factors.shape[1]}), got {flags.shape}")
    return codes, factors, flags


def discretize(values: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Equal-width histogram bins per column (disentanglement_lib's ``histogram_discretize``).

    Each column's range ``[min, max]`` is cut into ``num_bins`` equal bins (the maximum falls in the last);
    a constant column is all bin 0. Bin ``b`` holds ``min + b w <= x < min + (b + 1) w``, as
    ``np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1``.

    Args:
        values: ``(N, K)`` finite values (a 1-D array is one column).
        num_bins: number of bins.

    Returns:
        ``(N, K)`` int64 bin indices in ``[0, num_bins)``.
    """
    values = as_matrix("values", values)
    low = values.min(axis=0)
    span = values.max(axis=0) - low
    scaled = (values - low) / np.where(span > 0, span, 1.0) * num_bins
    return np.clip(np.floor(scaled), 0, num_bins - 1).astype(np.int64)


def _factor_labels(column: np.ndarray, discrete: bool, num_bins: int) -> np.ndarray:
    """Class indices ``0..K-1`` of a factor: its distinct values if discrete, else its histogram bins."""
    if not discrete:
        column = discretize(column, num_bins)[:, 0]
    return np.unique(column, return_inverse=True)[1].reshape(-1)


# ----------------------------------------------------------------------------------------------------
# Mutual information and MIG


def entropy(labels: np.ndarray) -> float:
    """Entropy ``H(y) = -sum_k p_k log p_k`` (nats) of integer labels."""
    probabilities = np.bincount(np.asarray(labels).reshape(-1)) / np.asarray(labels).size
    probabilities = probabilities[probabilities > 0]
    return float(-(probabilities * np.log(probabilities)).sum())


def mutual_information(code_bins: np.ndarray, labels: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Mutual information (nats) between each discretised code dimension and each discrete factor.

    ``I(z_j; y) = sum_{b,k} p(b, k) log(p(b, k) / (p(b) p(k)))`` from the empirical joint histogram
    (sklearn's ``mutual_info_score``), all dimensions at once with one ``bincount`` per factor and chunk.

    Args:
        code_bins: ``(N, Dz)`` non-negative integer bins.
        labels: one ``(N,)`` array of non-negative integer classes per factor (or a single array).

    Returns:
        ``(Dz, K)`` (``(Dz,)`` for a single label array).
    """
    single = isinstance(labels, np.ndarray) and labels.ndim == 1
    labels = [np.asarray(labels, dtype=np.int64)] if single else [np.asarray(y, dtype=np.int64) for y in labels]
    code_bins = np.asarray(code_bins, dtype=np.int64)
    num_rows, num_dims = code_bins.shape
    num_code_bins = int(code_bins.max()) + 1
    result = np.empty((num_dims, len(labels)))
    chunk = max(1, _CHUNK_ELEMENTS // max(num_rows, 1))
    for start in range(0, num_dims, chunk):
        width = min(chunk, num_dims - start)
        cells = code_bins[:, start : start + width] + num_code_bins * np.arange(width)  # (N, w)
        for k, factor in enumerate(labels):
            num_labels = int(factor.max()) + 1
            joint = np.bincount((cells * num_labels + factor[:, None]).reshape(-1),
                                minlength=width * num_code_bins * num_labels)
            joint = joint.reshape(width, num_code_bins, num_labels) / num_rows  # p(b, k) per dimension
            outer = joint.sum(axis=2, keepdims=True) * joint.sum(axis=1, keepdims=True)  # p(b) p(k)
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(joint > 0, joint * np.log(joint / outer), 0.0)
            result[start : start + width, k] = terms.sum(axis=(1, 2))
    return result[:, 0] if single else result


def top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column, the largest entry minus the second largest (0 stands in for a missing second).

    A NaN anywhere in a column makes its gap NaN.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape[0] == 1:
        return matrix[0].copy()
    ordered = np.sort(matrix, axis=0)  # NaN sorts last, so it lands in the top slot
    gap = ordered[-1] - ordered[-2]
    return np.where(np.isnan(matrix).any(axis=0), np.nan, gap)


def mig_score(
    codes: np.ndarray, factors: np.ndarray, discrete: bool | np.ndarray, num_bins: int = NUM_BINS
) -> dict[str, np.ndarray | float]:
    """Mutual Information Gap (Chen et al., 2018, "Isolating Sources of Disentanglement in VAEs").

    ``MIG = mean_k (I(z_{j1}; y_k) - I(z_{j2}; y_k)) / H(y_k)``, with ``j1, j2`` the code dimensions of
    largest and second largest mutual information with factor ``k``. As disentanglement_lib: each code
    dimension is discretised into ``num_bins`` equal-width bins (:func:`discretize`) and the MI is the
    empirical discrete MI; continuous factors are discretised the same way, discrete factors used as they
    are. Range [0, 1], higher is better: 1 when each factor is carried by exactly one dimension.

    Args:
        codes: ``(N, Dz)`` representations.
        factors: ``(N, K)`` ground-truth factors.
        discrete: per factor (or one for all) whether it is discrete.
        num_bins: bins for the code (and continuous factor) discretisation.

    Returns:
        ``{"mig": float, "per_factor": (K,), "mutual_information": (Dz, K), "entropy": (K,)}``. A
        constant factor (``H = 0``) or a non-finite code dimension makes the affected values NaN.
    """
    codes, factors, flags = check_codes_factors(codes, factors, discrete)
    finite_dims = np.isfinite(codes).all(axis=0)
    code_bins = discretize(np.where(finite_dims, codes, 0.0), num_bins)
    finite_factors = np.isfinite(factors).all(axis=0)
    labels = [_factor_labels(np.where(finite_factors[k], factors[:, k], 0.0), flags[k], num_bins)
              for k in range(factors.shape[1])]
    information = mutual_information(code_bins, labels)  # (Dz, K)
    entropies = np.array([entropy(factor) for factor in labels])
    information[:, ~finite_factors] = np.nan
    entropies[~finite_factors] = np.nan
    information[~finite_dims] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(entropies > 0, top_two_gap(information) / entropies, np.nan)
    return {
        "mig": float(np.mean(per_factor)),
        "per_factor": per_factor,
        "mutual_information": information,
        "entropy": entropies,
    }


# ----------------------------------------------------------------------------------------------------
# Inception Score of a judge classifier


def inception_score(probabilities: np.ndarray) -> dict[str, float]:
    """Inception Score with a judge classifier (Salimans et al., 2016; as DSVAE/S3VAE report it).

    ``IS = exp(E_x KL(p(y|x) || p(y)))`` with ``p(y) = E_x p(y|x)``; also ``H(y|x) = E_x H(p(y|x))``
    (low: each sample is recognisable) and ``H(y) = H(p(y))`` (high: samples are diverse). Rows are
    renormalised to sum to 1. ``IS`` lies in ``[1, number of classes]``.

    Args:
        probabilities: ``(N, K)`` class probabilities of N samples.

    Returns:
        ``{"inception_score", "entropy_conditional", "entropy_marginal"}`` (nats).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not np.isfinite(p).all():
        return dict.fromkeys(("inception_score", "entropy_conditional", "entropy_marginal"), math.nan)
    p = p / p.sum(axis=1, keepdims=True)
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
        kl = (plogp - np.where(p > 0, p * np.log(marginal), 0.0)).sum(axis=1)
        marginal_entropy = -np.where(marginal > 0, marginal * np.log(marginal), 0.0).sum()
    return {
        "inception_score": float(np.exp(kl.mean())),
        "entropy_conditional": float(-plogp.sum(axis=1).mean()),
        "entropy_marginal": float(marginal_entropy),
    }
