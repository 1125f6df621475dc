"""Prediction metrics: the standard 10 -> 10 table of Moving MNIST, and a judged long horizon to frame 100.

**The standard protocol** (PredRNN, DDPAE, OpenSTL's ``openstl/core/metrics.py``): condition on 10 frames,
predict the next 10, 64x64, 2 digits. Per predicted frame ``t`` of video ``b`` (``e = pred - target``,
pixels in [0, 1]):

========================= =====================================================================================
key                       per frame (then the mean over frames and videos; ``*_by_frame``: over videos only)
========================= =====================================================================================
``mse_per_frame``         ``sum_pixels e^2``: OpenSTL's "MSE" (``np.mean(e**2, axis=(0, 1)).sum()``)
``mae_per_frame``         ``sum_pixels |e|``: OpenSTL's "MAE"
``ssim``                  SSIM, Wang et al.'s Gaussian 11x11 window (:func:`evaluation.reconstruction.ssim.frame_ssim`)
``ssim_uniform``          SSIM with scikit-image's default 7x7 box: the call OpenSTL makes
``psnr``                  ``10 log10(1 / mean_pixels e^2)`` in dB on the float frames (OpenSTL's older PSNR
                          quantises to uint8 first; the difference is a fraction of a dB)
========================= =====================================================================================

A stochastic model's ``samples = N`` predictions are scored **best of N by SSIM** (SVG, Denton & Fergus
2018): per video the sample with the highest mean Gaussian SSIM over the predicted frames, every metric then
computed on that sample. The reference every prediction paper is measured against is
:func:`last_frame_prediction`, the last observed frame repeated.

**The long horizon**: 10 observed frames, the rest to frame ``horizon`` (100) predicted, against the
generator's own ground truth. Per window of :data:`WINDOW` predicted frames, the judges
(:mod:`evaluation.judges`) read the predicted frames alone: ``identity_kept`` (their order-free digit accuracy
against the true labels, as the swap metrics read it), ``path_error_px`` (their order-free trajectory error
against the true paths, pixels), ``speed_w1_px`` (W1 of per-frame speeds, predicted vs real at the same
window), ``inception_score`` and ``frechet_distance`` (the generation metrics' judge features of the window's
predicted frames for the first half of the videos against the real frames of the second half at the same
window, as :mod:`evaluation.generation` compares halves); ``real_*`` are the same readings of the real frames.
The model's deterministic prediction (its mode or mean path) is read, and so is one stochastic draw of it
(``long_horizon["draw"]``, seeded): a mean path is not a path of the data, and its speeds fall as the
uncertainty about where a digit turns grows, while a draw's speeds stay like the data's where the model has
learned them (benchmarks/NOTES.md row 107).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from evaluation.codes.information import inception_score
from evaluation.generation import frame_speeds, frechet_distance, judge_reading, wasserstein_1d
from evaluation.judges.order_free import digit_accuracy, trajectory_error
from evaluation.reconstruction.metrics import eval_mode, frame_error_sums, frame_psnr
from evaluation.reconstruction.ssim import frame_ssim
from evaluation.reconstruction.tensor_checks import check_pair, pair_as
from models.config import check_positive_int

OBSERVED_FRAMES = 10
PREDICTED_FRAMES = 10
HORIZON = 100  # the long horizon's last frame (frames counted from 1, observed ones included)
WINDOW = 10
DEFAULT_SAMPLES = 10  # N of best-of-N
FRAME_KEYS = ("mse_per_frame", "mae_per_frame", "ssim", "ssim_uniform", "psnr")

Predictor = Callable[..., Tensor]  # predict(video, future_frames, samples=None, generator=None)


def last_frame_prediction(video: Tensor, future_frames: int, samples: int | None = None,
                          generator: torch.Generator | None = None) -> Tensor:
    """The trivial reference: the last observed frame, repeated (same signature as ``model.predict``).

    Args:
        video: ``(B, T, C, H, W)`` observed frames.
        future_frames: F.
        samples: N for ``(N, B, F, C, H, W)`` (N identical copies: it has nothing to draw).
        generator: unused.

    Returns:
        ``(B, F, C, H, W)``, or ``(N, B, F, C, H, W)``.
    """
    check_positive_int("future_frames", future_frames)
    if not isinstance(video, Tensor) or video.ndim != 5 or video.shape[1] < 1:
        raise ValueError(f"expected video of shape (B, T, C, H, W), got {getattr(video, 'shape', type(video))}")
    repeated = video[:, -1:].expand(-1, future_frames, -1, -1, -1).clone()
    if samples is None:
        return repeated
    check_positive_int("samples", samples)
    return repeated[None].expand(samples, *repeated.shape).clone()


# ----------------------------------------------------------------------------------------------------
# Pure metrics


def frame_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Every key of :data:`FRAME_KEYS` for every predicted frame (module table).

    Args:
        pred: ``(B, F, C, H, W)`` predicted frames in [0, 1] (H, W >= 11).
        target: the true frames, the same shape.

    Returns:
        Key -> ``(B, F)`` float64 tensor.
    """
    check_pair(pred, target)
    pred, target = pair_as(pred, target)
    squared, absolute = frame_error_sums(pred, target)  # (B, F) each
    return {
        "mse_per_frame": squared.double(),
        "mae_per_frame": absolute.double(),
        "ssim": frame_ssim(pred, target).double(),
        "ssim_uniform": frame_ssim(pred, target, window="uniform").double(),
        "psnr": frame_psnr(pred, target).double(),
    }


