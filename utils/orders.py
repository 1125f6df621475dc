"""Every order of K slots: how digits, tracked positions and slots are matched when their order carries
no meaning (a video's digits, a tracker's slots). Each caller scores every order and keeps the best."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def all_orders(count: int, device: torch.device | str | None = None) -> Tensor:
    """The ``count!`` orders of ``count`` slots, ``(count!, count)`` int64, the identity first.

    Row ``p`` maps slot ``k`` to ``orders[p, k]``; ``values[..., orders, :]`` reorders a tensor's slot axis
    by every order at once (a new axis of size ``count!`` before the slot axis).
    """
    return torch.tensor(list(itertools.permutations(range(count))), dtype=torch.long, device=device)
