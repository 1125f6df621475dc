"""Computational cost of a model: its parameter counts and the median wall time of a call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from utils.devices import synchronize


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (0, 0 for an object without parameters)."""
    parameters = list(model.parameters()) if isinstance(model, nn.Module) else []
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return trainable, sum(p.numel() for p in parameters)


def median_time_ms(
    function: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5
) -> float:
    """Median wall time of ``function()`` in milliseconds, after ``warmup`` untimed calls.

    Each timed call is bracketed by :func:`utils.devices.synchronize`, so queued CUDA/MPS work is counted.
    """
    if repeats <= 0 or warmup < 0:
        raise ValueError(f"need repeats > 0 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
