"""Model 1, the Baseline VAE: every frame encoded, sampled and decoded on its own; no temporal model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.base import DiagonalGaussian, VideoVAE, VideoVAEConfig, check_positive_int
from models.decoders import FrameDecoder
from models.encoders import FrameEncoder


@dataclass(frozen=True)
class BaselineVAEConfig(VideoVAEConfig):
    """Config of :class:`BaselineVAE` (fields of :class:`~models.base.VideoVAEConfig` plus these).

    ``feature_dim`` defaults to 512 (not 256) so the three models have comparable parameter counts.

    Attributes:
        latent_dim: Size of each frame's code z_t.
    """

    feature_dim: int = 512
    latent_dim: int = 256

    def validate(self) -> None:
        super().validate()
        check_positive_int("latent_dim", self.latent_dim)


class BaselineVAE(VideoVAE):
    """A per-frame VAE: ``q(z_t | x_t)``, a standard normal prior per frame, ``p(x_t | z_t)``.

    Frames never see each other, so samples are independent frames (no coherent motion): the comparison
    baseline. Content/motion verbs use the implicit protocol of :mod:`models.base`: content is the
    time-average of the per-frame posterior means, motion each frame's deviation from it.

    Args:
        **config_fields: Fields of :class:`BaselineVAEConfig`, e.g. ``BaselineVAE(latent_dim=256)``.
    """

    name = "baseline"
    config_class = BaselineVAEConfig

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        cfg = self.config
        self.encoder = FrameEncoder(cfg.image_size, cfg.channels, cfg.width, cfg.feature_dim, norm=cfg.norm)
        self.posterior_head = nn.Linear(cfg.feature_dim, 2 * cfg.latent_dim)
        self.decoder = FrameDecoder(cfg.latent_dim, cfg.image_size, cfg.channels, cfg.width, norm=cfg.norm)

    @property
    def latent_layout(self) -> dict[str, tuple]:
        return {"z": ("B", "T", self.config.latent_dim)}

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        batch, frames, channels, height, width = video.shape
        features = self.encoder(video.reshape(batch * frames, channels, height, width))  # (B * T, F)
        parameters = self.posterior_head(features).view(batch, frames, -1)  # (B, T, 2D)
        return {"z": DiagonalGaussian.from_parameters(parameters)}

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        return {"z": None}  # N(0, I) for every frame

    def _decode_logits(self, latents: dict[str, Tensor]) -> Tensor:
        return self.decoder.decode_sequence(latents["z"])  # (B, T, C, H, W)

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        device, dtype = self._device_dtype()
        shape = (num_samples, num_frames, self.config.latent_dim)
        return {"z": torch.randn(shape, generator=generator, device=device, dtype=dtype)}
