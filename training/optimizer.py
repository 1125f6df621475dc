"""The optimizer of a training run and its learning-rate schedule: Adam at ``--lr``, optionally decayed
per optimizer step by a cosine (:func:`utils.schedules.cosine_schedule`) to 0 at the run's last step."""

from __future__ import annotations

import torch
from torch import nn

from training.config import TrainConfig
from utils.schedules import cosine_schedule


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (default betas and eps) at ``config.lr``; a model's ``learning_rate_scales()`` (parameter-name
    prefix -> multiple of ``config.lr``) puts the parameters it names in groups of their own."""
    inner = getattr(model, "module", model)  # a DistributedDataParallel wrapper names its parameters module.*
    scales = inner.learning_rate_scales() if hasattr(inner, "learning_rate_scales") else {}
    scales = {prefix: scale for prefix, scale in scales.items() if scale != 1.0}
    if not scales:
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for name, parameter in inner.named_parameters():
        scale = next((scale for prefix, scale in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(scale, []).append(parameter)
    return torch.optim.Adam([{"params": params, "lr": config.lr * scale} for scale, params in groups.items()
                             if params], lr=config.lr)


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
