"""The shared cosine schedule reproduces, bit for bit, the trainer's and the judges' schedules of before."""

from __future__ import annotations

import math

import pytest
import torch

from training.config import TrainConfig
from training.optimizer import make_scheduler
from utils.schedules import cosine_schedule

TOTALS = [1, 2, 3, 7, 19, 20, 21, 150, 250, 300, 500, 800, 1000, 1237]


def trainer_multiplier(step: int, total: int) -> float:
    """The trainer's ``LambdaLR`` multiplier as it was written before the shared schedule."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def judges_learning_rate(step: int, total: int, peak: float) -> float:
    """The judges' learning rate as it was written before the shared schedule."""
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@pytest.mark.parametrize("total", TOTALS)
def test_without_warmup_it_is_the_trainers_multiplier(total):
    for step in range(total + 3):
        assert cosine_schedule(step, total) == trainer_multiplier(step, total)


@pytest.mark.parametrize("total", TOTALS)
@pytest.mark.parametrize("peak", [3e-3, 1e-3, 0.1])
def test_with_warmup_it_is_the_judges_learning_rate(total, peak):
    warmup = max(1, total // 20)
    for step in range(total):
        assert cosine_schedule(step, total, warmup, peak) == judges_learning_rate(step, total, peak)


def test_shape_of_the_schedule():
    assert cosine_schedule(0, 100) == 1.0
    assert cosine_schedule(50, 100) == pytest.approx(0.5)
    assert cosine_schedule(100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_schedule(250, 100) == cosine_schedule(100, 100)  # held at the end
    ramp = [cosine_schedule(step, 100, warmup_steps=4, peak=2.0) for step in range(5)]
    assert ramp == [0.5, 1.0, 1.5, 2.0, 2.0]


def test_make_scheduler_follows_the_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    config = TrainConfig(experiment_name="toy", model="baseline", epochs=2, scheduler="cosine")
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=5)
    for step in range(12):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * trainer_multiplier(step, 10))
        optimizer.step()
        scheduler.step()
