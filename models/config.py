"""Model configs and their checks: the fields every video VAE shares, the validators each config uses, and
the shape check of named tensors (latents, factors) at the models' public edges.

Every check raises ``ValueError`` naming the field (or tensor) and what it allows, so a bad CLI option,
checkpoint or input fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

RECON_LOSSES = ("bce", "mse")
NORMS = ("group", "none")


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive integer."""
    _check_integer(name, value, 1, "a positive integer")


def check_non_negative_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 0."""
    _check_integer(name, value, 0, "a non-negative integer")


def _check_integer(name: str, value: Any, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def check_finite_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (at least ``minimum`` and at most
    ``maximum``, where given)."""
    valid = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not valid or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            bound = f" from {minimum:g} to {maximum:g}"
        else:
            bound = f" >= {minimum:g}" if minimum is not None else f" <= {maximum:g}" if maximum is not None else ""
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

    # Fields added after checkpoints were first written, with the value that reproduces those checkpoints'
    # models (e.g. a behaviour that did not exist then is off): what a stored config lacking the field means.
    legacy_values: ClassVar[dict[str, Any]] = {}

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

    def idle_fields(self) -> tuple[str, ...]:
        """Fields that have no effect on this config's model (e.g. options of another architecture)."""
        return ()

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
