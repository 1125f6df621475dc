"""Content/motion disentanglement metrics, the same for all three video VAEs.

Every number comes from the common model API (``split``, ``combine``, ``sample``, ``sample_factors``), so
the Baseline VAE, the LSTM-VAE (implicit protocol: content = time-average of the per-frame means, motion =
deviation) and the Disentangled VAE sit side by side. The maths lives in
:mod:`evaluation.sap`, :mod:`evaluation.information` (MIG), :mod:`evaluation.correlation` and
:mod:`evaluation.probes`; the swaps in :mod:`evaluation.swap_protocol`.

**Factors.** Moving MNIST's digit slots come in random order, so every factor scored is symmetric in them:

* content (per video, discrete): the per-class digit counts ``n_k = #{d : label_d = k}``, k = 0..9, the
  multi-hot description of *which* digits a video shows; the sorted labels for probes and judges;
* motion (per frame, continuous, pixels): ``mean_x``, ``mean_y`` (centroid of the digits' top-left
  corners) and ``spread_x``, ``spread_y`` (mean over digit pairs of ``|x_i - x_j|``, ``|y_i - y_j|``):
  *where* the digits are. For 2 digits they give the unordered x- and y-pairs (only the sign of
  ``dx * dy`` is lost). A factor that is constant on the evaluated videos (spreads with 1 digit, a class
  that never occurs) is left out, with a note.

**Unit.** Motion codes are per frame, so SAP and MIG score (video, frame) rows: the code ``[c, m_t]``
against ``[n, y_t]`` (content code and factors repeated over frames; repetition leaves R^2, MI and the
classifiers' targets unchanged). Held-out splits are by video. Swaps follow
:mod:`evaluation.swap_protocol`: video ``A = i`` takes the motion of ``B = i - 1`` in loader order (the
first video takes the first batch's last) and the swap decodes ``combine(c_A, m_B)``: "A's digits moving
like B".

**SAP blocks.** ``sap_X_Y`` is the best single-dimension score (not a gap) of code X for factors of kind
Y: a leak spread over several dimensions would shrink a gap and look clean, but cannot hide from the
best dimension. A perfectly disentangled code has ``sap_content_content = sap_motion_motion = 1`` and
cross terms near 0; the gaps (``sap_disentanglement`` and MIG) then add whether each factor sits in one
dimension. Correlations are taken frame by frame across videos, because the implicit protocol's
``m_t = mu_t - mean_t mu_t`` is uncorrelated with ``c`` by construction once frames are pooled.

======================================== ====================================================== ========== ======
key                                      definition                                             range      better
======================================== ====================================================== ========== ======
``sap_content_content``                  ``mean_{k content} max_{j in c} S[j, k]``: S the SAP   [0, 1]     higher
                                         score matrix (R^2 or adjusted accuracy of one
                                         dimension)
``sap_content_motion``                   ``mean_{k motion} max_{j in c} S[j, k]``               [0, 1]     lower
``sap_motion_motion``                    ``mean_{k motion} max_{j in m} S[j, k]``               [0, 1]     higher
``sap_motion_content``                   ``mean_{k content} max_{j in m} S[j, k]``              [0, 1]     lower
``sap_disentanglement``                  SAP (Kumar et al. 2018) of ``[c, m_t]`` over all       [0, 1]     higher
                                         factors: ``mean_k (S[j1, k] - S[j2, k])``, j1, j2 the
                                         top two dimensions
``sap_content``                          the same gap averaged over the content factors only    [0, 1]     higher
``sap_motion``                           the same gap averaged over the motion factors only     [0, 1]     higher
``mig``                                  MIG (Chen et al. 2018) of ``[c, m_t]`` over all        [0, 1]     higher
                                         factors, 20 equal-width bins: ``mean_k (I(z_j1; y_k) -
                                         I(z_j2; y_k)) / H(y_k)``
``mig_content``                          MIG over the content factors only                      [0, 1]     higher
``mig_motion``                           MIG over the motion factors only                       [0, 1]     higher
``mean_abs_correlation``                 ``mean_{t,i,j} |corr_videos(c_i, m_{t,j})|``           [0, 1]     lower
``max_abs_correlation``                  ``max_{i,j} mean_t |corr_videos(c_i, m_{t,j})|``       [0, 1]     lower
``correlation_chance``                   ``sqrt(2 / (pi (N - 1)))``: E|r| of independent codes  [0, 1]     ref.
``probe_content_from_content``           held-out accuracy of a linear classifier (LDA) ``c ->  [0, 1]     higher
                                         sorted labels``, mean over digit slots
``probe_content_from_motion``            the same from ``m_t`` (per frame; log-probabilities    [0, 1]     lower
                                         summed over a video's frames, accuracy per video)
``probe_content_chance``                 accuracy of always answering the majority training     [0, 1]     ref.
                                         class
``probe_motion_from_motion``             held-out R^2 of ridge ``m_t -> y_t`` (per frame, mean  <= 1       higher
                                         over factors)
``probe_motion_from_content``            held-out R^2 of ridge ``c -> (y_0, ..., y_{T-1})``     <= 1       lower
                                         (per video)
``probe_motion_chance``                  R^2 of the training mean for ``y_t`` (about 0)         <= 0       ref.
``overall_disentanglement``              ``((I_c - L_c) + (I_m - L_m)) / 2``: I_c, L_c the      [-1, 1]    higher
                                         content probes from c and from m rescaled ``(a -
                                         chance) / (1 - chance)``, I_m, L_m the motion R^2 from
                                         m and from c; each clipped to [0, 1]
``swap_fidelity_psnr``                   mean per-frame PSNR (dB) of ``combine(c_A, m_B)``      [0, inf]   higher
                                         against the exact render of A's digit images along B's
                                         trajectories, with the digit-to-trajectory assignment
                                         of highest PSNR per video
``swap_fidelity_ssim``                   mean per-frame SSIM against the same ideal render      [-1, 1]    higher
``judge_content_digit_accuracy``         content judge's digit accuracy on the real videos A:   [0, 1]     higher
                                         the ceiling of the judged accuracies
``judge_motion_trajectory_error_px``     motion judge's trajectory error on the real videos A:  px         lower
                                         the floor of the judged errors
``recon_content_accuracy``               digit accuracy of ``combine(c_A, m_A)`` against A's    [0, 1]     higher
                                         labels
``recon_trajectory_error_px``            trajectory error of ``combine(c_A, m_A)`` against A's  px         lower
                                         trajectories
``content_accuracy_chance``              digit accuracy of B's true labels against A's          [0, 1]     ref.
``trajectory_error_chance_px``           trajectory error of B's true trajectories against A's  px         ref.
``content_preservation``                 digit accuracy of the swap ``combine(c_A, m_B)``       [0, 1]     higher
                                         against A's labels
``swap_content_leak_accuracy``           digit accuracy of the swap against B's labels (near    [0, 1]     lower
                                         content_accuracy_chance when m carries no identity)
``swap_trajectory_error_px``             trajectory error of the swap against B's trajectories  px         lower
``motion_correlation``                   Pearson r of the swap's judged trajectories with B's   [-1, 1]    higher
                                         true ones, pooled over coordinates after each video's
                                         best digit assignment
``motion_correlation_chance``            the same r with A's true trajectories in place of the  [-1, 1]    ref.
                                         judged ones
``swap_quality``                         ``sqrt(P * M)``, ``P = (content_preservation - cc) /   [0, 1]     higher
                                         (1 - cc)``, ``M = (motion_correlation - mc) / (1 -
                                         mc)`` with cc, mc the two chances, each clipped to [0,
                                         1]: both halves of the swap must work
``content_swap_score``                   P of ``swap_quality``: the chance-rescaled content     [0, 1]     higher
                                         preservation of the swap
``motion_swap_score``                    M of ``swap_quality``: the chance-rescaled motion      [0, 1]     higher
                                         correlation of the swap
``resample_motion_content_accuracy``     ``combine(c_A, m ~ prior)``: digit accuracy against    [0, 1]     higher
                                         A's labels (kept)
``resample_motion_trajectory_error_px``  the same video's trajectory error against A's          px         higher
                                         (changed: near trajectory_error_chance_px when the
                                         motion really is new)
``resample_content_trajectory_error_px`` ``combine(c ~ prior, m_A)``: trajectory error against  px         lower
                                         A's (kept)
``resample_content_content_accuracy``    the same video's digit accuracy against A's labels     [0, 1]     lower
                                         (changed: near content_accuracy_chance)
``sample_inception_score``               ``exp(E_x KL(p(y|x) || p(y)))`` of the content judge's [1, 10]    higher
                                         class probabilities on ``model.sample`` videos
``sample_entropy_conditional``           ``H(y|x)`` in nats                                     [0, ln 10] lower
``sample_entropy_marginal``              ``H(y)`` in nats                                       [0, ln 10] higher
``num_videos``                           N, the videos evaluated (int)                          n/a        n/a
``num_frames``                           T, frames per video (int)                              n/a        n/a
``notes``                                list of strings: what was skipped or left out, and why n/a        n/a
======================================== ====================================================== ========== ======

Digit accuracy is order-free (multiset overlap / D) and trajectory error is the mean Euclidean distance
in pixels under the best digit permutation (the definitions of
:mod:`evaluation.judges`). The judged keys need ``judges`` (``None`` leaves them NaN with a note) and the
resampling keys need ``model.sample_factors``. The Inception Score uses
``judges.content_probabilities(video) -> (B, 10)`` when the judges have it, else the per-digit class
probabilities of ``judges.read_content_log_probs(video) -> (B, D, 10)`` (each tracked digit is one
classified object, as each single-digit sequence is in DSVAE/S3VAE). Non-finite values stay NaN (PSNR
may be +inf for a perfect swap).
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from evaluation import judges as judges_module
from evaluation.correlation import correlation_scores
from evaluation.information import mig_score, top_two_gap
from evaluation.metric_names import DISENTANGLEMENT_OUTPUT_KEYS, FIDELITY_KEYS, JUDGED_KEYS
from evaluation.metrics import eval_mode
from evaluation.probes import classification_probe, regression_probe, split_mask
from evaluation.sap import best_dimension_scores, sap_score_matrix
from evaluation.swap_protocol import JudgedTally, chance_rescaled, motion_partners, swap_fidelity
from utils.devices import resolve_device

NUM_CLASSES = 10
CONTENT_FACTOR_NAMES = tuple(f"count_{k}" for k in range(NUM_CLASSES))
MOTION_FACTOR_NAMES = ("mean_x", "mean_y", "spread_x", "spread_y")
_REQUIRED_BATCH_KEYS = ("video", "labels", "digit_ids", "trajectory")


# ----------------------------------------------------------------------------------------------------
# Order-free factors


def content_factors(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-class digit counts ``n_k = #{d : labels[d] = k}``: ``(B, D)`` labels -> ``(B, num_classes)``."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 2:
        raise ValueError(f"expected labels of shape (B, D), got {labels.shape}")
    return np.eye(num_classes, dtype=np.int64)[labels].sum(axis=1)


def motion_factors(trajectory: np.ndarray) -> np.ndarray:
    """Per-frame centroid and spread of the digits' corners: ``(B, T, D, 2)`` -> ``(B, T, 4)``.

    Columns ``MOTION_FACTOR_NAMES``: ``mean_x, mean_y`` (mean over digits) and ``spread_x, spread_y``
    (mean over digit pairs of ``|x_i - x_j|``; 0 for a single digit). Symmetric in the digit slots.
    """
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.ndim != 4 or trajectory.shape[-1] != 2:
        raise ValueError(f"expected a trajectory of shape (B, T, D, 2), got {trajectory.shape}")
    pairs = list(itertools.combinations(range(trajectory.shape[2]), 2))
    if pairs:
        first, second = (list(side) for side in zip(*pairs, strict=True))
        spread = np.abs(trajectory[:, :, first] - trajectory[:, :, second]).mean(axis=2)  # (B, T, 2)
    else:
        spread = np.zeros(trajectory.shape[:2] + (2,))
    return np.concatenate([trajectory.mean(axis=2), spread], axis=-1)


# ----------------------------------------------------------------------------------------------------
# Scores of the codes (SAP, MIG, correlation, probes): pure functions of arrays


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
        The ``CODE_KEYS`` of the module table (floats) and ``"notes"`` (list of str).
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

    matrix = sap_score_matrix(codes, factors, discrete, test_rows)
    gaps = top_two_gap(matrix)
    mig = mig_score(codes, factors, discrete)["per_factor"]
    results: dict[str, Any] = {
        "sap_content_content": best_dimension_scores(matrix, content_dims, content_cols),
        "sap_content_motion": best_dimension_scores(matrix, content_dims, motion_cols),
        "sap_motion_motion": best_dimension_scores(matrix, motion_dims, motion_cols),
        "sap_motion_content": best_dimension_scores(matrix, motion_dims, content_cols),
        "sap_disentanglement": float(np.mean(gaps)),
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


def _resolve_judges(judges: Any, loader: Any, device: torch.device, notes: list[str]) -> Any:
    if isinstance(judges, str):
        if judges != "auto":
            raise ValueError(f"judges must be 'auto', None or a judges object, got {judges!r}")
        dataset = getattr(loader, "dataset", None)
        config = getattr(dataset, "config", None)
        if config is None:
            raise ValueError("judges='auto' needs loader.dataset.config (a MovingMNISTConfig) to build the judges")
        return judges_module.get_judges(config, device, digits=getattr(dataset, "digits", None))
    if judges is None:
        notes.append("judges=None: judged swap/resampling/sample metrics are NaN")
    return judges


# ----------------------------------------------------------------------------------------------------
# The whole suite over a model and a loader


def _factor_batches(loader: Iterable, max_samples: int) -> Iterator[dict[str, Tensor]]:
    """The loader's batch dicts, cut to ``max_samples`` videos in all; checks the factors are there."""
    seen = 0
    for batch in loader:
        if seen >= max_samples:
            break
        missing = [key for key in _REQUIRED_BATCH_KEYS if not isinstance(batch, Mapping) or key not in batch]
        if missing:
            raise ValueError(
                f"disentanglement metrics need batches with ground-truth factors; missing {missing} "
                "(use a data.MovingMNIST loader, not the standard test file)"
            )
        take = min(batch["video"].shape[0], max_samples - seen)
        seen += take
        yield {key: value[:take] for key, value in batch.items() if isinstance(value, Tensor)}


