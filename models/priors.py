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

    def continue_codes(self, codes: Tensor, extra: int, generator: torch.Generator | None = None,
                       deterministic: bool = True) -> Tensor:
        """Continue code sequences past their end, conditioned on every code so far.

        The LSTM reads ``[0, z_0, ..., z_{T-1}]`` (teacher-forced on the given codes, as in training), then
        runs on by itself: each new code is the prior's mean (``deterministic``, the mean path) or a draw
        from it, and is fed back as the next input. The LSTM has no notion of the training length, so any
        ``extra`` works; past the training length its state is one it has not been trained on.

        Args:
            codes: ``(B, T, D)`` observed codes (posterior means), ``T >= 1``.
            extra: frames to add (at least 1).
            generator: the draws' noise (unused when ``deterministic``).
            deterministic: feed back the prior's means instead of draws.

        Returns:
            ``(B, extra, D)`` the continued codes only.
        """
        batch, _, dim = codes.shape
        inputs = torch.cat([codes.new_zeros(batch, 1, dim), codes], dim=1)  # (B, T + 1, D)
        hidden, state = self.lstm(inputs)  # the last output is p(z_T | z_<=T-1)
        step = hidden[:, -1:]  # (B, 1, H)
        continued = []
        for index in range(extra):
            prior = DiagonalGaussian.from_parameters(self.head(step))  # (B, 1, D)
            code = prior.mean if deterministic else prior.sample(generator)
            continued.append(code)
            if index + 1 < extra:
                step, state = self.lstm(code, state)
        return torch.cat(continued, dim=1)  # (B, extra, D)
