"""The diagonal Gaussian every model's posteriors and priors are, and the output ``forward`` returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class DiagonalGaussian:
    """A Gaussian with diagonal covariance, batched over any leading shape.

    Args:
        mean: Means, any shape.
        logvar: Log-variances, the same shape; clamped to [-30, 20] so ``exp`` stays finite.
    """

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(
                f"mean and logvar must have the same shape, got {tuple(mean.shape)} and {tuple(logvar.shape)}"
            )
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @classmethod
    def from_parameters(cls, parameters: Tensor) -> DiagonalGaussian:
        """Split ``(..., 2 * D)`` head outputs into mean and log-variance ``(..., D)``."""
        mean, logvar = parameters.chunk(2, dim=-1)
        return cls(mean, logvar)

    @property
    def shape(self) -> torch.Size:
        return self.mean.shape

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample ``mean + std * eps``, noise from ``generator`` on the mean's device."""
        mean = self.mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        """The most likely value: the mean."""
        return self.mean

    def kl(self, other: DiagonalGaussian | None = None) -> Tensor:
        """Elementwise ``KL(self || other)``, or ``KL(self || N(0, I))`` when ``other`` is ``None``.

        Returns:
            A tensor of the distribution's shape (not reduced).
        """
        if other is None:
            return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        log_ratio = self.logvar - other.logvar
        squared_distance = (self.mean - other.mean).pow(2) * torch.exp(-other.logvar)
        return 0.5 * (squared_distance + log_ratio.exp() - 1.0 - log_ratio)


@dataclass
class VAEOutput:
    """What ``forward`` returns (reductions: see the module docstring).

    Attributes:
        loss: ``recon_loss + beta * kl_scale * kl``, a scalar.
        recon_loss: Reconstruction loss, summed over pixels and frames, averaged over the batch.
        kl: Sum of the KL terms.
        kl_terms: Each KL term by name (``"kl_z"``, or ``"kl_content"`` and ``"kl_motion"``).
        recon: ``(B, T, C, H, W)`` reconstruction probabilities (sigmoid of the logits).
        latents: The sampled codes the decoder used, by name.
        posteriors: The posteriors those codes were drawn from, by name.
    """

    loss: Tensor
    recon_loss: Tensor
    kl: Tensor
    kl_terms: dict[str, Tensor]
    recon: Tensor
    latents: dict[str, Tensor]
    posteriors: dict[str, DiagonalGaussian]