def best_of_samples(samples: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per video, the sample with the highest mean Gaussian SSIM over the predicted frames (SVG's best of N).

    Args:
        samples: ``(N, B, F, C, H, W)`` stochastic predictions.
        target: ``(B, F, C, H, W)`` the true frames.

    Returns:
        ``(best (B, F, C, H, W), index (B,))``.
    """
    if samples.ndim != 6 or tuple(samples.shape[1:]) != tuple(target.shape):
        raise ValueError(f"expected samples (N, *target.shape) = (N, {tuple(target.shape)}), got "
                         f"{tuple(samples.shape)}")
    count = samples.shape[0]
    scores = frame_ssim(samples.flatten(0, 1), target.repeat(count, 1, 1, 1, 1)).mean(1).view(count, -1)  # (N, B)
    index = scores.argmax(0)  # (B,)
    return samples[index, torch.arange(samples.shape[1], device=samples.device)], index


def summarize(per_frame: Mapping[str, Tensor]) -> dict[str, Any]:
    """Means over videos and frames (``key``) and over videos per frame (``key_by_frame``) of ``(B, F)`` values."""
    summary: dict[str, Any] = {}
    for key, values in per_frame.items():
        summary[key] = float(values.mean())
        summary[f"{key}_by_frame"] = values.mean(0).tolist()
    return summary


def windows(observed: int, horizon: int, window: int = WINDOW) -> list[tuple[int, int]]:
    """The predicted frames' windows, ``[(first, last), ...]`` counted from 1 (observed frames included):
    10 observed to 100 gives ``(11, 20), ..., (91, 100)``; a last window shorter than ``window`` is kept."""
    return [(start + 1, min(start + window, horizon)) for start in range(observed, horizon, window)]


# ----------------------------------------------------------------------------------------------------
# Loops over a predictor and videos


def _video_batches(loader: Iterable, max_videos: int | None) -> Iterable[Tensor]:
    seen = 0
    for batch in loader:
        if max_videos is not None and seen >= max_videos:
            break
        video = batch["video"] if isinstance(batch, Mapping) else batch
        if max_videos is not None:
            video = video[: max_videos - seen]
        seen += video.shape[0]
        yield video


def standard_prediction_metrics(predict: Predictor, loader: Iterable, device: str | torch.device = "cpu",
                                observed: int = OBSERVED_FRAMES, predicted: int = PREDICTED_FRAMES,
                                samples: int | None = DEFAULT_SAMPLES, seed: int = 0,
                                max_videos: int | None = None) -> dict[str, Any]:
    """The standard table: condition on ``observed`` frames, predict ``predicted``, score them (module table).

    Args:
        predict: ``model.predict`` or :func:`last_frame_prediction`, run under ``no_grad``.
        loader: batches of videos ``(B, T, C, H, W)`` (or dicts with ``"video"``), T >= observed + predicted.
        device: where the predictor runs.
        observed, predicted: the protocol's frames (10 and 10).
        samples: N of the stochastic best-of-N scores; None skips them.
        seed: seed of the stochastic draws.
        max_videos: stop after this many videos (None: all).

    Returns:
        The deterministic prediction's means and ``*_by_frame`` lists (``FRAME_KEYS``), ``best_of_n`` (the same
        for the best of N samples by SSIM, with ``samples``: N), ``num_videos``, ``observed_frames``,
        ``predicted_frames``.
    """
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    deterministic: dict[str, list[Tensor]] = {key: [] for key in FRAME_KEYS}
    best: dict[str, list[Tensor]] = {key: [] for key in FRAME_KEYS}
    with torch.no_grad():
        for video in _video_batches(loader, max_videos):
            if video.shape[1] < observed + predicted:
                raise ValueError(f"prediction {observed} -> {predicted} needs videos of at least "
                                 f"{observed + predicted} frames, got {video.shape[1]}")
            video = video.to(device=device, dtype=torch.float32)
            context, target = video[:, :observed], video[:, observed : observed + predicted]
            for key, values in frame_metrics(predict(context, predicted).float(), target).items():
                deterministic[key].append(values.cpu())
            if samples is not None:
                chosen, _ = best_of_samples(predict(context, predicted, samples=samples, generator=generator).float(),
                                            target)
                for key, values in frame_metrics(chosen, target).items():
                    best[key].append(values.cpu())
    if not deterministic["ssim"]:
        raise ValueError("the loader yielded no videos")
    result = summarize({key: torch.cat(values) for key, values in deterministic.items()})
    if samples is not None:
        result["best_of_n"] = {"samples": samples, **summarize({key: torch.cat(values) for key, values in best.items()})}
    result.update(num_videos=int(torch.cat(deterministic["ssim"]).shape[0]), observed_frames=observed,
                  predicted_frames=predicted)
    return result


LONG_KEYS = ("identity_kept", "path_error_px", "speed_w1_px", "inception_score", "frechet_distance",
             "mse_per_frame")


def long_horizon_metrics(predict: Predictor, batches: Iterable[Mapping[str, Tensor]], judges: Any,
                         device: str | torch.device = "cpu", observed: int = OBSERVED_FRAMES,
                         horizon: int = HORIZON, window: int = WINDOW) -> dict[str, Any]:
    """Judged readings of the predicted frames per window of ``window`` frames out to ``horizon`` (module docstring).

    Args:
        predict: ``model.predict`` or :func:`last_frame_prediction` (deterministic predictions are scored).
        batches: generator batches with ``video (B, horizon, 1, H, W)``, ``labels (B, D)`` and ``trajectory
            (B, horizon, D, 2)``.
        judges: the trained judges of the videos' configuration, or None (every judged value NaN).
        device: where the predictor runs.
        observed: frames given to the predictor.
        horizon: the last frame (counted from 1).
        window: frames per window.

    Returns:
        ``KEY_by_window`` for each of :data:`LONG_KEYS` and ``real_KEY_by_window`` for the real frames' readings
        (identity kept, inception score, Fréchet distance of the real halves), ``identity_kept_at_END``
        (the last window's, END = ``horizon``), ``windows`` (``[first, last]`` frames), ``num_videos``, ``notes``.
    """
    device = torch.device(device)
    spans = windows(observed, horizon, window)
    predictions, truths = [], []
    with torch.no_grad():
        for batch in batches:
            video = batch["video"].to(device=device, dtype=torch.float32)
            if video.shape[1] < horizon:
                raise ValueError(f"the long horizon needs videos of {horizon} frames, got {video.shape[1]}")
            predictions.append(predict(video[:, :observed], horizon - observed).float().cpu())
            truths.append({"video": video[:, observed:horizon].cpu(), "labels": batch["labels"],
                           "trajectory": batch["trajectory"][:, observed:horizon]})
    if not predictions:
        raise ValueError("no videos for the long horizon")
    predicted = torch.cat(predictions)  # (N, horizon - observed, C, H, W)
    real = torch.cat([truth["video"] for truth in truths])
    labels = torch.cat([truth["labels"] for truth in truths])
    trajectory = torch.cat([truth["trajectory"] for truth in truths]).float()
    count = predicted.shape[0]
    result: dict[str, Any] = {f"{key}_by_window": [] for key in LONG_KEYS}
    result.update({f"real_{key}_by_window": [] for key in ("identity_kept", "inception_score", "frechet_distance")})
    notes: list[str] = []
    for first, last in spans:
        frames = slice(first - 1 - observed, last - observed)
        pred, truth = predicted[:, frames], real[:, frames]
        error = (pred - truth).flatten(2).pow(2).sum(2)  # (N, frames)
        result["mse_per_frame_by_window"].append(float(error.double().mean()))
        if judges is None:
            for key in LONG_KEYS[:-1]:
                result[f"{key}_by_window"].append(math.nan)
            for key in ("identity_kept", "inception_score", "frechet_distance"):
                result[f"real_{key}_by_window"].append(math.nan)
            continue
        scores = _judged_window(judges, pred, truth, labels, trajectory[:, frames])
        for key, value in scores.items():
            result[f"{key}_by_window"].append(value)
    if judges is None:
        notes.append("no judges: the judged long-horizon values are NaN")
    result[f"identity_kept_at_{horizon}"] = result["identity_kept_by_window"][-1]
    result.update(windows=[list(span) for span in spans], num_videos=count, observed_frames=observed,
                  horizon=horizon, notes=notes)
    return result


def _judged_window(judges: Any, pred: Tensor, truth: Tensor, labels: Tensor, trajectory: Tensor) -> dict[str, float]:
    """The judges' readings of one window's predicted and real frames (module docstring)."""
    judge_device = next(judges.parameters()).device if hasattr(judges, "parameters") else "cpu"
    read_pred = judge_reading(judges, pred.to(judge_device))
    read_real = judge_reading(judges, truth.to(judge_device))
    pred_labels = _labels(judges, pred.to(judge_device), read_pred)
    real_labels = _labels(judges, truth.to(judge_device), read_real)
    half = pred.shape[0] // 2
    second = read_real["features"][half : 2 * half].numpy()
    scores = {
        "identity_kept": float(digit_accuracy(pred_labels.cpu(), labels.cpu()).mean()),
        "real_identity_kept": float(digit_accuracy(real_labels.cpu(), labels.cpu()).mean()),
        "path_error_px": float(trajectory_error(read_pred["trajectory"].float(), trajectory).mean()),
        "speed_w1_px": wasserstein_1d(frame_speeds(read_pred["trajectory"]).numpy(),
                                      frame_speeds(read_real["trajectory"]).numpy()),
        "frechet_distance": frechet_distance(read_pred["features"][:half].numpy(), second),
        "real_frechet_distance": frechet_distance(read_real["features"][:half].numpy(), second),
    }
    for prefix, reading in (("", read_pred), ("real_", read_real)):
        probabilities = reading["probabilities"]
        scores[f"{prefix}inception_score"] = (inception_score(probabilities.numpy())["inception_score"]
                                              if probabilities is not None else math.nan)
    return scores


def _labels(judges: Any, video: Tensor, reading: Mapping[str, Any]) -> Tensor:
    """The judged digits ``(B, D)`` of a reading (its pooled probabilities), or ``read_content`` without them."""
    probabilities = reading["probabilities"]
    if probabilities is None:
        return torch.as_tensor(judges.read_content(video))
    batch = video.shape[0]
    return probabilities.view(batch, -1, probabilities.shape[-1]).argmax(-1).sort(dim=1).values




# ----------------------------------------------------------------------------------------------------
# The metrics JSON's "prediction" section


def _generator_batches(dataset: Any, num_videos: int, frames: int, batch_size: int) -> list[dict[str, Tensor]]:
    """The first ``num_videos`` test videos of ``dataset``'s generator (same split, seed and digits), rendered
    with ``frames`` frames: video i's first frames are those of the test set's video i."""
    longer = dataset.with_frames(frames, num_videos)
    return [longer.generate(range(start, min(start + batch_size, num_videos)))
            for start in range(0, num_videos, batch_size)]


def compute_prediction_metrics(model: Any, dataset: Any, judges: Any, device: str | torch.device = "cpu", *,
                               num_videos: int = 1000, batch_size: int = 32, samples: int | None = DEFAULT_SAMPLES,
                               long_videos: int = 100, horizon: int = HORIZON, seed: int = 0,
                               standard_loader: Iterable | None = None, standard_path: str | None = None,
                               reconstruction_mse_per_frame: float = math.nan, judged: bool = True,
                               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The ``prediction`` section of evaluate.py's metrics JSON, for one model and the last-frame reference.

    Args:
        model: a model of the common API (``predict``, ``prediction_description``).
        dataset: the checkpoint's test set (a :class:`data.MovingMNIST`): the 10 -> 10 videos and the long
            horizon's come from its generator (same split, seed and digits, 20 and ``horizon`` frames).
        judges: the judges of the data config, or None (judged values NaN).
        device: where the model runs.
        num_videos: videos of the 10 -> 10 table (on the standard file: at most this many).
        batch_size: videos per batch.
        samples: N of the best-of-N scores; None skips them.
        long_videos: videos of the long horizon; 0 skips it.
        horizon: the long horizon's last frame.
        seed: seed of the stochastic draws.
        standard_loader, standard_path: the standard test file (``(20, N, 64, 64)`` uint8, time first): if
            given, the 10 -> 10 table is scored on it instead of the generator's videos.
        reconstruction_mse_per_frame: the reconstruction's value, copied beside the prediction's.
        judged: False for data without ground-truth factors (no judges): the section then has no judged
            keys at all (``identity_kept_*``, ``long_horizon``) rather than empty ones; implies no long horizon.
        log: progress messages.

    Returns:
        ``mse_per_frame``, ``mae_per_frame``, ``ssim``, ``ssim_uniform``, ``psnr`` (10 -> 10, deterministic)
        with ``*_by_frame``, ``best_of_n``, ``identity_kept_by_window``, ``identity_kept_at_{horizon}``,
        ``reconstruction_mse_per_frame``, ``method`` (how the model predicts), ``test_set`` (which videos),
        ``last_frame`` (the reference's 10 -> 10 numbers and identity by window) and ``long_horizon`` (every
        window's readings of the model's deterministic prediction, with the real frames', and under ``draw``
        and ``last_frame`` those of one seeded stochastic draw and of the reference).
    """
    say = log or (lambda message: None)
    if standard_loader is not None:
        loader: Iterable = standard_loader
        test_set = {"kind": "standard_test_file", "path": str(standard_path),
                    "words": f"the standard test file {standard_path}"}
    else:
        loader = _generator_batches(dataset, num_videos, OBSERVED_FRAMES + PREDICTED_FRAMES, batch_size)
        test_set = {"kind": "generator", "seed": int(dataset.seed),
                    "words": f"the generator's test videos (seed {dataset.seed}), "
                             f"{OBSERVED_FRAMES + PREDICTED_FRAMES} frames"}
    say(f"prediction {OBSERVED_FRAMES} -> {PREDICTED_FRAMES} on {test_set['words']}")
    with eval_mode(model):
        table = standard_prediction_metrics(model.predict, loader, device, samples=samples, seed=seed,
                                            max_videos=num_videos)
        reference = standard_prediction_metrics(last_frame_prediction, loader, device, samples=None,
                                                max_videos=num_videos)
        test_set["num_videos"] = table["num_videos"]
        section: dict[str, Any] = {**table, "reconstruction_mse_per_frame": reconstruction_mse_per_frame,
                                   "method": model.prediction_description(), "test_set": test_set,
                                   "last_frame": reference}
        if not judged:
            return section
        if long_videos < 1:
            section.update(identity_kept_by_window=[], **{f"identity_kept_at_{horizon}": math.nan},
                           long_horizon=None)
            return section
        say(f"long horizon: {OBSERVED_FRAMES} observed, frames {OBSERVED_FRAMES + 1}-{horizon} predicted, "
            f"{long_videos} videos")
        batches = _generator_batches(dataset, long_videos, horizon, batch_size)
        ours = long_horizon_metrics(model.predict, batches, judges, device, horizon=horizon)
        draws = torch.Generator(device=device).manual_seed(seed)

        def one_draw(video: Tensor, future_frames: int) -> Tensor:
            return model.predict(video, future_frames, samples=1, generator=draws)[0]

        drawn = long_horizon_metrics(one_draw, batches, judges, device, horizon=horizon)
        last = long_horizon_metrics(last_frame_prediction, batches, judges, device, horizon=horizon)
    reference["identity_kept_by_window"] = last["identity_kept_by_window"]
    reference[f"identity_kept_at_{horizon}"] = last[f"identity_kept_at_{horizon}"]
    section.update(identity_kept_by_window=ours["identity_kept_by_window"],
                   **{f"identity_kept_at_{horizon}": ours[f"identity_kept_at_{horizon}"]},
                   long_horizon={**ours, "draw": drawn, "last_frame": last})
    return section
