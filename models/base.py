"""Shared machinery of the video VAEs: the Gaussian, the output, the base class and the recurrent prior.

Videos are float tensors ``(B, T, C, H, W)`` in [0, 1] (``C = 1``, 64x64 for Moving MNIST).

Loss reduction (every model): the decoder outputs logits and ``recon = sigmoid(logits)``. The
reconstruction loss (``"bce"``: binary cross-entropy with logits; ``"mse"``: squared error of the sigmoid
output) is SUMMED over pixels and frames of a video and AVERAGED over the batch; each KL term is SUMMED
over latent dimensions (and frames) and AVERAGED over the batch. ``loss = recon_loss + beta * kl_scale *
kl``, where ``kl`` is the sum of the KL terms and ``kl_scale`` is the trainer's warm-up factor.

Content/motion protocol (the ``split``/``combine``/``swap``/``interpolate`` verbs on every model):
the Disentangled VAE splits a video into its two codes (posterior means). A model with one latent per
frame, ``z`` of shape ``(B, T, D)`` (Baseline, LSTM-VAE), has no explicit split, so it uses this implicit
one: content is the time-average of the per-frame posterior means, ``c = mean_t mu_t`` of shape
``(B, D)``, and motion is each frame's deviation from it, ``m_t = mu_t - c`` of shape ``(B, T, D)``;
``combine(c, m) = decode(c[:, None] + m)``. The same experiments then ask, for all three models, whether
explicit separation beats implicit.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RECON_LOSSES = ("bce", "mse")
NORMS = ("group", "none")
FACTORS = ("content", "motion")


# ----------------------------------------------------------------------------- validation helpers


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_finite_number(name: str, value: Any, minimum: float | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (and at least ``minimum``, if given)."""
    valid = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not valid or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_shapes(tensors: Mapping[str, Tensor], layout: Mapping[str, tuple], what: str) -> None:
    """Check named tensors against a layout such as ``{"z": ("B", "T", 256)}``.

    Letters are sizes that must agree across tensors (and be >= 1); integers are exact sizes.

    Args:
        tensors: The tensors by name.
        layout: The expected shape of each name.
        what: How the error message names the mapping (e.g. ``"latents"``).

    Raises:
        ValueError: On missing or extra names, or on a shape that does not match.
    """
    if not isinstance(tensors, Mapping) or set(tensors) != set(layout):
        got = sorted(tensors) if isinstance(tensors, Mapping) else type(tensors).__name__
        raise ValueError(f"expected {what} with keys {sorted(layout)}, got {got}")
    sizes: dict[str, int] = {}
    for key, pattern in layout.items():
        shape = tuple(tensors[key].shape)
        matches = len(shape) == len(pattern)
        for size, want in zip(shape, pattern, strict=False):
            if isinstance(want, str):
                matches = matches and size >= 1 and sizes.setdefault(want, size) == size
            else:
                matches = matches and size == want
        if not matches:
            pattern_text = ", ".join(str(want) for want in pattern)
            known = "".join(f", {name} = {size}" for name, size in sizes.items() if name in pattern)
            raise ValueError(f"expected {what}[{key!r}] of shape ({pattern_text}){known}, got {shape}")


def config_fields(config: Any) -> dict[str, Any]:
    """Turn a config (dataclass instance, mapping or ``None``) into a plain dict of fields."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a dataclass instance, a dict or None, got {type(config).__name__}")


def make_config(config_class: type, fields: Mapping[str, Any]) -> Any:
    """Build ``config_class(**fields)``, naming the valid keys when some are unknown."""
    valid = [field.name for field in dataclasses.fields(config_class)]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} keys {unknown}; valid keys: {valid}")
    return config_class(**fields)


@dataclass(frozen=True)
class VideoVAEConfig:
    """Fields every video VAE has; each model's config adds its own and may change the defaults.

    Attributes:
        image_size: Side of the square frames; a multiple of 16, at least 16.
        channels: Channels per frame (1 for Moving MNIST).
        width: Base channel count of the conv encoder/decoder.
        feature_dim: Size of the encoder's per-frame feature vector.
        beta: Weight of the KL term (beta-VAE).
        recon_loss: ``"bce"`` or ``"mse"``.
        norm: ``"group"`` (GroupNorm after every hidden convolution) or ``"none"`` (cheaper under bf16).
        output_bias: Initial bias of the conv decoder's output logits: the frame a freshly built model
            draws before it has learned anything. The default -3 starts at a dark background, as Moving MNIST
            is (about 5% ink: sigmoid(-3) = 0.047), so the first steps are not spent learning that the
            background is black; 0 (the earlier default) starts every pixel at grey (sigmoid 0.5).
    """

    image_size: int = 64
    channels: int = 1
    width: int = 32
    feature_dim: int = 256
    beta: float = 4.0
    recon_loss: str = "bce"
    norm: str = "group"
    output_bias: float = -3.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its allowed values."""
        check_positive_int("image_size", self.image_size)
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 and >= 16, got {self.image_size!r}")
        for name in ("channels", "width", "feature_dim"):
            check_positive_int(name, getattr(self, name))
        check_finite_number("beta", self.beta, minimum=0)
        check_choice("recon_loss", self.recon_loss, RECON_LOSSES)
        check_choice("norm", self.norm, NORMS)
        check_finite_number("output_bias", self.output_bias)


