"""Judges that read each video once per evaluation: :class:`RememberedReadings`.

One evaluation judges the same real test videos twice: the swap tally (:mod:`evaluation.judges.tally`)
``read``s each batch, and the generation metrics (:mod:`evaluation.generation`) ``describe`` it again in a
second pass over the test set. ``read`` is part of ``describe`` (the same detector pass and classifier on the
same tracked digits, pooled with the same weights: bitwise the same labels and trajectory), so a reading
remembered by the video's bytes serves both, and no number changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor


class RememberedReadings:
    """Wraps judges that have ``describe`` (:class:`evaluation.judges.networks.Judges`): ``describe`` of a
    video seen before (the same shape, dtype and bytes) returns the remembered reading, and ``read`` is
    taken from ``describe``. Every other attribute is the judges' own.

    Args:
        judges: judges with ``describe(video) -> {"trajectory", "log_probs", ...}``.
    """

    def __init__(self, judges: Any) -> None:
        if not hasattr(judges, "describe"):
            raise TypeError("RememberedReadings needs judges with describe(video)")
        self.judges = judges
        self._readings: dict[tuple, dict[str, Tensor]] = {}

    def __getattr__(self, name: str) -> Any:  # only for what this class does not define itself
        return getattr(self.__dict__["judges"], name)

    def describe(self, video: Tensor) -> dict[str, Tensor]:
        """The judges' ``describe(video)``, read once per distinct video batch."""
        key = _video_key(video)
        if key not in self._readings:
            self._readings[key] = self.judges.describe(video)
        return self._readings[key]

    @torch.no_grad()
    def read(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """``(labels (B, D) sorted, trajectory (B, T, D, 2))``, as the judges' ``read``, from :meth:`describe`."""
        reading = self.describe(video)
        return reading["log_probs"].argmax(dim=-1).sort(dim=1).values, reading["trajectory"]

    @property
    def remembered(self) -> int:
        """How many distinct video batches have been read."""
        return len(self._readings)


def _video_key(video: Tensor) -> tuple:
    data = video.detach().contiguous().cpu()
    digest = hashlib.sha1(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"").hexdigest()
    return tuple(data.shape), str(data.dtype), str(video.device), digest
