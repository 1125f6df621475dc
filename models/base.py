"""The base class of the video VAEs: the public verbs, the loss and the hooks each model implements.

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

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import (
    VideoVAEConfig,
    check_choice,
    check_positive_int,
    check_shapes,
    config_fields,
    make_config,
)
from models.distributions import DiagonalGaussian, VAEOutput
from models.fitted_prior import FittedPrior

FACTORS = ("content", "motion")


def check_codes(codes: dict[str, Tensor], what: str) -> None:
    """Raise one ``ValueError`` unless every code is a finite floating tensor (one ``aminmax`` each, read
    back together)."""
    for name, code in codes.items():
        if not code.dtype.is_floating_point:
            raise ValueError(f"{what}: {name} must be a floating tensor, got dtype {code.dtype}")
    bounds = torch.stack([torch.stack(torch.aminmax(code.detach())).float() for code in codes.values()])
    if not bool(torch.isfinite(bounds).all()):
        names = [name for name, row in zip(codes, bounds.tolist(), strict=True) if not all(map(math.isfinite, row))]
        raise ValueError(f"{what}: {', '.join(names)} holds non-finite values (NaN or infinity)")


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
    display_name: ClassVar[str] = ""  # how reports and tables name the model, e.g. "Baseline VAE"
    config_class: ClassVar[type] = VideoVAEConfig
    # Whether the model has a learned motion prior (an ex-post fitted prior keeps it; models.fitted_prior).
    has_motion_prior: ClassVar[bool] = True
    motion_prior_name: ClassVar[str] = "learned recurrent prior p(m_t | m_<t)"

    def __init__(self, **config_fields: Any) -> None:
        super().__init__()
        self._config = make_config(self.config_class, config_fields)
        # Not a submodule: the weights (state_dict) stay the same with or without it.
        self.fitted_prior: FittedPrior | None = None

    def set_fitted_prior(self, prior: FittedPrior | None) -> None:
        """Sample from an ex-post fitted prior (:mod:`models.fitted_prior`) from now on; None restores the
        model's original prior. Raises ``ValueError`` for a prior of other code sizes."""
        if prior is not None:
            if prior.content_dim != self.content_dim:
                raise ValueError(f"the fitted prior's content size {prior.content_dim} does not match the "
                                 f"model's content_dim {self.content_dim}")
            if prior.motion is not None and prior.motion.dim != self.motion_dim:
                raise ValueError(f"the fitted prior's motion size {prior.motion.dim} does not match the "
                                 f"model's motion_dim {self.motion_dim}")
            if prior.content_slots not in (1, self.content_slots):
                raise ValueError(f"the fitted prior draws {prior.content_slots} content codes per video, but the "
                                 f"model's content is {self.content_slots} code(s): refit it for this model")
            if prior.paths is not None and prior.paths.slots != self.object_slots:
                raise ValueError(f"the fitted prior draws paths of {prior.paths.slots} objects, but the model's "
                                 f"motion code places {self.object_slots}: refit it for this model")
        self.fitted_prior = prior

    def prior_description(self) -> dict[str, Any]:
        """Which prior ``sample`` draws from: ``{"fitted": bool, "content": words, "motion": words}``."""
        own_motion = self.motion_prior_name
        if self.fitted_prior is None:
            return {"fitted": False, "content": "N(0, I)", "motion": own_motion}
        described = self.fitted_prior.describe()
        return {"fitted": True, "content": described["content"], "motion": described["motion"] or own_motion}

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

    def _continue_latents(self, observed: dict[str, Tensor], posteriors: dict[str, DiagonalGaussian],
                          future_frames: int, generator: torch.Generator | None,
                          deterministic: bool) -> dict[str, Tensor]:
        """Codes of ``future_frames`` frames after the observed ones (keys as ``latent_layout``, T = the future
        frames), from the observed posterior means ``observed`` (and ``posteriors``); the mode path when
        ``deterministic``, else one draw per row. Used by :meth:`predict`."""
        raise NotImplementedError

    def _prediction_start(self, video: Tensor, observed: dict[str, Tensor]) -> dict[str, Tensor]:
        """The observed codes :meth:`predict` continues from, given the observed ``video`` and its posterior
        means ``observed``: the means themselves unless a model refines them."""
        return observed

    def prediction_description(self) -> str:
        """How :meth:`predict` continues a video, in words (for reports and the metrics JSON)."""
        raise NotImplementedError

    @property
    def content_dim(self) -> int:
        """Size of the content code of ``split``."""
        raise NotImplementedError

    @property
    def motion_dim(self) -> int:
        """Size of the per-frame motion code of ``split``."""
        raise NotImplementedError

    @property
    def content_slots(self) -> int:
        """How many exchangeable per-object codes the content code concatenates (1: it is one code); the
        ex-post prior fits one mixture to them all (:mod:`models.fitted_prior`)."""
        return 1

    @property
    def object_slots(self) -> int:
        """How many objects the motion code places (0: it is not a code of object positions). With K > 0 the
        decoder reads nothing of the motion code but :meth:`object_positions`, and the ex-post prior draws
        the objects' paths (:mod:`models.fitted_prior`)."""
        return 0

    def learning_rate_scales(self) -> dict[str, float]:
        """Learning rates of parameter groups as multiples of the run's ``--lr``, by parameter-name prefix
        (e.g. ``{"localiser.": 3.0}``); parameters no prefix names keep ``--lr``. Empty: one rate for all."""
        return {}

    def object_positions(self, motion: Tensor) -> Tensor:
        """The objects' positions ``(B, T, K, 2)`` that the decoder reads from motion codes ``(B, T, Dm)``."""
        raise NotImplementedError(f"{type(self).__name__} has no object positions in its motion code")

    def with_object_positions(self, motion: Tensor, positions: Tensor) -> Tensor:
        """Motion codes changed so that :meth:`object_positions` of them is ``positions (B, T, K, 2)``."""
        raise NotImplementedError(f"{type(self).__name__} has no object positions in its motion code")

    def _factors(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Content ``(B, Dc)`` and motion ``(B, T, Dm)`` codes of latent codes (the keys of ``latent_layout``)."""
        raise NotImplementedError

    def _latents_from_factors(self, content: Tensor, motion: Tensor) -> dict[str, Tensor]:
        """The inverse of :meth:`_factors`."""
        raise NotImplementedError

    # -- checks and helpers --------------------------------------------------------------------------
    def check_video(self, video: Tensor) -> None:
        """Raise one ``ValueError`` unless ``video`` is a non-empty floating tensor ``(B, T, C, H, W)`` with
        the model's C, H, W, T >= 2, finite and in [0, 1].

        The values are checked with one ``aminmax`` (a single pass, one scalar pair read back): NaN fails
        both bounds, an infinity one of them, so finiteness costs nothing more.
        """
        if not isinstance(video, Tensor):
            raise ValueError(f"expected video as a torch.Tensor (B, T, C, H, W), got {type(video).__name__}")
        size, channels = self.config.image_size, self.config.channels
        shape = tuple(video.shape)
        expected = (channels, size, size)
        if video.ndim != 5 or shape[2:] != expected or shape[1] < 2:
            hint = "; T must be at least 2" if video.ndim == 5 and shape[2:] == expected else ""
            raise ValueError(
                f"expected video of shape (B, T, {channels}, H, W) = (*, *, {channels}, {size}, "
                f"{size}), got {shape}{hint}"
            )
        if shape[0] == 0:
            raise ValueError(f"expected at least one video, got an empty batch of shape {shape}")
        if not video.dtype.is_floating_point:
            hint = " (uint8 pixels: pass video.float() / 255)" if video.dtype == torch.uint8 else ""
            raise ValueError(f"expected video as floats in [0, 1], got dtype {video.dtype}{hint}")
        dtype = self._device_dtype()[1]
        if video.dtype != dtype and not torch.is_autocast_enabled(video.device.type):
            raise ValueError(f"video has dtype {video.dtype} but the model computes in {dtype}: pass "
                             f"video.to({dtype}) (or convert the model with model.to({video.dtype}))")
        low, high = torch.stack(torch.aminmax(video.detach())).float().tolist()  # one pass, one read-back
        if not (low >= 0.0 and high <= 1.0):  # NaN fails both comparisons
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"video holds non-finite values (min {low}, max {high}); expected floats in "
                                 "[0, 1]")
            hint = " (0-255 pixels: divide by 255)" if low >= 0.0 and high <= 255.0 else ""
            raise ValueError(f"expected video values in [0, 1], got min {low:.4g}, max {high:.4g}{hint}")

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
        """Decode codes (keys and shapes as ``encode``, any T >= 1) to ``(B, T, C, H, W)`` probabilities
        (``ValueError`` rather than a non-finite video: ``reconstruct``, ``sample``, ``combine``, ``swap`` and
        ``interpolate`` all decode here)."""
        check_shapes(latents, self.latent_layout, "latents")
        check_codes(latents, "latents")
        frames = torch.sigmoid(self._decode_logits(latents))
        if not bool(torch.isfinite(frames).all()):  # every verb that returns videos decodes here
            raise ValueError("the decoded video holds NaN or infinite values, though its codes are finite: the "
                             "decoder overflowed (codes far outside what it was trained on do this, or weights "
                             "that are not finite)")
        return frames

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
        if self.fitted_prior is not None:
            return self.combine(*self.sample_factors(num_samples, num_frames, generator))
        return self.decode(self._sample_latents(num_samples, num_frames, generator))

    def predict(self, video: Tensor, future_frames: int, samples: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Continue videos past their last frame: the frames that follow the observed ones.

        The observed frames are encoded (posterior means; the object models then refine the objects'
        positions on the observed frames, :meth:`models.disentangled_vae.DisentangledVAE.refine_positions`),
        and the model's temporal model carries the codes on (:meth:`prediction_description` says how, per
        model): deterministic by default (the mode or mean path, for tables), or ``samples`` stochastic
        continuations. Any ``future_frames`` works, also past the training length: every model continues
        frame by frame (or, with a fitted path prior, block by block), never in one window of the training
        length. Wrap in ``torch.no_grad()`` and ``eval()``.

        Args:
            video: ``(B, T, C, H, W)`` observed frames in [0, 1], T >= 2 (the checks of :meth:`encode`).
            future_frames: F, frames to predict (at least 1).
            samples: None for the deterministic prediction; N for N stochastic ones.
            generator: Source of the stochastic draws (unused without ``samples``).

        Returns:
            ``(B, F, C, H, W)`` probabilities, or ``(N, B, F, C, H, W)`` with ``samples=N``.
        """
        check_positive_int("future_frames", future_frames)
        if samples is not None:
            check_positive_int("samples", samples)
        posteriors = self.encode(video)  # the checks of every verb
        observed = self._prediction_start(video, {key: posterior.mean for key, posterior in posteriors.items()})
        if samples is None:
            return self.decode(self._continue_latents(observed, posteriors, future_frames, None, True))

        def repeated(code: Tensor) -> Tensor:  # (N * B, ...): sample n's rows are n * B .. n * B + B - 1
            return code.repeat(samples, *[1] * (code.ndim - 1))

        observed = {key: repeated(code) for key, code in observed.items()}
        posteriors = {key: DiagonalGaussian(repeated(posterior.mean), repeated(posterior.logvar))
                      for key, posterior in posteriors.items()}
        frames = self.decode(self._continue_latents(observed, posteriors, future_frames, generator, False))
        return frames.view(samples, video.shape[0], *frames.shape[1:])  # (N, B, F, C, H, W)

    def split(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Content ``(B, Dc)`` and motion ``(B, T, Dm)`` from the posterior means (see module docstring)."""
        return self._factors({key: posterior.mean for key, posterior in self.encode(video).items()})

    def sample_factors(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Content ``(N, Dc)`` and motion ``(N, T, Dm)`` codes drawn from the prior, in ``split`` form.

        ``combine`` of the two equals ``sample`` with the same generator state. Used to keep one factor of
        a video and resample the other (``combine(split(x)[0], sample_factors(...)[1])``). With a fitted prior
        (:meth:`set_fitted_prior`) the model's own draws are made first, then replaced by the fitted prior's:
        the content code; the objects' positions in the motion code where the prior has a path prior; the
        whole motion code for a model without a learned motion prior.
        """
        check_positive_int("num_samples", num_samples)
        check_positive_int("num_frames", num_frames)
        content, motion = self._factors(self._sample_latents(num_samples, num_frames, generator))
        if self.fitted_prior is not None:
            content, motion = self.fitted_prior.draw(content, motion, generator)
            paths = self.fitted_prior.draw_paths(num_samples, num_frames, generator, motion.device, torch.float32)
            if paths is not None:
                motion = self.with_object_positions(motion, paths)
        return content, motion

    def combine(self, content: Tensor, motion: Tensor) -> Tensor:
        """Decode a content code ``(B, Dc)`` with a motion code ``(B, T, Dm)`` to ``(B, T, C, H, W)``."""
        layout = {"content": ("B", self.content_dim), "motion": ("B", "T", self.motion_dim)}
        check_shapes({"content": content, "motion": motion}, layout, "factors")
        check_codes({"content": content, "motion": motion}, "factors")
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
