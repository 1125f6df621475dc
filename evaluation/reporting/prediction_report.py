"""The report's prediction section: the 10 -> 10 table beside the published one, the identity-by-window curves,
and a filmstrip and GIF of the same test videos predicted to the long horizon by every model.

Read from the evaluations' ``prediction`` sections (:mod:`evaluation.prediction`); the filmstrip runs the
models (:func:`prediction_filmstrip`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from evaluation.prediction import HORIZON, OBSERVED_FRAMES, last_frame_prediction
from evaluation.reporting.report import Summary
from utils.animation import save_video_gif
from utils.visualization import save_figure, save_frame_grid

# Published 10 -> 10 numbers on mnist_test_seq.npy (MSE per frame, SSIM; issue 30 and PEERS.md), with budgets.
PUBLISHED = (
    ("PredRNN (OpenSTL re-run)", 23.97, 0.946, "200 epochs of 10k videos, GPU"),
    ("PredRNN++ (OpenSTL re-run)", 22.06, 0.951, "200 epochs, GPU"),
    ("E3D-LSTM (OpenSTL re-run)", 35.97, 0.932, "200 epochs, GPU"),
    ("PredRNN++ (OpenSTL re-run)", 14.07, 0.970, "2,000 epochs, GPU"),
    ("PredRNN (paper)", 56.8, math.nan, "original paper, GPU, >= 10^5 steps"),
    ("PredRNN++ (paper)", 46.5, math.nan, "original paper, GPU, >= 10^5 steps"),
    ("E3D-LSTM (paper)", 41.3, math.nan, "original paper, GPU, >= 10^5 steps"),
    ("DDPAE (paper)", 38.9, math.nan, "200k iterations, batch 64, GPU"),
)
COLUMNS = (("mse_per_frame", "MSE/frame ↓", ".1f"), ("mae_per_frame", "MAE/frame ↓", ".1f"),
           ("ssim_uniform", "SSIM 7x7 ↑", ".3f"), ("ssim", "SSIM Gaussian ↑", ".3f"), ("psnr", "PSNR dB ↑", ".2f"))


def _prediction(document: Mapping[str, Any]) -> Mapping[str, Any]:
    return document.get("prediction") or {}


def _summary(documents: Sequence[Mapping[str, Any]], read: Any) -> Summary:
    values = []
    for document in documents:
        try:
            values.append(float(read(_prediction(document))))
        except (KeyError, TypeError, ValueError, IndexError):
            values.append(math.nan)
    return Summary.of(values)


def _horizon(documents: Sequence[Mapping[str, Any]]) -> int:
    for document in documents:
        horizon = (_prediction(document).get("long_horizon") or {}).get("horizon")
        if horizon:
            return int(horizon)
    return HORIZON


def budget_words(document: Mapping[str, Any]) -> str:
    """``"N steps, CPU"``-style words for one of our runs, from its metadata."""
    metadata = document.get("metadata", {})
    step = metadata.get("step")
    device = str(metadata.get("device", "?"))
    return f"{step:,} steps, {device}" if isinstance(step, int) else f"? steps, {device}"


def standard_table(grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """The 10 -> 10 metrics alone (no judged identity, no published rows: for data without factors): one row
    per model that predicted (mean ± std over its runs), then the last-frame reference."""
    rows, index = [], []
    for label, group in grouped.items():
        if any(_prediction(document) for document in group):
            rows.append({title: _summary(group, lambda p, key=key: p[key]).format(fmt) for key, title, fmt in COLUMNS})
            index.append(label)
    first = next((group for group in grouped.values() if any(_prediction(document) for document in group)), None)
    if first is not None:
        rows.append({title: _summary(first, lambda p, key=key: p["last_frame"][key]).format(fmt)
                     for key, title, fmt in COLUMNS})
        index.append("last frame repeated (reference)")
    frame = pd.DataFrame(rows, index=index)
    frame.index.name = "model"
    return frame


def prediction_table(grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per model (mean ± std over its runs), the last-frame reference (from the first model's runs),
    then the published rows; columns: the 10 -> 10 metrics, best of N SSIM, identity kept at the horizon, the
    test set and the budget."""
    documents = [document for group in grouped.values() for document in group]
    horizon = _horizon(documents)
    identity = f"identity kept at {horizon} ↑"
    rows, index = [], []
    for label, group in grouped.items():
        row = {title: _summary(group, lambda p, key=key: p[key]).format(fmt) for key, title, fmt in COLUMNS}
        samples = next((_prediction(d).get("best_of_n", {}).get("samples") for d in group
                        if _prediction(d).get("best_of_n")), None)
        row["best-of-N SSIM ↑"] = (_summary(group, lambda p: p["best_of_n"]["ssim_uniform"]).format(".3f")
                                   + (f" (N={samples})" if samples else ""))
        row[identity] = _summary(group, lambda p: p[f"identity_kept_at_{horizon}"]).format(".3f")
        row["test set"] = str(_prediction(group[0]).get("test_set", {}).get("kind", "n/a"))
        row["budget"] = budget_words(group[0])
        rows.append(row)
        index.append(label)
    if grouped:
        first = next(iter(grouped.values()))
        row = {title: _summary(first, lambda p, key=key: p["last_frame"][key]).format(fmt)
               for key, title, fmt in COLUMNS}
        row["best-of-N SSIM ↑"] = "n/a"
        row[identity] = _summary(first, lambda p: p["last_frame"][f"identity_kept_at_{horizon}"]).format(".3f")
        row["test set"] = rows[0]["test set"]
        row["budget"] = "none"
        rows.append(row)
        index.append("last frame repeated (reference)")
    for name, mse, ssim, budget in PUBLISHED:
        row = {title: "" for _, title, _ in COLUMNS}
        row["MSE/frame ↓"] = f"{mse:g}"
        row["SSIM 7x7 ↑"] = f"{ssim:.3f}" if math.isfinite(ssim) else ""
        row.update({"best-of-N SSIM ↑": "", identity: "", "test set": "standard file (published)", "budget": budget})
        rows.append(row)
        index.append(name)
    frame = pd.DataFrame(rows, index=index)
    frame.index.name = "model"
    return frame


