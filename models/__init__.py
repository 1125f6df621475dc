"""The three video VAEs behind one API, and the single registry that names them.

``MODELS`` is the one source of truth for model names: the CLI's choices, the checkpoint loader and the
tests all read it.
"""

from __future__ import annotations

from typing import Any

from models.base import VideoVAE
from models.baseline_vae import BaselineVAE, BaselineVAEConfig
from models.config import VideoVAEConfig, config_fields
from models.disentangled_vae import DisentangledVAE, DisentangledVAEConfig
from models.distributions import DiagonalGaussian, VAEOutput
from models.lstm_vae import LSTMVAE, LSTMVAEConfig

MODELS: dict[str, type[VideoVAE]] = {
    "baseline": BaselineVAE,
    "lstm": LSTMVAE,
    "disentangled": DisentangledVAE,
}


def build_model(name: str, config: Any = None, **overrides: Any) -> VideoVAE:
    """Build a registered model from a config and keyword overrides.

    Args:
        name: A key of ``MODELS``.
        config: The model's config dataclass, a dict of its fields, or ``None`` for the defaults.
        **overrides: Fields that replace those of ``config``.

    Returns:
        The model.

    Raises:
        ValueError: For an unknown name (the message lists the valid names) or unknown config keys (the
            message lists the valid keys), or an invalid field value.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {list(MODELS)}")
    fields = config_fields(config)
    fields.update(overrides)
    return MODELS[name].from_config(fields)


__all__ = [
    "MODELS",
    "BaselineVAE",
    "BaselineVAEConfig",
    "DiagonalGaussian",
    "DisentangledVAE",
    "DisentangledVAEConfig",
    "LSTMVAE",
    "LSTMVAEConfig",
    "VAEOutput",
    "VideoVAE",
    "VideoVAEConfig",
    "build_model",
]
