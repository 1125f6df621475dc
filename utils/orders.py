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


@torch.no_grad()
def consistent_orders(looks: Tensor, rounds: int = 2) -> Tensor:
    """Per frame, the order of the slots that makes each slot look like itself across the video.

    Where two objects cross, whatever follows them (a tracker, a learned localiser) may hand them over to
    each other's slot. Each round takes every slot's mean look over the frames, ``M_k = mean_t L[t, k]``, and
    keeps, in every frame, the order ``s`` (among all K!) that minimises ``sum_k |L[t, s(k)] - M_k|^2``. The
    identity order wins ties (look-alike objects keep the order they came in), and the orders are relabelled
    so that frame 0 keeps its own: only later frames are reordered against it.

    Args:
        looks: ``(B, T, K, D)`` what each slot looks like in each frame (pixels of a window, or features).
        rounds: How many times the means are recomputed from the reordered looks.

    Returns:
        ``(B, T, K)`` int64 indices: slot k of frame t takes what slot ``index[b, t, k]`` held, as
        :func:`reorder` applies it.
    """
    batch, frames, slots = looks.shape[:3]
    index = torch.arange(slots, device=looks.device).expand(batch, frames, slots)
    if slots < 2:
        return index
    orders = all_orders(slots, looks.device)  # (P, K)
    looks = looks.float()
    for _ in range(rounds):
        current = reorder(looks, index)  # (B, T, K, D)
        means = current.mean(dim=1)  # (B, K, D)
        cost = (current[:, :, orders] - means[:, None, None]).pow(2).sum(dim=(-1, -2))  # (B, T, P)
        cost[..., 0] -= 1e-3 * cost[..., 0] + 1e-6  # the identity wins ties
        order = orders[cost.argmin(dim=-1)]  # (B, T, K)
        relabel = order[:, :1].argsort(dim=-1).expand_as(order)  # frame 0 keeps its order
        index = torch.gather(index, 2, torch.gather(order, 2, relabel))
    return index


def reorder(values: Tensor, index: Tensor) -> Tensor:
    """``values`` ``(B, T, K, ...)`` with slot k of frame t taking what slot ``index[b, t, k]`` held (the
    indices of :func:`consistent_orders`, ``(B, T, K)``); gradients follow the values."""
    index = index.view(*index.shape, *[1] * (values.dim() - 3))
    return torch.gather(values, 2, index.expand_as(values))