def _curves(group: Sequence[Mapping[str, Any]], read: Any) -> np.ndarray | None:
    """The mean over runs of a per-window list, or None where no run has it."""
    lists = []
    for document in group:
        try:
            lists.append(np.asarray(read(_prediction(document)), dtype=np.float64))
        except (KeyError, TypeError, ValueError):
            continue
    lists = [values for values in lists if values.size]
    if not lists or len({values.size for values in lists}) != 1:
        return None
    return np.mean(lists, axis=0)


PANELS = (("identity_kept_by_window", "digit identity kept (judged)", "real_identity_kept_by_window"),
          ("path_error_px_by_window", "judged path error (px)", None),
          ("frechet_distance_by_window", "Fréchet distance to real frames", "real_frechet_distance_by_window"))


def save_identity_curves(grouped: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike) -> Path | None:
    """Per window of predicted frames: identity kept, path error and Fréchet distance, one line per model, the
    last-frame reference dashed and the real frames dotted; and the W1 distance of the judged speeds to the
    real frames', the deterministic prediction solid and one stochastic draw dashed in the model's colour.
    None when no run has a long horizon."""
    windows = next((_prediction(d)["long_horizon"]["windows"] for group in grouped.values() for d in group
                    if (_prediction(d).get("long_horizon") or {}).get("windows")), None)
    if not windows:
        return None
    ends = [last for _, last in windows]
    figure = Figure(figsize=(4.2 * (len(PANELS) + 1), 3.4))
    axes = figure.subplots(1, len(PANELS) + 1)
    *panels, speed = axes
    colours = {label: f"C{index}" for index, label in enumerate(grouped)}  # one colour per model in every panel
    first = next(iter(grouped.values()))
    for axis, (key, _, real_key) in zip(panels, PANELS, strict=True):
        for label, group in grouped.items():
            values = _curves(group, lambda p, key=key: p["long_horizon"][key])
            if values is not None:
                axis.plot(ends, values, marker="o", markersize=3, color=colours[label], label=label)
        reference = _curves(first, lambda p, key=key: p["long_horizon"]["last_frame"][key])
        if reference is not None:
            axis.plot(ends, reference, linestyle="--", color="gray", label="last frame repeated")
        if real_key is not None:
            real = _curves(first, lambda p, real_key=real_key: p["long_horizon"][real_key])
            if real is not None:
                axis.plot(ends, real, linestyle=":", color="black", label="real frames")
    for label, group in grouped.items():
        for read, style in ((lambda p: p["long_horizon"]["speed_w1_px_by_window"], "-"),
                            (lambda p: p["long_horizon"]["draw"]["speed_w1_px_by_window"], "--")):
            values = _curves(group, read)
            if values is not None:
                speed.plot(ends, values, linestyle=style, marker="o", markersize=3, color=colours[label])
    titles = [title for _, title, _ in PANELS] + ["speeds vs real: W1 (px); solid mode path, dashed a draw"]
    for axis, title in zip(axes, titles, strict=True):
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("last frame of the window", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"Prediction from {OBSERVED_FRAMES} observed frames, per window of predicted frames", fontsize=10)
    return save_figure(figure, path)


def prediction_filmstrip(models: Mapping[str, torch.nn.Module], dataset: Any, out: Path, device: torch.device,
                         horizon: int = HORIZON, videos: int = 2, every: int | None = None) -> list[Path]:
    """The same test videos predicted to frame ``horizon`` by every model and by the last-frame reference, under
    the ground truth: a filmstrip (every ``every``-th frame) and a GIF.

    Args:
        models: ``{label: model}`` in eval mode on ``device``.
        dataset: the test set (a :class:`data.MovingMNIST`); its generator renders the ``horizon``-frame truth.
        out: the report folder (files go to ``out/figures``).
        device: where the models run.
        horizon: last frame.
        videos: test videos shown.
        every: frame step of the filmstrip (None: about a dozen columns).
    """
    every = every or max(1, (horizon - 1) // 11)
    longer = dataset.with_frames(horizon, videos)
    truth = longer.generate(range(videos))["video"].to(device)
    observed = truth[:, :OBSERVED_FRAMES]
    rows: dict[str, torch.Tensor] = {}
    gif_rows: dict[str, torch.Tensor] = {}
    predictors = {"last frame repeated": last_frame_prediction,
                  **{label: model.predict for label, model in models.items()}}
    with torch.no_grad():
        predicted = {label: predict(observed, horizon - OBSERVED_FRAMES) for label, predict in predictors.items()}
    for index in range(videos):
        rows[f"video {index}: truth"] = truth[index]
        gif_rows[f"{index}: truth"] = truth[index]
        for label, frames in predicted.items():
            video = torch.cat([observed[index], frames[index]])
            rows[f"video {index}: {label}"] = video
            gif_rows[f"{index}: {label}"] = video
    figures = out / "figures"
    title = f"t < {OBSERVED_FRAMES} observed, then predicted to t = {horizon - 1}"
    return [
        save_frame_grid(rows, figures / "prediction_filmstrip.png", title=title, every=every,
                        group_size=len(predictors) + 1),
        save_video_gif(gif_rows, figures / "prediction.gif", labels=list(gif_rows), columns=len(predictors) + 1),
    ]
