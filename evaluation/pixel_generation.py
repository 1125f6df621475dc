"""Generation metrics that need no labels: pixel statistics of generated videos against real ones.

Used where the data has no ground-truth factors (``--video-file``), so that there are no judges to read
the videos. No network is involved, on purpose: a feature network trained without labels (an autoencoder)
would be one more model to train, tune and trust, and its distances would depend on it; the statistics here
are defined by a formula, cost nothing, and say plainly what they measure (brightness, how much of the frame
is lit, how much moves, the coarse layout) and what they miss (identity, shape detail, the
content/motion split).

Per video (``(T, 1, H, W)`` in [0, 1]) the feature vector is the time-averaged frame pooled to 8x8 (64
numbers: where the intensity is) followed by three statistics:

* ``mean_intensity``: the mean pixel value;
* ``ink_fraction``: the share of pixels above 0.5 (how much of the frame is covered by objects);
* ``motion_energy``: the mean ``|x_{t+1} - x_t|`` over pixels and frames (how much changes per frame).

The modes and the halves are those of :mod:`evaluation.generation`: ``prior`` (``model.sample``),
``new_motion`` (``combine(c_A, m ~ prior)``), ``new_content`` (``combine(c ~ prior, m_A)``) and the references
``real`` and ``reconstruction``; each mode's videos generated alongside the first half R1 of the real test
videos are compared with the second half R2, and ``real`` is R1 against R2 (the floor).

========================================= ================================================================
key (``MODE_``: see above)                 definition
========================================= ================================================================
``MODE_pixel_frechet_distance``            :func:`evaluation.generation.frechet_distance` of the mode's
                                           pixel features and R2's (lower; ``real_``: the floor)
``MODE_mean_intensity``                    mean of ``mean_intensity`` over the mode's videos (the real
``MODE_ink_fraction``                      videos' value is the reference; closer is better)
``MODE_motion_energy``
========================================= ================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from evaluation.generation import MODES, REFERENCES, _mode_videos, _video_batches, frechet_distance
from evaluation.reconstruction.metrics import eval_mode

POOLED_SIDE = 8
STATISTICS = ("mean_intensity", "ink_fraction", "motion_energy")
PIXEL_GENERATION_KEYS = tuple(
    f"{mode}_{quantity}" for quantity in ("pixel_frechet_distance", *STATISTICS) for mode in (*REFERENCES, *MODES)
)


def pixel_features(video: Tensor) -> Tensor:
    """``(B, 64 + 3)`` float64: the 8x8-pooled time-mean frame, then ``mean_intensity``, ``ink_fraction`` and
    ``motion_energy`` (module docstring) of ``(B, T, C, H, W)`` videos in [0, 1]."""
    if video.ndim != 5:
        raise ValueError(f"expected videos (B, T, C, H, W), got shape {tuple(video.shape)}")
    video = video.double()
    pooled = F.adaptive_avg_pool2d(video.mean(dim=(1, 2)).unsqueeze(1), POOLED_SIDE).flatten(1)  # (B, 64)
    intensity = video.flatten(1).mean(dim=1)
    ink = (video > 0.5).double().flatten(1).mean(dim=1)
    motion = (video[:, 1:] - video[:, :-1]).abs().flatten(1).mean(dim=1)
    return torch.cat([pooled, torch.stack([intensity, ink, motion], dim=1)], dim=1)


def compute_pixel_generation_metrics(model: Any, loader: Iterable, device: str | torch.device = "cpu",
                                     max_videos: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every key of the module table for one model, on the first ``max_videos`` test videos.

    Returns:
        :data:`PIXEL_GENERATION_KEYS` as floats, ``num_videos``, ``features`` (what was measured, in words)
        and ``unavailable`` (key -> why it was left out: the Fréchet distances need 4 videos or more).
    """
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    features: dict[str, list[Tensor]] = {mode: [] for mode in (*REFERENCES, *MODES)}
    with eval_mode(model), torch.no_grad():
        for video in _video_batches(loader, max_videos):
            for mode, generated in _mode_videos(model, video.to(device=device, dtype=torch.float32),
                                                generator).items():
                features[mode].append(pixel_features(generated.float().cpu()))
    if not features["real"]:
        raise ValueError("the loader yielded no videos")
    joined = {mode: torch.cat(parts).numpy() for mode, parts in features.items()}
    count = len(joined["real"])
    half = count // 2
    second = joined["real"][half : 2 * half]
    unavailable: dict[str, str] = {}
    results: dict[str, Any] = {}
    for mode, values in joined.items():
        if half >= 2:
            results[f"{mode}_pixel_frechet_distance"] = frechet_distance(values[:half], second)
        else:  # left out, with the reason, rather than a NaN
            unavailable[f"{mode}_pixel_frechet_distance"] = (
                f"not available: the Fréchet distance needs at least 4 test videos (2 per half), {count} given")
        for column, statistic in enumerate(STATISTICS, start=POOLED_SIDE * POOLED_SIDE):
            results[f"{mode}_{statistic}"] = float(np.mean(values[:, column]))
    return {**{key: results[key] for key in PIXEL_GENERATION_KEYS if key in results}, "num_videos": count,
            "features": "8x8-pooled mean frame + mean intensity, ink fraction (> 0.5), mean |frame difference|",
            "unavailable": unavailable}