def compute_all_disentanglement_metrics(
    model: Any,
    loader: Iterable,
    device: str | torch.device = "cpu",
    max_samples: int = 1000,
    judges: Any = "auto",
    seed: int = 0,
    max_probe_rows: int = 10_000,
) -> dict[str, Any]:
    """Every disentanglement metric of the module table for one model, on the first ``max_samples`` videos.

    One pass over the loader in eval mode without gradients: per batch one ``split``, one ``combine``
    for the swap (the partner's motion code is reused, which equals ``model.swap``), the ideal-swap
    render; with judges also the reconstruction, two resampled decodes and one ``sample``. Then the
    pure scores of :func:`code_metrics` on all codes.

    Args:
        model: any model of the common API (``split``, ``combine``; ``sample_factors`` and ``sample``
            for the judged resampling and sample metrics); an ``nn.Module`` is moved to ``device`` and
            returned to its train/eval mode afterwards.
        loader: yields Moving MNIST batch dicts with ``video``, ``labels``, ``digit_ids``, ``trajectory``;
            ``loader.dataset.digit_images`` renders the ideal swaps.
        device: where the model runs.
        max_samples: number of videos evaluated.
        judges: ``"auto"`` (``evaluation.judges.get_judges(loader.dataset.config, device)``), ``None``
            (judged keys NaN, with a note) or any object with ``read_content(video) -> (B, D)`` labels and
            ``read_motion(video) -> (B, T, D, 2)`` corners (or both at once from ``read(video)``), and
            optionally ``content_probabilities(video) -> (B, 10)`` or ``read_content_log_probs(video) ->
            (B, D, 10)`` for the Inception Score.
        seed: seed of the held-out splits and of the prior draws.
        max_probe_rows: cap on the (video, frame) rows that train a per-frame probe.

    Returns:
        ``DISENTANGLEMENT_OUTPUT_KEYS`` (:mod:`evaluation.metric_names`): floats (NaN where not computable), ``num_videos``, ``num_frames`` (int) and
        ``notes`` (list of str). JSON-serialisable.
    """
    if isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Integral) or max_samples < 5:
        raise ValueError(f"max_samples must be an integer >= 5, got {max_samples!r}")
    device = resolve_device(device)
    if isinstance(model, nn.Module):
        model.to(device)
    notes: list[str] = []
    judges = _resolve_judges(judges, loader, device, notes)
    dataset = getattr(loader, "dataset", None)
    can_render = hasattr(dataset, "digit_images")
    if not can_render:
        notes.append("loader.dataset has no digit_images: swap fidelity is NaN")
    generator = torch.Generator(device=device).manual_seed(seed)
    tally = JudgedTally(judges, model, generator) if judges is not None else None
    codes: dict[str, list[np.ndarray]] = {"content": [], "motion": [], "labels": [], "trajectory": []}
    fidelity: dict[str, list[Tensor]] = {"psnr": [], "ssim": []}
    previous = None
    with eval_mode(model), torch.no_grad():
        for batch in _factor_batches(loader, max_samples):
            video = batch["video"].to(device=device, dtype=torch.float32)
            content, motion = model.split(video)  # (B, Dc), (B, T, Dm)
            own = {"motion": motion, "labels": batch["labels"], "trajectory": batch["trajectory"]}
            partner = motion_partners(own, previous)
            previous = {key: value[-1:] for key, value in own.items()}
            swapped = model.combine(content, partner["motion"])  # A's content, B's motion
            if can_render:
                images = dataset.digit_images(batch["digit_ids"])
                psnr, ssim = swap_fidelity(swapped, images, partner["trajectory"], video.shape[-1])
                fidelity["psnr"].append(psnr.cpu())
                fidelity["ssim"].append(ssim.cpu())
            if tally is not None:
                tally.update(video, content, motion, swapped, own, partner)
            codes["content"].append(content.float().cpu().numpy())
            codes["motion"].append(motion.float().cpu().numpy())
            codes["labels"].append(own["labels"].numpy())
            codes["trajectory"].append(own["trajectory"].numpy())
    if not codes["content"]:
        raise ValueError("the loader yielded no videos")
    arrays = {key: np.concatenate(parts) for key, parts in codes.items()}
    results = code_metrics(arrays["content"], arrays["motion"], arrays["labels"], arrays["trajectory"],
                           seed=seed, max_probe_rows=max_probe_rows)
    notes = notes + results.pop("notes")
    for key in FIDELITY_KEYS:
        parts = fidelity[key.removeprefix("swap_fidelity_")]
        results[key] = float(torch.cat(parts).double().mean()) if parts else math.nan
    results.update(tally.results(notes) if tally is not None else dict.fromkeys(JUDGED_KEYS, math.nan))
    results["num_videos"], results["num_frames"] = int(arrays["motion"].shape[0]), int(arrays["motion"].shape[1])
    results["notes"] = notes
    return {key: results[key] for key in DISENTANGLEMENT_OUTPUT_KEYS}
