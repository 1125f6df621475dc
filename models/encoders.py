"""Per-frame convolutional encoder shared by the three video VAEs.

The encoder sees single frames ``(N, C, H, W)``; the models fold time into the batch (``N = B * T``)
before calling it, so one convolution pass covers every frame of every video.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.config import NORMS

POOLINGS = ("flatten", "global")


def downsampling_stages(image_size: int) -> tuple[int, int]:
    """How many stride-2 stages take a square image down to a small grid.

    Halves while the side is above 4 and even, so powers of two end at 4x4 (64 -> 4 stages,
    32 -> 3 stages) and every other multiple of 16 ends at 3x3 or 5x5 (e.g. 48 -> 3x3).

    Args:
        image_size: Side of the square input frames.

    Returns:
        ``(stages, grid)``: the number of stride-2 stages and the side of the final feature grid.
    """
    stages, grid = 0, image_size
    while grid > 4 and grid % 2 == 0:
        grid //= 2
        stages += 1
    return stages, grid


def stage_channels(width: int, stages: int) -> list[int]:
    """Channels after each downsampling stage: ``width`` doubling per stage, capped at ``8 * width``."""
    return [width * 2 ** min(stage, 3) for stage in range(stages)]


class ChannelsFirstGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (the same parameters and numbers) that normalises a channels-first copy on the CPU.

    The convolutions run channels-last (oneDNN's faster layout), but PyTorch's CPU GroupNorm over a
    channels-last bf16 input, forward and backward, takes about five times as long as over the same numbers
    channels-first: copying first is far cheaper (``benchmarks/NOTES.md`` row 93)."""

    def forward(self, input: Tensor) -> Tensor:
        return super().forward(input.contiguous() if input.device.type == "cpu" else input)


def conv_norm(channels: int, norm: str) -> nn.Module:
    """The normalisation after a hidden convolution: GroupNorm (batch-independent, so train and eval behave
    alike even for batch 2) or none (cheaper under bf16 autocast, where GroupNorm takes a slow path)."""
    return ChannelsFirstGroupNorm(math.gcd(8, channels), channels) if norm == "group" else nn.Identity()


class FrameEncoder(nn.Module):
    """Conv encoder from frames ``(N, C, H, W)`` to feature vectors ``(N, feature_dim)``.

    Each stage is a 4x4 stride-2 convolution, GroupNorm and LeakyReLU; the number of stages follows
    from ``image_size`` (see :func:`downsampling_stages`). The final grid is either flattened (keeps
    where things are) or averaged over space (``pooling="global"``: approximately translation-invariant,
    used to stop a content code from encoding positions), then projected to ``feature_dim``.

    Args:
        image_size: Side of the square input frames.
        in_channels: Channels of the input frames.
        width: Channels of the first stage (the base channel count).
        feature_dim: Size of the output feature vector.
        pooling: ``"flatten"`` or ``"global"`` (global average pooling over the final grid).
        norm: ``"group"`` (GroupNorm after each convolution) or ``"none"``.

    The convolution weights are kept channels-last (NHWC): oneDNN's and cuDNN's fastest layout, about 20%
    faster per training step on a CPU than NCHW (benchmarks/NOTES.md).
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        width: int,
        feature_dim: int,
        pooling: str = "flatten",
        norm: str = "group",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        stages, grid = downsampling_stages(image_size)
        layers: list[nn.Module] = []
        previous = in_channels
        for channels in stage_channels(width, stages):
            # No conv bias before GroupNorm: its shift makes it redundant.
            layers += [
                nn.Conv2d(previous, channels, 4, stride=2, padding=1, bias=norm == "none"),
                conv_norm(channels, norm),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            previous = channels
        self.pooling = pooling
        self.convs = nn.Sequential(*layers)
        flat_dim = previous if pooling == "global" else previous * grid * grid
        self.project = nn.Sequential(nn.Linear(flat_dim, feature_dim), nn.LeakyReLU(0.2, inplace=True))
        self.convs.to(memory_format=torch.channels_last)

    def forward(self, frames: Tensor) -> Tensor:
        """Encode a batch of frames.

        Args:
            frames: ``(N, C, H, W)`` frames.

        Returns:
            ``(N, feature_dim)`` feature vectors.
        """
        features = self.convs(frames)  # (N, C_last, g, g)
        if self.pooling == "global":
            features = features.mean(dim=(2, 3))  # (N, C_last)
        else:
            features = features.permute(0, 2, 3, 1).flatten(1)  # (N, g * g * C_last): channels-last order, no copy
        return self.project(features)  # (N, feature_dim)
