"""Model 2, the LSTM-VAE: one unified latent z_t per frame, an LSTM posterior and a learned recurrent prior.

Per-frame conv features pass through a bidirectional LSTM (one fused call over the whole sequence), so
``q(z_t | x_{0:T-1})`` sees the whole video; by default the posterior head also sees frame t's own features
(``posterior_skip``). The prior ``p(z_t | z_<t)`` is an LSTM over the previous codes
(the dynamic prior of DSVAE, Li & Mandt 2018; the learned prior of SVG-LP, Denton & Fergus 2018): in
training it is teacher-forced on posterior samples, and sampling from it gives coherent motion. The
decoder is the per-frame conv decoder of z_t alone, so everything about a frame, what and where, lives
in its z_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.config import VideoVAEConfig, check_positive_int
from models.distributions import DiagonalGaussian
from models.frame_latent_vae import FrameLatentVAE
from models.priors import RecurrentGaussianPrior


@dataclass(frozen=True)
class LSTMVAEConfig(VideoVAEConfig):
    """Config of :class:`LSTMVAE` (fields of :class:`~models.config.VideoVAEConfig` plus these).

    Attributes:
        latent_dim: Size of each frame's code z_t.
        lstm_hidden: Hidden size of each direction of the posterior LSTM.
        prior_hidden: Hidden size of the prior LSTM.
        posterior_skip: Whether the posterior head also sees frame t's own conv features beside the LSTM's
            output (True, the default) or the LSTM's output alone (False, the earlier design). With the skip,
            a frame's code is at least as easy to learn as the Baseline's; without it every frame's
            information has to pass through the LSTM first, which slows learning (benchmarks/NOTES.md).
    """

    latent_dim: int = 256
    lstm_hidden: int = 256
    prior_hidden: int = 256
    posterior_skip: bool = True

    def validate(self) -> None:
        super().validate()
        for name in ("latent_dim", "lstm_hidden", "prior_hidden"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.posterior_skip, bool):
            raise ValueError(f"posterior_skip must be true or false, got {self.posterior_skip!r}")


class LSTMVAE(FrameLatentVAE):
    """Unified-latent sequential VAE: ``q(z_t | x)`` by a bidirectional LSTM, prior ``p(z_t | z_<t)``.

    The KL of frame t is ``KL(q(z_t | x) || p(z_t | z_<t))`` with z_<t the posterior samples. Content/motion
    verbs use the implicit protocol of :mod:`models.base`: content is the time-average of the per-frame
    posterior means, motion each frame's deviation from it.

    Args:
        **config_fields: Fields of :class:`LSTMVAEConfig`, e.g. ``LSTMVAE(latent_dim=256, lstm_hidden=256)``.
    """

    name = "lstm"
    display_name = "LSTM-VAE"
    config_class = LSTMVAEConfig

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        cfg = self.config
        self.posterior_lstm = nn.LSTM(cfg.feature_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        head_inputs = 2 * cfg.lstm_hidden + (cfg.feature_dim if cfg.posterior_skip else 0)
        self.posterior_head = nn.Linear(head_inputs, 2 * cfg.latent_dim)
        self.prior = RecurrentGaussianPrior(cfg.latent_dim, cfg.prior_hidden)

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        features = self._frame_features(video)  # (B, T, F)
        hidden, _ = self.posterior_lstm(features)  # (B, T, 2H)
        if self.config.posterior_skip:
            hidden = torch.cat([hidden, features], dim=-1)  # (B, T, 2H + F)
        return {"z": DiagonalGaussian.from_parameters(self.posterior_head(hidden))}  # (B, T, D)

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        return {"z": self.prior(latents["z"])}

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        return {"z": self.prior.sample(num_samples, num_frames, generator)}

    def _continue_latents(self, observed: dict[str, Tensor], posteriors: dict[str, DiagonalGaussian],
                          future_frames: int, generator: torch.Generator | None,
                          deterministic: bool) -> dict[str, Tensor]:
        """The recurrent prior run over the observed posterior means, then on by itself
        (:meth:`RecurrentGaussianPrior.continue_codes`)."""
        return {"z": self.prior.continue_codes(observed["z"], future_frames, generator, deterministic)}

    def prediction_description(self) -> str:
        return ("the learned recurrent prior p(z_t | z_<t), teacher-forced on the observed posterior means, "
                "then run on by itself (its mean path; draws for stochastic samples)")
