"""Learning-rate schedules: the cosine decay shared by the trainer and the judges' training."""

from __future__ import annotations

import math


def cosine_schedule(step: int, total: int, warmup_steps: int = 0, peak: float = 1.0) -> float:
    """The learning rate at optimizer step ``step`` (with ``peak=1``, the multiplier of one).

    A linear warm-up over the first ``warmup_steps`` steps, ``peak * (step + 1) / warmup_steps``, then a
    cosine decay from ``peak`` to 0 at step ``total`` (held at 0 after):
    ``peak * (1 + cos(pi * min(1, (step - warmup_steps) / (total - warmup_steps)))) / 2``.

    The trainer's per-step cosine (``training.optimizer.make_scheduler``, no warm-up, a
    ``LambdaLR`` multiplier) and the judges' training (``evaluation.judges.training``, warm-up over a
    twentieth of the steps) both use it.

    Args:
        step: the optimizer step, from 0.
        total: the step at which the rate reaches 0 (warm-up included); at least 1.
        warmup_steps: steps of linear warm-up (0: none).
        peak: the rate at the end of the warm-up; 1 for a multiplier.

    Returns:
        The learning rate (or multiplier) for ``step``.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total - warmup_steps)  # steps of the cosine phase
    elapsed = step - warmup_steps
    # The same angle, rounded as each user has always rounded it, so their learning rates stay
    # bit-identical: the judges' (with warm-up) as a fraction, the trainer's (without) as a quotient.
    angle = math.pi * min(1.0, elapsed / span) if warmup_steps else math.pi * min(elapsed, span) / span
    return peak * 0.5 * (1.0 + math.cos(angle))