# ----------------------------------------------------------------------------- distributions, output


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


# ----------------------------------------------------------------------------- base model


class VideoVAE(nn.Module):
    """Base class: the public verbs and the loss; models implement the hooks below.

    Hooks: ``latent_layout`` (names and shapes of the codes), ``_posteriors`` (encoder), ``_priors``
    (prior of each code given the sampled codes; ``None`` means N(0, I)), ``_decode_logits`` (decoder, a
    function of the codes alone), ``_sample_latents`` (draws from the prior), and for the content/motion
    verbs ``content_dim``, ``motion_dim``, ``_factors`` and ``_latents_from_factors``
    (:class:`~models.frame_latent_vae.FrameLatentVAE` implements them with the implicit protocol of the
    module docstring).

    Args:
        **config_fields: Fields of the model's ``config_class``; the rest keep their defaults.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = VideoVAEConfig

    def __init__(self, **config_fields: Any) -> None:
        super().__init__()
        self._config = make_config(self.config_class, config_fields)

    @property
    def config(self) -> Any:
        """The frozen config dataclass this model was built from."""
        return self._config

    @classmethod
    def from_config(cls, config: Any) -> VideoVAE:
        """Build a model from its config dataclass or a dict of its fields."""
        return cls(**config_fields(config))

    # -- hooks ---------------------------------------------------------------------------------------
    @property
    def latent_layout(self) -> dict[str, tuple]:
        """Names and shapes of the codes, e.g. ``{"z": ("B", "T", 256)}``."""
        raise NotImplementedError

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        raise NotImplementedError

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        raise NotImplementedError

    def _decode_logits(self, latents: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    @property
    def content_dim(self) -> int:
        """Size of the content code of ``split``."""
        raise NotImplementedError

    @property
    def motion_dim(self) -> int:
        """Size of the per-frame motion code of ``split``."""
        raise NotImplementedError

    def _factors(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Content ``(B, Dc)`` and motion ``(B, T, Dm)`` codes of latent codes (the keys of ``latent_layout``)."""
        raise NotImplementedError

    def _latents_from_factors(self, content: Tensor, motion: Tensor) -> dict[str, Tensor]:
        """The inverse of :meth:`_factors`."""
        raise NotImplementedError

    # -- checks and helpers --------------------------------------------------------------------------
    def check_video(self, video: Tensor) -> None:
        """Raise ``ValueError`` unless ``video`` is ``(B, T, C, H, W)`` with the model's C, H, W, T >= 2."""
        size, channels = self.config.image_size, self.config.channels
        shape = tuple(video.shape)
        expected = (channels, size, size)
        if video.ndim != 5 or shape[2:] != expected or shape[1] < 2:
            hint = "; T must be at least 2" if video.ndim == 5 and shape[2:] == expected else ""
            raise ValueError(
                f"expected video of shape (B, T, {channels}, H, W) = (*, *, {channels}, {size}, "
                f"{size}), got {shape}{hint}"
            )

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        parameter = next(self.parameters())
        return parameter.device, parameter.dtype

    def reconstruction_loss(self, logits: Tensor, video: Tensor) -> Tensor:
        """Reconstruction loss summed over pixels and frames, averaged over the batch.

        Args:
            logits: ``(B, T, C, H, W)`` decoder logits.
            video: ``(B, T, C, H, W)`` targets in [0, 1].

        Returns:
            A scalar.
        """
        if self.config.recon_loss == "bce":
            total = F.binary_cross_entropy_with_logits(logits, video, reduction="sum")
        else:
            total = (torch.sigmoid(logits) - video).pow(2).sum()
        return total / video.shape[0]

    # -- the verbs -----------------------------------------------------------------------------------
    def encode(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        """Posteriors of the codes, by name (shapes: ``latent_layout``).

        Args:
            video: ``(B, T, C, H, W)`` in [0, 1], T >= 2.
        """
        self.check_video(video)
        return self._posteriors(video)

    def decode(self, latents: dict[str, Tensor]) -> Tensor:
        """Decode codes (keys and shapes as ``encode``, any T >= 1) to ``(B, T, C, H, W)`` probabilities."""
        check_shapes(latents, self.latent_layout, "latents")
        return torch.sigmoid(self._decode_logits(latents))

    def forward(
        self, video: Tensor, kl_scale: float = 1.0, generator: torch.Generator | None = None
    ) -> VAEOutput:
        """Encode, sample the posteriors, decode and compute the loss (reductions: module docstring).

        Args:
            video: ``(B, T, C, H, W)`` in [0, 1], T >= 2.
            kl_scale: KL warm-up factor set by the trainer (multiplies ``beta``).
            generator: Source of the posterior noise.

        Returns:
            A :class:`VAEOutput`.
        """
        self.check_video(video)
        posteriors = self._posteriors(video)
        latents = {key: posterior.sample(generator) for key, posterior in posteriors.items()}
        logits = self._decode_logits(latents)
        recon_loss = self.reconstruction_loss(logits, video)
        priors = self._priors(latents)
        batch = video.shape[0]
        kl_terms = {
            f"kl_{key}": posterior.kl(priors[key]).sum() / batch for key, posterior in posteriors.items()
        }
        kl = torch.stack(list(kl_terms.values())).sum()
        loss = recon_loss + self.config.beta * kl_scale * kl
        return VAEOutput(loss, recon_loss, kl, kl_terms, torch.sigmoid(logits), latents, posteriors)

    def reconstruct(self, video: Tensor) -> Tensor:
        """Decode the posterior means (deterministic). Wrap in ``torch.no_grad()`` when no gradient is needed.

        Returns:
            ``(B, T, C, H, W)`` probabilities.
        """
        return self.decode({key: posterior.mean for key, posterior in self.encode(video).items()})

    def sample(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Generate videos from the prior.

        Args:
            num_samples: Number of videos N.
            num_frames: Frames per video T (need not match training).
            generator: Source of all randomness; must live on the model's device.

        Returns:
            ``(N, T, C, H, W)`` probabilities.
        """
        check_positive_int("num_samples", num_samples)
        check_positive_int("num_frames", num_frames)
        return self.decode(self._sample_latents(num_samples, num_frames, generator))

    def split(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Content ``(B, Dc)`` and motion ``(B, T, Dm)`` from the posterior means (see module docstring)."""
        return self._factors({key: posterior.mean for key, posterior in self.encode(video).items()})

    def sample_factors(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Content ``(N, Dc)`` and motion ``(N, T, Dm)`` codes drawn from the prior, in ``split`` form.

        ``combine`` of the two equals ``sample`` with the same generator state. Used to keep one factor of
        a video and resample the other (``combine(split(x)[0], sample_factors(...)[1])``).
        """
        check_positive_int("num_samples", num_samples)
        check_positive_int("num_frames", num_frames)
        return self._factors(self._sample_latents(num_samples, num_frames, generator))

    def combine(self, content: Tensor, motion: Tensor) -> Tensor:
        """Decode a content code ``(B, Dc)`` with a motion code ``(B, T, Dm)`` to ``(B, T, C, H, W)``."""
        layout = {"content": ("B", self.content_dim), "motion": ("B", "T", self.motion_dim)}
        check_shapes({"content": content, "motion": motion}, layout, "factors")
        return self.decode(self._latents_from_factors(content, motion))

    def swap(self, content_video: Tensor, motion_video: Tensor) -> Tensor:
        """The content of ``content_video`` moving like ``motion_video`` (same B; T of ``motion_video``)."""
        content, _ = self.split(content_video)
        _, motion = self.split(motion_video)
        return self.combine(content, motion)

    def interpolate(self, video_a: Tensor, video_b: Tensor, steps: int, factor: str = "content") -> Tensor:
        """Move one factor linearly from A's code to B's, holding the other at A's.

        Args:
            video_a: ``(B, T, C, H, W)``.
            video_b: ``(B, T', C, H, W)``; T' must equal T when ``factor="motion"``.
            steps: Number of points, endpoints included (>= 2).
            factor: ``"content"`` or ``"motion"``.

        Returns:
            ``(steps, B, T, C, H, W)``: step 0 reconstructs A; with ``factor="content"`` the last step is
            ``swap(video_b, video_a)``.
        """
        check_choice("factor", factor, FACTORS)
        check_positive_int("steps", steps)
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (both endpoints), got {steps}")
        content_a, motion_a = self.split(video_a)
        content_b, motion_b = self.split(video_b)
        start, end = (content_a, content_b) if factor == "content" else (motion_a, motion_b)
        if start.shape != end.shape:
            raise ValueError(
                f"cannot interpolate {factor}: video_a gives {tuple(start.shape)}, "
                f"video_b gives {tuple(end.shape)}"
            )
        weights = torch.linspace(0.0, 1.0, steps, device=start.device, dtype=start.dtype)
        path = torch.lerp(start[None], end[None], weights.view(steps, *[1] * start.ndim))  # (S, B, ...)
        batch = start.shape[0]
        held = content_a if factor == "motion" else motion_a
        held = held[None].expand(steps, *held.shape).reshape(steps * batch, *held.shape[1:])
        path = path.reshape(steps * batch, *start.shape[1:])  # fold steps into the batch
        content, motion = (path, held) if factor == "content" else (held, path)
        frames = self.combine(content, motion)  # (S * B, T, C, H, W)
        return frames.view(steps, batch, *frames.shape[1:])
