"""Content/motion disentanglement metrics, the same for all three video VAEs.

Every number comes from the common model API (``split``, ``combine``, ``sample``, ``sample_factors``), so
the Baseline VAE, the LSTM-VAE (implicit protocol: content = time-average of the per-frame means, motion =
deviation) and the Disentangled VAE sit side by side. This module runs the model over the data and
gathers the numbers; the codes are scored against order-free factors (:mod:`evaluation.codes.factors`) by
:func:`evaluation.codes.code_metrics.code_metrics`, whose docstring says why per (video, frame) row and why SAP
takes the best dimension. Swaps follow :mod:`evaluation.swaps`: video ``A = i`` takes the motion
of ``B = i - 1`` in loader order (the first video takes the first batch's last) and the swap decodes
``combine(c_A, m_B)``: "A's digits moving like B".

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
``content_preservation_close_start``     ``content_preservation`` over the videos A whose       [0, 1]     higher
                                         digits start close: the smallest distance between two
                                         digits in frame 0 is at most 10 px (the hard case)
``recon_content_accuracy_close_start``   ``recon_content_accuracy`` over the same videos        [0, 1]     higher
``close_start_share``                    the share of test videos that start close              [0, 1]     ref.
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
:mod:`evaluation.judges.order_free`). The judged keys need ``judges`` (``None`` leaves them NaN with a note) and the
resampling keys need ``model.sample_factors``. The Inception Score uses
``judges.content_probabilities(video) -> (B, 10)`` when the judges have it, else the per-digit class
probabilities of ``judges.read_content_log_probs(video) -> (B, D, 10)`` (each tracked digit is one
classified object, as each single-digit sequence is in DSVAE/S3VAE). Non-finite values stay NaN (PSNR
may be +inf for a perfect swap).

Object-structured models (``"slots"``, ``"keypoints"``) also get ``localisation_median_error_px``,
``localisation_p90_error_px`` and ``localisation_slot_consistency``: their ``track`` positions against the
digits' ink centres (:mod:`evaluation.localisation`; NaN for every other model).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from evaluation.codes.code_metrics import code_metrics
from evaluation.judges import cache as judges_cache
from evaluation.judges.tally import JudgedTally
from evaluation.localisation import LocalisationTally
from evaluation.metric_names import DISENTANGLEMENT_OUTPUT_KEYS, FIDELITY_KEYS, JUDGED_KEYS
from evaluation.reconstruction.metrics import eval_mode
from evaluation.swaps import motion_partners, swap_fidelity
from utils.devices import resolve_device

_REQUIRED_BATCH_KEYS = ("video", "labels", "digit_ids", "trajectory")


def _resolve_judges(judges: Any, loader: Any, device: torch.device, notes: list[str]) -> Any:
    if isinstance(judges, str):
        if judges != "auto":
            raise ValueError(f"judges must be 'auto', None or a judges object, got {judges!r}")
        dataset = getattr(loader, "dataset", None)
        config = getattr(dataset, "config", None)
        if config is None:
            raise ValueError("judges='auto' needs loader.dataset.config (a MovingMNISTConfig) to build the judges")
        return judges_cache.get_judges(config, device, digits=getattr(dataset, "digits", None))
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
        judges: ``"auto"`` (``evaluation.judges.cache.get_judges(loader.dataset.config, device)``), ``None``
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
    video_config = getattr(dataset, "config", None)
    localisation = LocalisationTally(model, getattr(video_config, "digit_size", 0), getattr(video_config, "image_size", 0))
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
            images = dataset.digit_images(batch["digit_ids"]) if can_render else None  # (B, D, s, s)
            if images is not None:
                psnr, ssim = swap_fidelity(swapped, images, partner["trajectory"], video.shape[-1])
                fidelity["psnr"].append(psnr.cpu())
                fidelity["ssim"].append(ssim.cpu())
            if tally is not None:
                tally.update(video, content, motion, swapped, own, partner)
            if video_config is not None:
                localisation.update(video, batch["trajectory"], images)
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
    results.update(localisation.results())
    results["num_videos"], results["num_frames"] = int(arrays["motion"].shape[0]), int(arrays["motion"].shape[1])
    results["notes"] = notes
    return {key: results[key] for key in DISENTANGLEMENT_OUTPUT_KEYS}
