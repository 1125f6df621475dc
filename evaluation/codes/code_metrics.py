"""The scores of content/motion codes against the true factors (:mod:`evaluation.codes.factors`): SAP, MIG,
correlation and linear probes, as one pure function of arrays, :func:`code_metrics`. Each key's definition
is in the table of :mod:`evaluation.disentanglement`; the maths in :mod:`evaluation.codes.sap`,
:mod:`evaluation.codes.information` (MIG), :mod:`evaluation.codes.correlation` and :mod:`evaluation.codes.probes`.

**Unit.** Motion codes are per frame, so SAP and MIG score (video, frame) rows: the code ``[c, m_t]``
against ``[n, y_t]`` (content code and factors repeated over frames; repetition leaves R^2, MI and the
classifiers' targets unchanged). Held-out splits are by video.

**SAP blocks.** ``sap_X_Y`` is the best single-dimension score (not a gap) of code X for factors of kind
Y: a leak spread over several dimensions would shrink a gap and look clean, but cannot hide from the
best dimension. A perfectly disentangled code has ``sap_content_content = sap_motion_motion = 1`` and
cross terms near 0; the gaps (``sap_disentanglement`` and MIG) then add whether each factor sits in one
dimension. Correlations are taken frame by frame across videos, because the implicit protocol's
``m_t = mu_t - mean_t mu_t`` is uncorrelated with ``c`` by construction once frames are pooled.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evaluation.codes.chance import chance_rescaled
from evaluation.codes.correlation import correlation_scores
from evaluation.codes.factors import (
    CONTENT_FACTOR_NAMES,
    MOTION_FACTOR_NAMES,
    content_factors,
    motion_factors,
)
from evaluation.codes.information import mig_score
from evaluation.codes.probes import classification_probe, regression_probe, split_mask
from evaluation.codes.sap import best_dimension_scores, sap_score


def code_metrics(
    content: np.ndarray,
    motion: np.ndarray,
    labels: np.ndarray,
    trajectory: np.ndarray,
    seed: int = 0,
    max_probe_rows: int = 10_000,
) -> dict[str, Any]:
    """SAP, MIG, correlation and probe scores of content/motion codes against the true factors.

    Args:
        content: ``(N, Dc)`` content codes.
        motion: ``(N, T, Dm)`` motion codes.
        labels: ``(N, D)`` digit classes.
        trajectory: ``(N, T, D, 2)`` digit corners (pixels).
        seed: seed of the held-out split (20% of the videos) and of the probe subsample.
        max_probe_rows: at most this many (video, frame) rows train a per-frame probe.

    Returns:
        ``CODE_KEYS`` (:mod:`evaluation.metric_names`; defined in the table of
        :mod:`evaluation.disentanglement`) as floats and ``"notes"`` (list of str).
    """
    content, motion = np.asarray(content, dtype=np.float64), np.asarray(motion, dtype=np.float64)
    num_videos, num_frames = motion.shape[:2]
    if content.ndim != 2 or motion.ndim != 3 or len(content) != num_videos or num_videos < 5:
        raise ValueError(f"expected content (N, Dc), motion (N, T, Dm), N >= 5; got {content.shape}, {motion.shape}")
    notes = []
    counts = content_factors(labels).astype(np.float64)  # (N, 10)
    positions = motion_factors(trajectory)  # (N, T, 4)
    test_videos = split_mask(num_videos, seed=seed)
    # A class count needs two values among the training and among the held-out videos to be scored.
    keep_content = (counts[test_videos].std(axis=0) > 0) & (counts[~test_videos].std(axis=0) > 0)
    keep_motion = positions.reshape(-1, positions.shape[-1]).std(axis=0) > 0
    dropped = [n for n, keep in zip(CONTENT_FACTOR_NAMES + MOTION_FACTOR_NAMES,
                                    np.concatenate([keep_content, keep_motion]), strict=True) if not keep]
    if dropped:
        notes.append(f"factors constant on the evaluated (training or held-out) videos, left out of SAP/MIG: {dropped}")
    counts, positions = counts[:, keep_content], positions[..., keep_motion]
    num_content, num_motion = counts.shape[1], positions.shape[-1]

    # (video, frame) rows: [c, m_t] against [n, y_t]
    codes = np.concatenate([np.repeat(content, num_frames, axis=0), motion.reshape(num_videos * num_frames, -1)], 1)
    factors = np.concatenate([np.repeat(counts, num_frames, axis=0), positions.reshape(-1, num_motion)], 1)
    discrete = np.array([True] * num_content + [False] * num_motion)
    test_rows = np.repeat(test_videos, num_frames)
    content_dims, motion_dims = np.arange(content.shape[1]), np.arange(content.shape[1], codes.shape[1])
    content_cols, motion_cols = np.arange(num_content), np.arange(num_content, num_content + num_motion)

    sap = sap_score(codes, factors, discrete, test_rows)
    matrix, gaps = sap["score_matrix"], sap["per_factor"]
    mig = mig_score(codes, factors, discrete)["per_factor"]
    results: dict[str, Any] = {
        "sap_content_content": best_dimension_scores(matrix, content_dims, content_cols),
        "sap_content_motion": best_dimension_scores(matrix, content_dims, motion_cols),
        "sap_motion_motion": best_dimension_scores(matrix, motion_dims, motion_cols),
        "sap_motion_content": best_dimension_scores(matrix, motion_dims, content_cols),
        "sap_disentanglement": sap["sap"],
        "sap_content": float(np.mean(gaps[content_cols])) if num_content else math.nan,
        "sap_motion": float(np.mean(gaps[motion_cols])) if num_motion else math.nan,
        "mig": float(np.mean(mig)),
        "mig_content": float(np.mean(mig[content_cols])) if num_content else math.nan,
        "mig_motion": float(np.mean(mig[motion_cols])) if num_motion else math.nan,
    }
    correlation = correlation_scores(content, motion)
    for key in ("mean_abs_correlation", "max_abs_correlation", "correlation_chance"):
        results[key] = correlation[key]

    # Linear probes, trained on 80% of the videos, scored on the other 20%.
    train, test = ~test_videos, test_videos
    sorted_labels = np.sort(np.asarray(labels), axis=1)
    frame_rows = np.flatnonzero(np.repeat(train, num_frames))
    if len(frame_rows) > max_probe_rows:
        frame_rows = np.sort(np.random.default_rng(seed).choice(frame_rows, max_probe_rows, replace=False))
    motion_rows = motion.reshape(num_videos * num_frames, -1)
    test_frame_rows = np.flatnonzero(np.repeat(test, num_frames))
    test_groups = test_frame_rows // num_frames
    from_content, from_motion = [], []
    for slot in range(sorted_labels.shape[1]):
        slot_labels = np.repeat(sorted_labels[:, slot], num_frames)
        from_content.append(classification_probe(content[train], sorted_labels[train, slot],
                                                 content[test], sorted_labels[test, slot]))
        from_motion.append(classification_probe(motion_rows[frame_rows], slot_labels[frame_rows],
                                                motion_rows[test_frame_rows], slot_labels[test_frame_rows],
                                                test_groups=test_groups))
    position_rows = positions.reshape(num_videos * num_frames, -1)
    motion_probe = regression_probe(motion_rows[frame_rows], position_rows[frame_rows],
                                    motion_rows[test_frame_rows], position_rows[test_frame_rows])
    flat_positions = positions.reshape(num_videos, -1)
    content_probe = regression_probe(content[train], flat_positions[train], content[test], flat_positions[test])
    chance = float(np.mean([probe["chance"] for probe in from_content]))
    results.update(
        probe_content_from_content=float(np.mean([probe["accuracy"] for probe in from_content])),
        probe_content_from_motion=float(np.mean([probe["accuracy"] for probe in from_motion])),
        probe_content_chance=chance,
        probe_motion_from_motion=motion_probe["r2"],
        probe_motion_from_content=content_probe["r2"],
        probe_motion_chance=motion_probe["chance"],
    )
    informative = chance_rescaled(results["probe_content_from_content"], chance) - chance_rescaled(
        results["probe_content_from_motion"], chance
    )
    motion_informative = float(np.clip(motion_probe["r2"], 0, 1) - np.clip(content_probe["r2"], 0, 1))
    results["overall_disentanglement"] = 0.5 * (informative + motion_informative)
    results["notes"] = notes
    return results
