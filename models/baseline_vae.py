"""Model 1, the Baseline VAE: every frame encoded, sampled and decoded on its own; no temporal model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.config import VideoVAEConfig, check_positive_int
from models.distributions import DiagonalGaussian
from models.frame_latent_vae import FrameLatentVAE


@dataclass(frozen=True)
class BaselineVAEConfig(VideoVAEConfig):
    """Config of :class:`BaselineVAE` (fields of :class:`~models.config.VideoVAEConfig` plus these).

    ``feature_dim`` defaults to 512 (not 256) so the three models have comparable parameter counts.

    Attributes:
        latent_dim: Size of each frame's code z_t.
    """

    feature_dim: int = 512
    latent_dim: int = 256

    def validate(self) -> None:
        super().validate()
        check_positive_int("latent_dim", self.latent_dim)


class BaselineVAE(FrameLatentVAE):
    """A per-frame VAE: ``q(z_t | x_t)``, a standard normal prior per frame, ``p(x_t | z_t)``.

    Frames never see each other, so samples are independent frames (no coherent motion): the comparison
    baseline. Content/motion verbs use the implicit protocol of :mod:`models.base`: content is the
    time-average of the per-frame posterior means, motion each frame's deviation from it.

    Args:
        **config_fields: Fields of :class:`BaselineVAEConfig`, e.g. ``BaselineVAE(latent_dim=256)``.
    """

    name = "baseline"
    display_name = "Baseline VAE"
    config_class = BaselineVAEConfig
    has_motion_prior = False  # its prior is N(0, I) per frame: a fitted prior replaces the motion code too
    motion_prior_name = "N(0, I) per frame"

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        self.posterior_head = nn.Linear(self.config.feature_dim, 2 * self.config.latent_dim)

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        parameters = self.posterior_head(self._frame_features(video))  # (B, T, 2D)
        return {"z": DiagonalGaussian.from_parameters(parameters)}

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        return {"z": None}  # N(0, I) for every frame

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        device, dtype = self._device_dtype()
        shape = (num_samples, num_frames, self.config.latent_dim)
        return {"z": torch.randn(shape, generator=generator, device=device, dtype=dtype)}

    def _continue_latents(self, observed: dict[str, Tensor], posteriors: dict[str, DiagonalGaussian],
                          future_frames: int, generator: torch.Generator | None,
                          deterministic: bool) -> dict[str, Tensor]:
        """No temporal model: the last observed frame's code, held (its posterior mean, or one draw from
        its posterior per sample), so the prediction is that frame as the model reconstructs it."""
        if deterministic:
            last = observed["z"][:, -1:]  # (B, 1, D)
        else:
            last = posteriors["z"].sample(generator)[:, -1:]
        return {"z": last.expand(-1, future_frames, -1)}  # (B, F, D)

    def prediction_description(self) -> str:
        return ("no temporal model: the last observed frame's code repeated (its posterior mean; a draw from "
                "its posterior per stochastic sample), i.e. the last frame as reconstructed: the floor")
