"""Pure disentanglement maths on numpy arrays: SAP, MIG, correlations, linear probes and judge scores.

Every function takes arrays (no model, no loader) and returns arrays or a dict with stable keys, so each
can be tested against a hand-computed case. :mod:`evaluation.disentanglement` feeds them a model's codes
and Moving MNIST's ground-truth factors. Conventions: ``codes`` are ``(N, Dz)``, ``factors`` ``(N, K)``,
``discrete`` says per factor whether it is a class (``True``) or a continuous value (``False``).
Logarithms are natural (nats). Non-finite inputs give NaN outputs; nothing is silently dropped.
"""

from __future__ import annotations

import math

import numpy as np

NUM_BINS = 20  # disentanglement_lib's MIG discretisation
_TINY_VARIANCE = 1e-12  # disentanglement_lib's threshold for a "dead" code dimension
_CHUNK_ELEMENTS = 4_000_000  # cap on the size of temporary arrays (elements)


# ----------------------------------------------------------------------------------------------------
# Input checks and discretisation


def _as_matrix(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as float64 ``(N, K)`` (a 1-D array becomes one column)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"expected {name} of shape (N, K), got {array.shape}")
    return array


def _check_codes_factors(
    codes: np.ndarray, factors: np.ndarray, discrete: bool | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, factors = _as_matrix("codes", codes), _as_matrix("factors", factors)
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
    values = _as_matrix("values", values)
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
    codes, factors, flags = _check_codes_factors(codes, factors, discrete)
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
# SAP


def split_mask(num_groups: int, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """A seeded held-out mask over ``num_groups`` items: ``round(test_fraction * n)`` of them (at least one,
    and at least one left for training when ``n >= 2``) are ``True``."""
    if num_groups < 2:
        raise ValueError(f"need at least 2 items to hold some out, got {num_groups}")
    num_test = min(max(1, round(test_fraction * num_groups)), num_groups - 1)
    mask = np.zeros(num_groups, dtype=bool)
    mask[np.random.default_rng(seed).permutation(num_groups)[:num_test]] = True
    return mask


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
    codes, factors, flags = _check_codes_factors(codes, factors, discrete)
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
    scores[code_variance <= _TINY_VARIANCE] = 0.0
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


# ----------------------------------------------------------------------------------------------------
# Correlation between two codes


def correlation_scores(content: np.ndarray, motion: np.ndarray) -> dict[str, np.ndarray | float]:
    """Linear dependence between content and (per-frame) motion codes, frame by frame across videos.

    ``R_t[i, j]`` is the Pearson correlation, across the ``N`` videos, of content dimension ``c_i`` with
    motion dimension ``m_{t, j}`` at frame ``t``. ``mean_abs_correlation = mean_{t,i,j} |R_t[i, j]|`` and
    ``max_abs_correlation = max_{i,j} mean_t |R_t[i, j]|`` (the most dependent pair, its per-frame |r|
    averaged over frames so the maximum is not taken over ``T`` times more noisy estimates). Frames are
    kept apart because pooling (video, frame) pairs would make the implicit protocol of Baseline/LSTM
    (``m_t = mu_t - mean_t mu_t``) uncorrelated with ``c`` by construction. A dimension that is constant
    across videos (variance <= 1e-12) has correlation 0 (it carries nothing). ``correlation_chance`` is ``E|r|`` for
    independent Gaussian codes, ``sqrt(2 / (pi (N - 1)))``, the floor that finite ``N`` leaves.
    Range [0, 1], lower is better.

    Args:
        content: ``(N, Dc)``.
        motion: ``(N, T, Dm)``, or ``(N, Dm)`` for a single frame.

    Returns:
        ``{"mean_abs_correlation", "max_abs_correlation", "correlation_chance": float,
        "abs_correlation": (Dc, Dm) mean over frames of |R_t|}``.
    """
    content = _as_matrix("content", content)
    motion = np.asarray(motion, dtype=np.float64)
    motion = motion[:, None] if motion.ndim == 2 else motion
    if motion.ndim != 3 or motion.shape[0] != content.shape[0] or content.shape[0] < 2:
        raise ValueError(f"expected content (N, Dc) and motion (N, T, Dm), N >= 2; got {content.shape}, {motion.shape}")
    if not (np.isfinite(content).all() and np.isfinite(motion).all()):
        nan = np.full((content.shape[1], motion.shape[2]), np.nan)
        return {"mean_abs_correlation": math.nan, "max_abs_correlation": math.nan,
                "correlation_chance": math.sqrt(2.0 / (math.pi * (len(content) - 1))), "abs_correlation": nan}

    def standardise(values: np.ndarray) -> np.ndarray:
        """Zero mean, unit variance across videos (axis 0); dead dimensions become all 0."""
        centred = values - values.mean(axis=0)
        variance = (centred**2).mean(axis=0)
        alive = variance > _TINY_VARIANCE
        return np.where(alive, centred / np.sqrt(np.where(alive, variance, 1.0)), 0.0)

    content_z = standardise(content)  # (N, Dc)
    motion_z = standardise(motion)  # (N, T, Dm)
    num_frames, motion_dim = motion.shape[1:]
    per_frame = content_z.T @ motion_z.reshape(len(content), -1) / len(content)  # (Dc, T * Dm)
    per_frame = per_frame.reshape(-1, num_frames, motion_dim).transpose(1, 0, 2)  # (T, Dc, Dm)
    absolute = np.abs(per_frame)
    averaged = absolute.mean(axis=0)
    return {
        "mean_abs_correlation": float(absolute.mean()),
        "max_abs_correlation": float(averaged.max()),
        "correlation_chance": math.sqrt(2.0 / (math.pi * (len(content) - 1))),
        "abs_correlation": averaged,
    }


# ----------------------------------------------------------------------------------------------------
# Linear probes on a held-out split


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
    train_x, test_x = _as_matrix("train_x", train_x), _as_matrix("test_x", test_x)
    train_y, test_y = _as_matrix("train_y", train_y), _as_matrix("test_y", test_y)
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
