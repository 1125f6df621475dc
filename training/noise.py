"""Seeds of the training noise: the posterior noise of training step ``s`` on rank ``r`` and of validation
batch ``i`` are pure functions of the run's seed and those numbers, so no generator state needs saving."""

from __future__ import annotations

import numpy as np

_TRAIN_NOISE, _VALIDATION_NOISE = 0, 1


def noise_seed(seed: int, *words: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``words`` (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([seed, *words]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def train_noise_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the posterior noise of optimizer step ``step`` (0-based) on process ``rank``."""
    return noise_seed(seed, _TRAIN_NOISE, step, rank)


def validation_noise_seed(seed: int, batch_index: int) -> int:
    """Seed of the posterior noise of validation batch ``batch_index``."""
    return noise_seed(seed, _VALIDATION_NOISE, batch_index)
