"""The shared shape of the Baseline VAE and the LSTM-VAE: one latent z_t per frame, decoded frame by frame.

Both encode every frame with the shared conv encoder (time folded into the batch), keep one code
``z`` of shape ``(B, T, latent_dim)`` and decode each z_t with the shared conv decoder. They differ in the
posterior (per frame, or through an LSTM) and the prior (N(0, I), or a learned recurrent prior): the
hooks each overrides. Neither has an explicit content/motion split, so both use the implicit protocol of
:mod:`models.base`: content is the time-average of the per-frame codes, motion each frame's deviation.
"""

from __future__ import annotations

from torch import Tensor

from models.base import VideoVAE
from models.decoders import FrameDecoder
from models.encoders import FrameEncoder


class FrameLatentVAE(VideoVAE):
    """A video VAE with one latent per frame; subclasses set the posterior and the prior.

    Args:
        **config_fields: fields of the model's config, which has ``latent_dim`` besides the common ones.
    """

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        cfg = self.config
        self.encoder = FrameEncoder(cfg.image_size, cfg.channels, cfg.width, cfg.feature_dim, norm=cfg.norm)
        self.decoder = FrameDecoder(cfg.latent_dim, cfg.image_size, cfg.channels, cfg.width, norm=cfg.norm,
                                    output_bias=cfg.output_bias)

    @property
    def latent_layout(self) -> dict[str, tuple]:
        return {"z": ("B", "T", self.config.latent_dim)}

    def _frame_features(self, video: Tensor) -> Tensor:
        """Encoder features of every frame, ``(B, T, feature_dim)``."""
        batch, frames, channels, height, width = video.shape
        features = self.encoder(video.reshape(batch * frames, channels, height, width))  # (B * T, F)
        return features.view(batch, frames, -1)  # (B, T, F)

    def _decode_logits(self, latents: dict[str, Tensor]) -> Tensor:
        return self.decoder.decode_sequence(latents["z"])  # (B, T, C, H, W)

    @property
    def content_dim(self) -> int:
        """Implicit protocol: the content code is a time-average of z, so it has z's size."""
        return self.config.latent_dim

    @property
    def motion_dim(self) -> int:
        """Implicit protocol: the motion code is z's deviation from its time-average."""
        return self.config.latent_dim

    def _factors(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        codes = latents["z"]  # (B, T, D)
        content = codes.mean(dim=1)  # (B, D)
        return content, codes - content[:, None]  # (B, D), (B, T, D)

    def _latents_from_factors(self, content: Tensor, motion: Tensor) -> dict[str, Tensor]:
        return {"z": content[:, None] + motion}  # (B, T, D)
