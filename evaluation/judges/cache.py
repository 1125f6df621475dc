"""The judges of a video configuration, loaded from the cache or trained once and cached: :func:`get_judges`
(the networks: :mod:`evaluation.judges.networks`; their training: :mod:`evaluation.judges.training`)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

from data import MovingMNISTConfig, mnist
from data.mnist import DigitSet, load_digits
from evaluation.judges.networks import FORMAT_VERSION, JudgeConfig, Judges
from evaluation.judges.training import train_judges
from utils.atomic import atomic_torch_save
from utils.devices import resolve_device


def judges_key(video_config: MovingMNISTConfig, digits: DigitSet, config: JudgeConfig, seed: int) -> str:
    """Hash of everything the trained judges depend on: video config, digit source and dataset (MNIST or
    Fashion-MNIST), hyper-parameters, seed."""
    description = {
        "format": FORMAT_VERSION,
        "video": asdict(video_config),
        "digits": {"source": digits.source, "count": int(len(digits.labels))},
        "judges": asdict(config),
        "seed": seed,
    }
    if digits.dataset != "mnist":  # another dataset's judges read other classes; MNIST keys stay as before
        description["dataset"] = digits.dataset
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]


def get_judges(
    video_config: MovingMNISTConfig,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    mnist_root: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    config: JudgeConfig | None = None,
    digits: DigitSet | None = None,
    retrain: bool = False,
    num_threads: int | None = 1,
    **overrides: Any,
) -> Judges:
    """The judges of a video configuration: loaded from the cache, or trained once and cached.

    The cache file ``<cache_dir>/judges_<key>.pt`` (default ``cache_dir``: ``data.mnist.cache_dir() /
    "judges"``) holds only tensors and plain values and is read with ``torch.load(weights_only=True)``;
    it is written atomically (a temporary file, then ``os.replace``). The key hashes the video config,
    the digit source, the judge hyper-parameters and the seed (:func:`judges_key`).

    Args:
        video_config: the videos to read; ``num_frames`` only sets the test videos' length (the judges
            read any number of frames).
        device: where to train and run the judges.
        cache_dir: folder of the cached judges.
        mnist_root: folder of the official MNIST files; None uses the embedded digits.
        seed: training and test seed.
        progress: show tqdm bars while training.
        config: hyper-parameters and training budget (:class:`JudgeConfig`).
        digits: the digit set itself (e.g. ``loader.dataset.digits``); replaces ``mnist_root``.
        retrain: train even when a cached file exists (and overwrite it).
        num_threads: torch CPU threads while training (see :func:`evaluation.judges.training.train_judges`;
            restored after); None leaves them alone. Not part of the key: it changes the speed, not
            (beyond rounding) the result.
        **overrides: fields of :class:`JudgeConfig` (e.g. ``detector_steps=300``, ``max_seconds=180``).

    Returns:
        :class:`Judges` in eval mode on ``device``, with ``accuracy``: ``content_digit_accuracy``,
        ``content_video_accuracy``, ``motion_trajectory_error_px``, ``motion_trajectory_error_px_median``,
        ``num_test_videos``, ``detector_steps``, ``classifier_steps``, ``train_seconds`` and ``cached``
        (whether this call loaded it).
    """
    known = {field.name for field in fields(JudgeConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown judge option(s) {unknown}; valid options are {sorted(known)}")
    config = replace(config if config is not None else JudgeConfig(), **overrides)
    device = resolve_device(device)
    digits = digits if digits is not None else load_digits(mnist_root)
    folder = Path(cache_dir) if cache_dir is not None else mnist.cache_dir() / "judges"
    path = folder / f"judges_{judges_key(video_config, digits, config, seed)}.pt"
    if path.exists() and not retrain:
        try:
            payload = torch.load(path, map_location=device, weights_only=True)
            judges = Judges(video_config, config, accuracy=payload["accuracy"])
            judges.detector.load_state_dict(payload["detector"])
            judges.classifier.load_state_dict(payload["classifier"])
            judges.to(device).eval()
            judges.accuracy["cached"] = True
            return judges
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError):
            pass  # unreadable or stale cache: train again and overwrite it
    untrained = Judges.initialised(video_config, config, seed, device)
    judges = train_judges(untrained, digits, seed, progress, num_threads)
    payload = {
        "detector": {name: tensor.cpu() for name, tensor in judges.detector.state_dict().items()},
        "classifier": {name: tensor.cpu() for name, tensor in judges.classifier.state_dict().items()},
        "accuracy": dict(judges.accuracy),
        "video_config": asdict(video_config),
        "judge_config": asdict(config),
    }
    atomic_torch_save(payload, path)
    judges.accuracy["cached"] = False
    return judges
