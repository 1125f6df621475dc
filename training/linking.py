"""One rule for the facts a model config shares with its data config.

A model is built for its data: the frame side (``image_size``), the channels (Moving MNIST is grayscale)
and, for an object-structured Disentangled VAE (``models.disentangled_vae.OBJECT_ARCHITECTURES``), the
number of objects (``slots``), which is the data's number of digits. :func:`link_configs` is the one place
that sets them, for training, the demo and the benchmarks; :func:`data_mismatches` is the same rule as a
check, for evaluation. The data config owns each fact: a model field left unset follows it, a model field
set explicitly to something else is a one-line error naming both options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from data import DataConfig
from models import MODELS
from models.disentangled_vae import (
    ARCHITECTURES,
    CONV_ONLY_FIELDS,
    KEYPOINTS_ONLY_FIELDS,
    OBJECT_ARCHITECTURES,
    OBJECT_ONLY_FIELDS,
    SLOTS_ONLY_FIELDS,
)
from training.config import ConfigError, data_option_label, model_fields, model_option_label

CHANNELS = 1  # Moving MNIST videos are grayscale: (B, T, 1, H, W)
GLIMPSE_STEP = 16  # a glimpse side is a multiple of it (models.disentangled_vae)


def linked_values(model_name: str, values: Mapping[str, Any], data_config: DataConfig) -> dict[str, tuple[Any, str]]:
    """The model fields the data decides, for a model whose config has ``values`` (missing fields: defaults).

    Returns:
        ``{field: (the data's value, the option that sets it)}``, e.g. ``{"slots": (3, "--digits 3")}``.
    """
    fields, video = model_fields(model_name), data_config.video
    linked: dict[str, tuple[Any, str]] = {}
    if "image_size" in fields:
        linked["image_size"] = (video.image_size, data_option_label("image_size", video.image_size))
    if "channels" in fields:
        linked["channels"] = (CHANNELS, "the data's 1 channel (Moving MNIST is grayscale)")
    if "slots" in fields and _architecture(model_name, values) in OBJECT_ARCHITECTURES:
        linked["slots"] = (video.num_digits, data_option_label("num_digits", video.num_digits))
    return linked


def _architecture(model_name: str, values: Mapping[str, Any]) -> Any:
    fields = model_fields(model_name)
    if "architecture" not in fields:
        return None
    return values.get("architecture", fields["architecture"].default)


def link_configs(model_name: str, model_config: Any, data_config: DataConfig,
                 given: Collection[str] = ()) -> tuple[Any, list[str]]:
    """The model config that fits ``data_config``, and one note per thing changed or without effect.

    Fields the data decides (:func:`linked_values`) follow it unless they are in ``given``; a given one that
    disagrees is an error. When the slots follow the data and ``content_dim`` (not given) is not a multiple
    of them, it is rounded up to the next multiple, with a note; a default ``glimpse_size`` larger than the
    frames becomes the largest multiple of 16 that fits them, with a note. Conv-architecture options given under an
    object architecture (and the reverse) are noted as having no effect. A glimpse smaller than the digits
    is refused.

    Args:
        model_name: a key of ``models.MODELS``.
        model_config: its config, or a dict of some of its fields (the others take their defaults).
        data_config: the data the model is trained on.
        given: the model fields the user set explicitly (pass every field name to check without changing).

    Returns:
        ``(model config, notes)``.

    Raises:
        ConfigError: a given field contradicts the data, or the linked config is invalid (one line each).
    """
    if dataclasses.is_dataclass(model_config):
        values = dataclasses.asdict(model_config)
    else:
        values = dict(model_config)
    fields = model_fields(model_name)
    defaults = {name: item.default for name, item in fields.items()}
    current = {**defaults, **values}
    given = set(given)
    notes: list[str] = []
    for name, (value, source) in linked_values(model_name, current, data_config).items():
        if current[name] == value:
            continue
        if name in given:
            label = model_option_label(name, current[name])
            raise ConfigError(f"{label} contradicts {source}: drop {label} (the model then follows the data) "
                              "or make them agree", usage=True)
        values[name] = current[name] = value
    architecture = current.get("architecture")
    if "slots" in fields and architecture in OBJECT_ARCHITECTURES:
        slots, content_dim = current["slots"], current["content_dim"]
        if content_dim % slots and "content_dim" not in given:
            adapted = -(-content_dim // slots) * slots
            notes.append(f"content_dim {content_dim} -> {adapted}: each of the {slots} slots gets an equal share of "
                         f"the content code (--content-dim sets another multiple of {slots})")
            values["content_dim"] = current["content_dim"] = adapted
    glimpse, size = current.get("glimpse_size"), current.get("image_size")
    if (architecture in OBJECT_ARCHITECTURES and "glimpse_size" not in given and isinstance(glimpse, int)
            and isinstance(size, int) and glimpse > size >= GLIMPSE_STEP):
        # the default glimpse does not fit small frames: the largest one that does (a multiple of 16)
        adapted = size // GLIMPSE_STEP * GLIMPSE_STEP
        notes.append(f"glimpse_size {glimpse} -> {adapted}: the glimpse must fit the "
                     f"{data_option_label('image_size', size)} frames (--model-option glimpse_size=N sets another "
                     f"multiple of {GLIMPSE_STEP})")
        values["glimpse_size"] = current["glimpse_size"] = adapted
    elif architecture in OBJECT_ARCHITECTURES and "glimpse_size" not in given and isinstance(size, int) \
            and size < GLIMPSE_STEP:
        raise ConfigError(f"the {architecture!r} architecture takes glimpses of at least {GLIMPSE_STEP} pixels, "
                          f"larger than the {data_option_label('image_size', size)} frames: use --image-size "
                          f"{GLIMPSE_STEP} or more, or --model-option architecture=average", usage=True)
    try:
        config = MODELS[model_name].config_class(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {model_name} model option: {error}", usage=True) from None
    for name in config.idle_fields():
        if name in given:
            notes.append(f"{model_option_label(name, current[name])} has no effect under architecture="
                         f"{architecture!r}: it applies {_where_it_applies(name)}")
    glimpse = getattr(config, "glimpse_size", None)
    if architecture in OBJECT_ARCHITECTURES and glimpse is not None and glimpse < data_config.video.digit_size:
        digit_size = data_config.video.digit_size
        raise ConfigError(f"{model_option_label('glimpse_size', glimpse)} cannot hold a digit of "
                          f"{data_option_label('digit_size', digit_size)}: use a glimpse_size of at least "
                          f"{-(-digit_size // 16) * 16} (a multiple of 16) or a smaller --digit-size", usage=True)
    return config, notes


def data_mismatches(model_name: str, model_config: Any, data_config: DataConfig,
                    fields: Collection[str] | None = None) -> list[str]:
    """Where a built model config disagrees with its data (the rule of :func:`link_configs`, as a check).

    Args:
        fields: only these linked fields (e.g. ``("image_size", "channels")``, what a model cannot run
            without); None checks every one.

    Returns:
        One ``"FIELD VALUE (the data: OPTION)"`` per disagreement; empty when they agree.
    """
    values = dataclasses.asdict(model_config)
    return [f"{name} {values[name]} (the data: {source})"
            for name, (value, source) in linked_values(model_name, values, data_config).items()
            if (fields is None or name in fields) and values[name] != value]


def _where_it_applies(name: str) -> str:
    """The architectures under which a Disentangled VAE option has an effect, in words."""
    if name in SLOTS_ONLY_FIELDS:
        return "only under architecture='slots' (the hand tracker)"
    if name in KEYPOINTS_ONLY_FIELDS:
        return "only under architecture='keypoints' (the learned localiser, the default)"
    if name in OBJECT_ONLY_FIELDS:
        return f"only under the object architectures {list(OBJECT_ARCHITECTURES)}"
    assert name in CONV_ONLY_FIELDS, name
    return f"only under the architectures {[a for a in ARCHITECTURES if a not in OBJECT_ARCHITECTURES]}"
