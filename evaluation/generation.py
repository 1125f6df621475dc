"""Generation metrics: do a model's generated videos look like Moving MNIST, as a distribution?

The feature network is the project's own trained judges (:mod:`evaluation.judges`). FVD (Unterthiner et
al. 2018) uses an I3D network trained on Kinetics; its weights cannot be downloaded on this project's
machines, and a network trained on natural videos says little about two MNIST digits on black anyway, so
the judges play its part: a video's feature vector is the content judge's hidden features of each tracked
digit, pooled over frames and averaged over digits (128 numbers), followed by three motion statistics of
the motion judge's tracks (mean per-frame speed, its standard deviation over frames, mean change of
velocity per frame, in pixels). Distances are therefore comparable only between evaluations with the same
judges (the same data config), like any FID.

Three kinds of generated videos (the **modes**), each scored against real test videos:

* ``prior``: ``model.sample``, unconditional;
* ``new_motion``: ``combine(c_A, m ~ prior)``, a real video's content with new motion;
* ``new_content``: ``combine(c ~ prior, m_A)``, new content moving like a real video.

Two references are scored the same way: ``real`` (the real videos themselves) and ``reconstruction``
(``model.reconstruct`` of the real videos: what the decoder draws from codes the encoder made, so a prior
can at best bring its samples to these numbers; a gap between them and the samples' is the prior's, a gap
between them and the real videos' is the decoder's).

**Halves.** The N real test videos are split into halves R1 (the first n = N // 2) and R2 (the next n).
Each mode's n videos are those generated alongside R1 (one per real video), and every two-set score
compares them with R2; the same score between R1 and R2 is the real-vs-real reference (``real_*``). Both
sides then have n videos, so the finite-sample bias of the Fréchet distance is the same for the
reference and for the models.

========================================= ================================================================
key (``MODE_`` is prior, new_motion,       definition
new_content, real or reconstruction)
========================================= ================================================================
``MODE_frechet_distance``                  :func:`frechet_distance` of the judge features of the mode's n
                                           videos and R2's (lower is better; ``real_``: R1 vs R2, the
                                           floor)
``MODE_precision``, ``MODE_recall``        :func:`precision_recall` (k = 3) of the mode's features against
                                           R2's (higher; ``real_``: R1 vs R2, the ceiling)
``MODE_inception_score``                   :func:`evaluation.codes.information.inception_score` of the content
                                           judge's class probabilities over all N videos, one row per tracked
                                           digit (``real_``: the real videos, the ceiling)
``MODE_entropy_conditional``               ``H(y|x)`` of the same (nats, lower)
``prior_entropy_marginal``,                ``H(y)`` (nats, higher; the real videos' is the reference)
``real_entropy_marginal``
``MODE_identity_consistency``              :func:`identity_consistency`, mean over all N videos
``MODE_speed_w1_px``                       :func:`wasserstein_1d` of the per-frame digit speeds read by
                                           the motion judge's tracker, the mode's n videos vs R2's (pixels,
                                           lower; ``real_``: R1 vs R2)
``MODE_bounce_rate``                       :func:`bounce_rate` over all N videos (the real value is the
                                           reference)
``prior_mean_speed_px``,                   mean per-frame speed (pixels)
``real_mean_speed_px``
========================================= ================================================================

The section also holds ``prior`` (which prior ``model.sample`` drew from: ``model.prior_description()``),
``num_videos`` (N) and ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from evaluation.codes.information import inception_score
from evaluation.judges.order_free import NUM_CLASSES, label_counts
from evaluation.metric_names import GENERATION_KEYS
from evaluation.reconstruction.metrics import eval_mode

MODES = ("prior", "new_motion", "new_content")  # generated
REFERENCES = ("real", "reconstruction")
NEAREST_NEIGHBOURS = 3  # Kynkäänniemi et al. 2019's default k
MIN_BOUNCE_SPEED_PX = 0.5  # a velocity component smaller than this flips sign by tracking noise alone


# ----------------------------------------------------------------------------------------------------
# Pure metrics


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017; FVD,
    Unterthiner et al. 2018, with other features).

    ``d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` with means ``mu`` and covariances ``S``
    (``ddof = 1``). The trace of the matrix square root is computed as ``sum_i sqrt(lambda_i)`` over the
    eigenvalues of the symmetric ``S_a^{1/2} S_b S_a^{1/2}``, which has the same eigenvalues as ``S_a S_b``
    and stays real for singular covariances (fewer videos than features).

    Args:
        features_a: ``(N_a, F)``.
        features_b: ``(N_b, F)``.

    Returns:
        ``d^2`` (>= 0; 0 for two identical sets); NaN for fewer than 2 rows or non-finite features.
    """
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two feature sets (N, F) of the same F, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T  # S_a^{1/2}
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = NEAREST_NEIGHBOURS) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
    assessing generative models").

    Each set's manifold is the union of balls around its points, each of radius the distance to the
    point's k-th nearest neighbour within the set (itself excluded). ``precision`` is the share of
    generated points inside the real manifold (are the samples realistic?), ``recall`` the share of real
    points inside the generated manifold (is the data's variety covered?). Distances are Euclidean.

    Args:
        real: ``(N_r, F)`` features of real videos.
        generated: ``(N_g, F)`` features of generated videos.
        k: the neighbour that sets each radius (each set needs more than k points).

    Returns:
        ``{"precision", "recall"}`` in [0, 1] (1 and 1 for two identical sets); NaN when a set has at most
        k points or a feature is not finite.
    """
    real_t = torch.as_tensor(np.asarray(real, dtype=np.float64))
    fake_t = torch.as_tensor(np.asarray(generated, dtype=np.float64))
    if real_t.ndim != 2 or fake_t.ndim != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"expected two feature sets (N, F) of the same F, got {tuple(real_t.shape)} and "
                         f"{tuple(fake_t.shape)}")
    if min(len(real_t), len(fake_t)) <= k or not (torch.isfinite(real_t).all() and torch.isfinite(fake_t).all()):
        return {"precision": math.nan, "recall": math.nan}

    def radii(points: Tensor) -> Tensor:
        # The k-th nearest other point: index k of the sorted distances (index 0 is the point itself).
        return torch.cdist(points, points).sort(dim=1).values[:, k]

    def coverage(manifold: Tensor, radius: Tensor, queries: Tensor) -> float:
        inside = (torch.cdist(queries, manifold) <= radius[None]).any(dim=1)
        return float(inside.double().mean())

    return {"precision": coverage(real_t, radii(real_t), fake_t),
            "recall": coverage(fake_t, radii(fake_t), real_t)}


def identity_consistency(frame_labels: Tensor) -> Tensor:
    """Per video, the share of frames whose judged digits equal the video's majority reading.

    A frame's reading is its multiset of digit labels (sorted); the majority reading is the most frequent
    of the T readings (MSD-Benchmark's consistency evaluator, per frame). 1 when every frame shows the same
    digits; ``1 / T`` when no two frames agree.

    Args:
        frame_labels: ``(B, T, D)`` labels per frame, any digit order.

    Returns:
        ``(B,)`` in ``[1 / T, 1]``.
    """
    if frame_labels.ndim != 3:
        raise ValueError(f"expected frame labels of shape (B, T, D), got {tuple(frame_labels.shape)}")
    readings = frame_labels.long().sort(dim=-1).values
    agree = (readings[:, :, None] == readings[:, None, :]).all(dim=-1)  # (B, T, T)
    return agree.sum(dim=-1).max(dim=1).values.double() / frame_labels.shape[1]


def frame_speeds(trajectory: Tensor) -> Tensor:
    """Each digit's speed per frame, ``|p_{t+1} - p_t|`` in pixels: ``(B, T-1, D)`` of ``(B, T, D, 2)``."""
    return (trajectory[:, 1:] - trajectory[:, :-1]).double().norm(dim=-1)


def bounce_rate(trajectory: Tensor, min_speed: float = MIN_BOUNCE_SPEED_PX) -> Tensor:
    """Per video, the share of (frame, digit, axis) where the velocity reverses: ``v_t v_{t+1} < 0`` with
    both ``|v| >= min_speed`` (slower components flip by tracking noise). Moving MNIST digits reverse only
    at the walls, so real videos give a small, fixed rate; a model whose paths jitter gives more.

    Args:
        trajectory: ``(B, T, D, 2)`` positions (T >= 3 for a non-empty count).

    Returns:
        ``(B,)`` in [0, 1] (NaN for T < 3).
    """
    velocity = (trajectory[:, 1:] - trajectory[:, :-1]).double()  # (B, T-1, D, 2)
    if velocity.shape[1] < 2:
        return torch.full((trajectory.shape[0],), math.nan, dtype=torch.float64)
    before, after = velocity[:, :-1], velocity[:, 1:]
    flips = (before * after < 0) & (before.abs() >= min_speed) & (after.abs() >= min_speed)
    return flips.flatten(1).double().mean(dim=1)


def wasserstein_1d(values_a: np.ndarray, values_b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance of two 1-D empirical distributions.

    ``W_1 = integral |F_a(x) - F_b(x)| dx`` over the two empirical CDFs (Villani 2009; equal to
    ``scipy.stats.wasserstein_distance``).

    Returns:
        The distance in the values' unit; NaN when either set is empty or not finite.
    """
    a = np.sort(np.asarray(values_a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(values_b, dtype=np.float64).ravel())
    if not (len(a) and len(b)) or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def motion_statistics(trajectory: Tensor) -> Tensor:
    """``(B, 3)``: mean per-frame speed, its standard deviation over frames and digits, and mean change of
    velocity per frame (pixels) of ``(B, T, D, 2)`` tracks: the motion part of the judge features."""
    velocity = (trajectory[:, 1:] - trajectory[:, :-1]).double()  # (B, T-1, D, 2)
    speeds = velocity.norm(dim=-1).flatten(1)  # (B, (T-1) D)
    if velocity.shape[1] > 1:
        turning = (velocity[:, 1:] - velocity[:, :-1]).norm(dim=-1).flatten(1).mean(dim=1)
    else:
        turning = torch.zeros(velocity.shape[0], dtype=torch.float64, device=velocity.device)
    spread = speeds.std(dim=1) if speeds.shape[1] > 1 else torch.zeros_like(turning)
    return torch.stack([speeds.mean(dim=1), spread, turning], dim=1)


# ----------------------------------------------------------------------------------------------------
# Reading videos with the judges


def judge_reading(judges: Any, video: Tensor) -> dict[str, Tensor | None]:
    """What the generation metrics need from the judges, for one batch of videos.

    With the project's :class:`~evaluation.judges.Judges` (``describe``): features = the digit embedding
    and :func:`motion_statistics`, per-frame readings, class probabilities. Any other judges object with
    ``read_content(video) -> (B, D)`` and ``read_motion(video) -> (B, T, D, 2)`` gets a stand-in: features
    = the judged label counts ``(B, 10)`` and the motion statistics, per-frame readings from
    ``read_content`` of each frame alone, and no probabilities (its Inception Scores are NaN).

    Returns:
        ``features (B, F)``, ``frame_labels (B, T, D)``, ``trajectory (B, T, D, 2)`` and ``probabilities``
        ``(B * D, 10)`` or None, all on the CPU.
    """
    if hasattr(judges, "describe"):
        reading = judges.describe(video)
        trajectory = reading["trajectory"].cpu()
        features = torch.cat([reading["embedding"].double().cpu(), motion_statistics(trajectory)], dim=1)
        probabilities = reading["log_probs"].double().exp().flatten(0, 1).cpu()
        return {"features": features, "frame_labels": reading["frame_labels"].cpu(), "trajectory": trajectory,
                "probabilities": probabilities}
    trajectory = torch.as_tensor(judges.read_motion(video)).cpu()
    labels = torch.as_tensor(judges.read_content(video)).cpu()
    frame_labels = torch.stack([torch.as_tensor(judges.read_content(video[:, t : t + 1])).cpu()
                                for t in range(video.shape[1])], dim=1)  # (B, T, D)
    features = torch.cat([label_counts(labels, NUM_CLASSES).double(), motion_statistics(trajectory)], dim=1)
    return {"features": features, "frame_labels": frame_labels, "trajectory": trajectory, "probabilities": None}


def _mode_videos(model: Any, video: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
    """The three generated modes for one batch of real videos (module docstring), and the two references."""
    batch, frames = video.shape[:2]
    content, motion = model.split(video)  # (B, Dc), (B, T, Dm)
    prior_content, prior_motion = model.sample_factors(batch, frames, generator=generator)
    return {
        "real": video,
        "reconstruction": model.reconstruct(video),
        "prior": model.sample(batch, frames, generator=generator),
        "new_motion": model.combine(content, prior_motion),
        "new_content": model.combine(prior_content, motion),
    }


def _video_batches(loader: Iterable, max_videos: int) -> Iterable[Tensor]:
    seen = 0
    for batch in loader:
        if seen >= max_videos:
            break
        video = batch["video"] if isinstance(batch, Mapping) else batch
        video = video[: max_videos - seen]
        seen += video.shape[0]
        yield video


def compute_generation_metrics(model: Any, loader: Iterable, judges: Any, device: str | torch.device = "cpu",
                               max_videos: int = 1000, seed: int = 0, k: int = NEAREST_NEIGHBOURS) -> dict[str, Any]:
    """Every key of the module table for one model, on the first ``max_videos`` test videos.

    Args:
        model: a model of the common API (``split``, ``combine``, ``sample``, ``sample_factors``,
            ``prior_description``).
        loader: yields test batches (dicts with ``"video"``, or video tensors ``(B, T, C, H, W)``).
        judges: the judges (:func:`judge_reading`), or None: every number NaN, with a note.
        device: where the model runs.
        max_videos: N.
        seed: seed of every prior draw.
        k: the neighbour of :func:`precision_recall`.

    Returns:
        ``GENERATION_KEYS`` (:mod:`evaluation.metric_names`) as floats, ``prior``, ``num_videos`` and
        ``notes``.
    """
    notes: list[str] = []
    describe = getattr(model, "prior_description", None)
    results: dict[str, Any] = dict.fromkeys(GENERATION_KEYS, math.nan)
    results.update(prior=describe() if describe is not None else None, num_videos=0, notes=notes)
    if judges is None:
        notes.append("no judges: the generation metrics are NaN")
        return results
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    readings: dict[str, list[dict[str, Tensor | None]]] = {mode: [] for mode in (*REFERENCES, *MODES)}
    with eval_mode(model), torch.no_grad():
        for video in _video_batches(loader, max_videos):
            videos = _mode_videos(model, video.to(device=device, dtype=torch.float32), generator)
            for mode, generated in videos.items():
                readings[mode].append(judge_reading(judges, generated.float()))
    if not readings["real"]:
        raise ValueError("the loader yielded no videos")
    joined = {mode: _join(parts) for mode, parts in readings.items()}
    count = joined["real"]["features"].shape[0]
    half = count // 2
    real_first, real_second = joined["real"]["features"][:half], joined["real"]["features"][half : 2 * half]
    second_speeds = frame_speeds(joined["real"]["trajectory"][half : 2 * half]).numpy()
    if half <= k:
        notes.append(f"precision/recall need more than k = {k} videos per half; {half} given: NaN")
    for mode, reading in joined.items():
        generated = real_first if mode == "real" else reading["features"][:half]
        results[f"{mode}_frechet_distance"] = frechet_distance(generated.numpy(), real_second.numpy())
        scores = precision_recall(real_second.numpy(), generated.numpy(), k)
        results[f"{mode}_precision"], results[f"{mode}_recall"] = scores["precision"], scores["recall"]
        speeds = frame_speeds(reading["trajectory"][:half]).numpy()
        results[f"{mode}_speed_w1_px"] = wasserstein_1d(speeds, second_speeds)
        results[f"{mode}_identity_consistency"] = float(identity_consistency(reading["frame_labels"]).mean())
        results[f"{mode}_bounce_rate"] = float(bounce_rate(reading["trajectory"]).mean())
        if reading["probabilities"] is not None:
            information = inception_score(reading["probabilities"].numpy())
            results[f"{mode}_inception_score"] = information["inception_score"]
            results[f"{mode}_entropy_conditional"] = information["entropy_conditional"]
            if f"{mode}_entropy_marginal" in results:
                results[f"{mode}_entropy_marginal"] = information["entropy_marginal"]
        if f"{mode}_mean_speed_px" in results:
            results[f"{mode}_mean_speed_px"] = float(frame_speeds(reading["trajectory"]).mean())
    if joined["real"]["probabilities"] is None:
        notes.append("the judges have no describe(video): Inception Scores are NaN and the features are the "
                     "judged label counts with the motion statistics")
    results["num_videos"] = count
    return {key: results[key] for key in (*GENERATION_KEYS, "prior", "num_videos", "notes")}


def _join(parts: list[dict[str, Tensor | None]]) -> dict[str, Tensor | None]:
    return {key: torch.cat([part[key] for part in parts]) if parts[0][key] is not None else None
            for key in parts[0]}
