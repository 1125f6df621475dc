"""The optimizer of a training run and its learning-rate schedule: Adam at ``--lr``, optionally decayed
per optimizer step by a cosine (:func:`utils.schedules.cosine_schedule`) to 0 at the run's last step."""

from __future__ import annotations

import torch
from torch import nn

from training.config import TrainConfig
from utils.schedules import cosine_schedule


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (default betas and eps) at ``config.lr``."""
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """None for ``"none"``; for ``"cosine"``, a per-step cosine from ``lr`` down to 0 at the last step."""
    if config.scheduler == "none":
        return None
    total = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_schedule(step, total)
    )
