"""Per-frame convolutional decoder shared by the three video VAEs: the mirror of ``FrameEncoder``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.encoders import NORMS, conv_norm, downsampling_stages, stage_channels


class FrameDecoder(nn.Module):
    """Conv decoder from code vectors ``(N, code_dim)`` to frame logits ``(N, C, H, W)``.

    A linear layer maps the code to the encoder's final grid, then 4x4 stride-2 transposed convolutions
    (GroupNorm, LeakyReLU) retrace the encoder's stages in reverse; the last one outputs logits (no
    normalisation, no activation: the loss applies the sigmoid).

    Args:
        code_dim: Size of the input code vector.
        image_size: Side of the square output frames.
        out_channels: Channels of the output frames.
        width: Base channel count (the encoder's first stage; the decoder's last hidden stage).
        norm: ``"group"`` (GroupNorm after each hidden transposed convolution) or ``"none"``.
        output_bias: Initial bias of the output logits (0: every pixel starts at sigmoid 0.5).

    Weights are channels-last, as in :class:`~models.encoders.FrameEncoder`.
    """

    def __init__(
        self, code_dim: int, image_size: int, out_channels: int, width: int, norm: str = "group",
        output_bias: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        stages, grid = downsampling_stages(image_size)
        channels = stage_channels(width, stages)[::-1]  # e.g. [256, 128, 64, 32] for 64x64, width 32
        self.grid = grid
        self.first_channels = channels[0]
        self.project = nn.Sequential(
            nn.Linear(code_dim, channels[0] * grid * grid), nn.LeakyReLU(0.2, inplace=True)
        )
        layers: list[nn.Module] = []
        for stage, in_channels in enumerate(channels):
            last = stage == len(channels) - 1
            out = out_channels if last else channels[stage + 1]
            layers.append(nn.ConvTranspose2d(in_channels, out, 4, stride=2, padding=1, bias=last or norm == "none"))
            if not last:
                layers += [conv_norm(out, norm), nn.LeakyReLU(0.2, inplace=True)]
        self.deconvs = nn.Sequential(*layers)
        if output_bias:
            with torch.no_grad():  # set after construction: the seeded initialisation of the weights is unchanged
                layers[-1].bias.fill_(output_bias)
        self.deconvs.to(memory_format=torch.channels_last)

    def forward(self, codes: Tensor) -> Tensor:
        """Decode a batch of codes.

        Args:
            codes: ``(N, code_dim)`` code vectors.

        Returns:
            ``(N, C, H, W)`` logits.
        """
        hidden = self.project(codes)  # (N, C_first * g * g)
        hidden = hidden.view(-1, self.grid, self.grid, self.first_channels)  # (N, g, g, C_first)
        hidden = hidden.permute(0, 3, 1, 2)  # (N, C_first, g, g), channels-last in memory: no copy
        return self.deconvs(hidden)  # (N, C, H, W)

    def decode_sequence(self, codes: Tensor) -> Tensor:
        """Decode one code per frame, folding time into the batch.

        Args:
            codes: ``(B, T, code_dim)`` codes.

        Returns:
            ``(B, T, C, H, W)`` logits.
        """
        batch, frames, code_dim = codes.shape
        logits = self(codes.reshape(batch * frames, code_dim))  # (B * T, C, H, W)
        return logits.reshape(batch, frames, *logits.shape[1:])  # (B, T, C, H, W)
