"""Chance rescaling: a score whose chance level is not 0 (a probe's accuracy, a judged swap) set on a common
scale, 0 at chance and 1 perfect. Used by the code metrics and the chance-rescaled swap scores."""

from __future__ import annotations

import math

import numpy as np


def chance_rescaled(value: float, chance: float) -> float:
    """``(value - chance) / (1 - chance)`` clipped to [0, 1]: 0 at (or below) chance, 1 perfect.

    NaN when either is NaN or not finite, or when ``chance >= 1``.
    """
    if not (math.isfinite(value) and math.isfinite(chance)) or chance >= 1:
        return math.nan
    return float(np.clip((value - chance) / (1.0 - chance), 0.0, 1.0))
