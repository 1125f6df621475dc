"""The learned recurrent prior ``p(z_t | z_<t)`` of the LSTM-VAE's and the Disentangled VAE's per-frame codes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.distributions import DiagonalGaussian


class RecurrentGaussianPrior(nn.Module):
    """Learned prior ``p(z_t | z_<t)``: an LSTM over the previous codes and a Gaussian head.

    In training the previous codes are posterior samples (teacher forcing), so the whole sequence
    takes one LSTM call over ``[0, z_0, ..., z_{T-2}]``; sampling feeds each draw back, one step at a time.

    Args:
        latent_dim: Size D of each code.
        hidden_size: LSTM hidden size.
    """

    def __init__(self, latent_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.lstm = nn.LSTM(latent_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 2 * latent_dim)

    def forward(self, codes: Tensor) -> DiagonalGaussian:
        """Teacher-forced prior of every frame.

        Args:
            codes: ``(B, T, D)`` codes (posterior samples).

        Returns:
            ``p(z_t | z_<t)`` for every t, of shape ``(B, T, D)``.
        """
        batch, _, dim = codes.shape
        previous = torch.cat([codes.new_zeros(batch, 1, dim), codes[:, :-1]], dim=1)  # (B, T, D)
        hidden, _ = self.lstm(previous)  # (B, T, H)
        return DiagonalGaussian.from_parameters(self.head(hidden))

    def sample(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw code sequences autoregressively.

        Returns:
            ``(num_samples, num_frames, D)`` codes.
        """
        previous = self.head.weight.new_zeros(num_samples, 1, self.latent_dim)  # (N, 1, D)
        state = None
        codes = []
        for _ in range(num_frames):
            hidden, state = self.lstm(previous, state)  # (N, 1, H)
            previous = DiagonalGaussian.from_parameters(self.head(hidden)).sample(generator)  # (N, 1, D)
            codes.append(previous)
        return torch.cat(codes, dim=1)  # (N, T, D)
