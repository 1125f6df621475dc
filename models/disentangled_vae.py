"""Model 3, the Disentangled VAE: a content code per video and a motion code per frame.

Architecture:

- Content: a conv encoder over the frame average ``(B, C, H, W)`` gives ``q(c | x)`` of shape
  ``(B, Dc)``, prior N(0, I). The average is the same for any order of the frames, so the content code is
  invariant to shuffling time.
- Motion: per-frame conv features of the frame differences ``x[t+1] - x[t]`` ``(B, T-1, C, H, W)``, a zero
  feature prepended for frame 0 (it has no previous frame), then a bidirectional LSTM (one fused call) give
  ``q(m_t | x)`` for t = 0..T-1, shape ``(B, T, Dm)``. Differences ignore anything constant over time, so
  the motion code is invariant to adding one image to every frame; the bidirectional LSTM lets each m_t
  integrate the differences around it into an absolute position.
- ONE decoder generates frame t from ``concat(c, m_t)``, a function of the codes alone.

Design choice: motion is one code PER FRAME with the learned recurrent prior ``p(m_t | m_<t)`` (DSVAE's
dynamic prior, Li & Mandt 2018), not one code per video. A per-frame code can follow any trajectory
(bounces included) and lets ``sample`` produce any number of frames; a per-video code would have to be
unrolled by a deterministic decoder recurrence.

Leakage paths, and the options that close them (OFF by default; the evaluation measures them):

- The frame average still shows where the digits went (a smear along the trajectory), so the content code
  can encode positions. ``content_pooling="global"`` averages the content encoder's conv features over
  space before the content head, making the content code (approximately) translation-invariant.
- Frame differences show digit shapes (the digit appears in them at both positions), so the motion code
  can encode identity. ``motion_blur=k`` (odd k > 1) box-blurs the differences with a k x k kernel before
  the motion encoder, keeping where mass moved but removing stroke detail; and a small ``motion_dim`` is a
  narrow bottleneck that leaves little room for identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import (
    DiagonalGaussian,
    RecurrentGaussianPrior,
    VideoVAE,
    VideoVAEConfig,
    check_choice,
    check_positive_int,
)
from models.decoders import FrameDecoder
from models.encoders import POOLINGS, FrameEncoder


@dataclass(frozen=True)
class DisentangledVAEConfig(VideoVAEConfig):
    """Config of :class:`DisentangledVAE` (fields of :class:`~models.base.VideoVAEConfig` plus these).

    ``feature_dim`` defaults to 128 (not 256): this model has two encoders, and the smaller features keep
    its parameter count comparable to the other two models.

    Attributes:
        content_dim: Size Dc of the content code.
        motion_dim: Size Dm of each frame's motion code.
        lstm_hidden: Hidden size of each direction of the motion LSTM.
        prior_hidden: Hidden size of the motion prior LSTM.
        content_pooling: ``"flatten"`` (default) or ``"global"`` (translation-invariant content features).
        motion_blur: Odd box-blur kernel size applied to the frame differences; 1 (default) is no blur.
    """

    feature_dim: int = 128
    content_dim: int = 128
    motion_dim: int = 128
    lstm_hidden: int = 256
    prior_hidden: int = 256
    content_pooling: str = "flatten"
    motion_blur: int = 1

    def validate(self) -> None:
        super().validate()
        for name in ("content_dim", "motion_dim", "lstm_hidden", "prior_hidden"):
            check_positive_int(name, getattr(self, name))
        check_choice("content_pooling", self.content_pooling, POOLINGS)
        check_positive_int("motion_blur", self.motion_blur)
        if self.motion_blur % 2 == 0 or self.motion_blur >= self.image_size:
            raise ValueError(
                f"motion_blur must be an odd kernel size below image_size, got {self.motion_blur!r}"
            )


class DisentangledVAE(VideoVAE):
    """Content code from the frame average, per-frame motion codes from frame differences, one decoder.

    The loss has two KL terms: ``kl_content`` to N(0, I) and ``kl_motion``, frame t's
    ``KL(q(m_t | x) || p(m_t | m_<t))`` with m_<t the posterior samples. ``split`` returns the two codes'
    posterior means. See the module docstring for the design and the leakage options.

    Args:
        **config_fields: Fields of :class:`DisentangledVAEConfig`, e.g.
            ``DisentangledVAE(content_dim=128, motion_dim=128)``.
    """

    name = "disentangled"
    config_class = DisentangledVAEConfig

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        cfg = self.config
        self.content_encoder = FrameEncoder(
            cfg.image_size, cfg.channels, cfg.width, cfg.feature_dim, pooling=cfg.content_pooling, norm=cfg.norm
        )
        self.content_head = nn.Linear(cfg.feature_dim, 2 * cfg.content_dim)
        self.motion_encoder = FrameEncoder(cfg.image_size, cfg.channels, cfg.width, cfg.feature_dim, norm=cfg.norm)
        self.motion_lstm = nn.LSTM(cfg.feature_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.motion_head = nn.Linear(2 * cfg.lstm_hidden, 2 * cfg.motion_dim)
        self.motion_prior = RecurrentGaussianPrior(cfg.motion_dim, cfg.prior_hidden)
        self.decoder = FrameDecoder(
            cfg.content_dim + cfg.motion_dim, cfg.image_size, cfg.channels, cfg.width, norm=cfg.norm
        )

    @property
    def latent_layout(self) -> dict[str, tuple]:
        return {"content": ("B", self.config.content_dim), "motion": ("B", "T", self.config.motion_dim)}

    @property
    def content_dim(self) -> int:
        return self.config.content_dim

    @property
    def motion_dim(self) -> int:
        return self.config.motion_dim

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        batch, frames, channels, height, width = video.shape
        content_features = self.content_encoder(video.mean(dim=1))  # (B, F)
        content = DiagonalGaussian.from_parameters(self.content_head(content_features))  # (B, Dc)

        frame_differences = video[:, 1:] - video[:, :-1]  # (B, T-1, C, H, W)
        differences = frame_differences.reshape(batch * (frames - 1), channels, height, width)
        blur = self.config.motion_blur
        if blur > 1:
            differences = F.avg_pool2d(
                differences, blur, stride=1, padding=blur // 2, count_include_pad=False
            )  # same size
        features = self.motion_encoder(differences).view(batch, frames - 1, -1)  # (B, T-1, F)
        features = torch.cat([features.new_zeros(batch, 1, features.shape[-1]), features], dim=1)  # (B, T, F)
        hidden, _ = self.motion_lstm(features)  # (B, T, 2H)
        motion = DiagonalGaussian.from_parameters(self.motion_head(hidden))  # (B, T, Dm)
        return {"content": content, "motion": motion}

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        return {"content": None, "motion": self.motion_prior(latents["motion"])}

    def _decode_logits(self, latents: dict[str, Tensor]) -> Tensor:
        content, motion = latents["content"], latents["motion"]  # (B, Dc), (B, T, Dm)
        batch, frames, _ = motion.shape
        codes = torch.cat([content[:, None].expand(batch, frames, -1), motion], dim=-1)  # (B, T, Dc + Dm)
        return self.decoder.decode_sequence(codes)  # (B, T, C, H, W)

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        device, dtype = self._device_dtype()
        content_shape = (num_samples, self.config.content_dim)
        content = torch.randn(content_shape, generator=generator, device=device, dtype=dtype)
        return {"content": content, "motion": self.motion_prior.sample(num_samples, num_frames, generator)}

    def _factors(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return latents["content"], latents["motion"]

    def _latents_from_factors(self, content: Tensor, motion: Tensor) -> dict[str, Tensor]:
        return {"content": content, "motion": motion}
