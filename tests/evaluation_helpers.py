"""A tiny checkpoint for the evaluation tests (``evaluate.py`` and :mod:`evaluation.pipeline`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from data import DataConfig, MovingMNISTConfig
from models import build_model
from models.checkpoint import atomic_torch_save, library_versions

FRAMES = 6
TINY_MODEL = {
    "width": 8,
    "feature_dim": 32,
    "content_dim": 8,
    "motion_dim": 8,
    "lstm_hidden": 16,
    "prior_hidden": 16,
}


def write_checkpoint(
    folder: Path, image_size: int = 32, experiment_name: str | None = "tiny_run", **extra
) -> Path:
    """A checkpoint in the format of ``models/checkpoint.py`` for a tiny Disentangled VAE."""
    torch.manual_seed(0)
    model = build_model("disentangled", image_size=image_size, **TINY_MODEL)
    data = DataConfig(
        train_size=8,
        val_size=8,
        test_size=8,
        video=MovingMNISTConfig(image_size=image_size, digit_size=14 * image_size // 32, num_frames=FRAMES),
    )
    checkpoint = {
        "model_state_dict": model.state_dict(),
        "model_name": "disentangled",
        "model_config": dataclasses.asdict(model.config),
        "train_config": {
            "experiment_name": experiment_name or folder.name,
            "model": "disentangled",
            "epochs": 1,
        },
        "data_config": data.to_dict(),
        "epoch": 1,
        "step": 2,
        "best_metric": 123.0,
        "versions": library_versions(),
        "format_version": 1,
        **extra,
    }
    if experiment_name is not None:
        checkpoint["experiment_name"] = experiment_name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "best_model.pt"
    atomic_torch_save(checkpoint, path)
    return path
