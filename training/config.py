"""The training config: a frozen dataclass that travels with every checkpoint.

Model configs live with their models (``MODELS[name].config_class``) and the data config with the data
(:class:`data.DataConfig`); :class:`TrainConfig` describes how a model was trained. A checkpoint stores all
three as plain dicts, so a run can be rebuilt, resumed or evaluated from the checkpoint alone.

The second half turns the command line of ``training.train`` into these configs, for a new run
(:func:`fresh_configs`) or a resumed one (:func:`resumed_configs`: the checkpoint's configs, where an
explicit option may change only what a resumed run can change without losing exactness).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, replace
from typing import Any

from data import DataConfig, MovingMNISTConfig, default_digit_size
from data.config import check_int, check_known_keys
from models import MODELS

SCHEDULERS = ("none", "cosine")


class ConfigError(ValueError):
    """An option value or combination the user can fix; ``usage`` errors come from the command line."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _check_number(name: str, value: Any, minimum: float, inclusive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {minimum}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Attributes:
        experiment_name: the run's name; outputs go to ``checkpoint_dir/experiment_name``.
        model: a key of ``models.MODELS``.
        epochs: total epochs of the run (a resumed run continues up to this number).
        batch_size: videos per optimizer step *per process* (global batch = batch_size * processes).
        lr: Adam learning rate.
        grad_clip: clip the global gradient norm to this value; 0 disables clipping.
        scheduler: ``"none"`` (constant lr) or ``"cosine"`` (per step, from lr to 0 over all epochs).
        kl_warmup_epochs: epochs over which the KL weight grows linearly from 0 to 1 (0: no warm-up).
        max_minutes: wall-clock budget of one invocation in minutes; None for no budget.
        amp: bf16 autocast where the device computes bf16 natively (ignored elsewhere).
        device: ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
        seed: seeds the model's initialisation and the posterior noise.
        num_workers: DataLoader worker processes per training process.
        deterministic: ask torch for deterministic kernels (slower on GPUs).
        checkpoint_dir: parent folder of the run folders.
    """

    experiment_name: str
    model: str
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    grad_clip: float = 0.0
    scheduler: str = "none"
    kl_warmup_epochs: float = 0.0
    max_minutes: float | None = None
    amp: bool = False
    device: str = "auto"
    seed: int = 42
    num_workers: int = 0
    deterministic: bool = False
    checkpoint_dir: str = "checkpoints"

    def __post_init__(self) -> None:
        name = self.experiment_name
        if not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name:
            raise ValueError(f"experiment_name must be a plain folder name (no / or ..), got {name!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        _check_number("lr", self.lr, 0.0, inclusive=False)
        _check_number("grad_clip", self.grad_clip, 0.0, inclusive=True)
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {self.scheduler!r}")
        _check_number("kl_warmup_epochs", self.kl_warmup_epochs, 0.0, inclusive=True)
        if self.max_minutes is not None:
            _check_number("max_minutes", self.max_minutes, 0.0, inclusive=False)
        check_int("seed", self.seed, 0)
        check_int("num_workers", self.num_workers, 0)


def config_from_dict(config_class: type, fields: dict[str, Any]) -> Any:
    """Rebuild a config from a checkpoint's dict, naming unknown keys."""
    check_known_keys(config_class.__name__, fields, [field.name for field in dataclasses.fields(config_class)])
    return config_class(**fields)


def model_fields(name: str) -> dict[str, dataclasses.Field]:
    """The config fields of a registered model, by name."""
    return {field.name: field for field in dataclasses.fields(MODELS[name].config_class)}


def models_with_field(field_name: str) -> list[str]:
    """Registered models whose config has ``field_name``, in registry order."""
    return [name for name in MODELS if field_name in model_fields(name)]


def field_default(field_name: str) -> Any:
    """The default of a model config field: one value if all models agree, else a dict by model."""
    defaults = {name: model_fields(name)[field_name].default for name in models_with_field(field_name)}
    values = set(map(repr, defaults.values()))
    return next(iter(defaults.values())) if len(values) == 1 else defaults


def parse_field_value(name: str, field_name: str, text: str) -> Any:
    """Convert ``text`` to the type of a model config field's default (int, float, bool or str).

    Raises:
        ValueError: unknown field for the model, or a value of the wrong type.
    """
    fields = model_fields(name)
    if field_name not in fields:
        raise ValueError(f"the {name} model has no config field {field_name!r}; its fields: {sorted(fields)}")
    default = fields[field_name].default
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{field_name} takes true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{field_name} takes an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{field_name} takes a number, got {text!r}") from None
    return text


# ----------------------------------------------------------------------------------------------------
# From command-line options to configs


# CLI destination -> model config field (which models have the field is read from the registry).
MODEL_OPTIONS = {
    "beta": "beta",
    "recon_loss": "recon_loss",
    "latent_dim": "latent_dim",
    "content_dim": "content_dim",
    "motion_dim": "motion_dim",
    "lstm_hidden": "lstm_hidden",
    "width": "width",
}
DATA_OPTIONS = {
    "train_size": "train_size",
    "val_size": "val_size",
    "test_size": "test_size",
    "frames": "num_frames",
    "image_size": "image_size",
    "digit_size": "digit_size",
    "digits": "num_digits",
    "seed": "seed",
    "mnist_root": "mnist_root",
}
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "grad_clip", "scheduler", "kl_warmup_epochs", "max_minutes",
                 "amp", "device", "seed", "num_workers", "deterministic", "checkpoint_dir")
# A resumed run takes these from the command line (default when absent): they concern one invocation.
PER_INVOCATION = {"max_minutes", "device", "num_workers", "checkpoint_dir"}
# A resumed run keeps the run's value of these unless the command line gives one.
RESUMABLE = PER_INVOCATION | {"epochs", "amp", "deterministic", "mnist_root"}
# Every other option must match the checkpoint.


def model_option_values(model_name: str, items: list[str]) -> dict[str, Any]:
    """``--model-option FIELD=VALUE`` items as typed model config values.

    Raises:
        ConfigError: an item without ``=``, a field the model lacks, or a value of the wrong type.
    """
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"argument --model-option: expected FIELD=VALUE, got {item!r}", usage=True)
        try:
            values[key.strip()] = parse_field_value(model_name, key.strip(), text.strip())
        except ValueError as error:
            raise ConfigError(f"argument --model-option: {error}", usage=True) from None
    return values


def fresh_configs(args: Any) -> tuple[str, Any, TrainConfig, DataConfig, list[str]]:
    """The configs of a new run from the parsed command line (an ``argparse.Namespace``).

    Model options left unset keep the model's defaults; a set option the model lacks is ignored.

    Returns:
        ``(model name, model config, train config, data config, notes on ignored options)``.

    Raises:
        ConfigError: an invalid value (``usage`` set: it is the command line's fault).
    """
    if args.model is None:
        raise ConfigError("the following arguments are required: --model (or --resume)", usage=True)
    name, fields, notes = args.model, model_fields(args.model), []
    values: dict[str, Any] = {}
    for dest, field_name in MODEL_OPTIONS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if field_name in fields:
            values[field_name] = value
        else:
            notes.append(f"--{dest.replace('_', '-')} is ignored: the {name} model has no {field_name}")
    if "image_size" in fields:
        values["image_size"] = args.image_size
    values.update(model_option_values(name, args.model_option))
    try:
        model_config = MODELS[name].config_class(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {name} model option: {error}", usage=True) from None
    digit_size = args.digit_size if args.digit_size is not None else default_digit_size(args.image_size)
    try:
        video = MovingMNISTConfig(image_size=args.image_size, digit_size=digit_size, num_digits=args.digits,
                                  num_frames=args.frames)
        data_config = DataConfig(
            train_size=args.train_size, val_size=args.val_size, test_size=args.test_size, video=video,
            seed=args.seed, fresh_train=not args.fixed_train_set, mnist_root=args.mnist_root,
        )
    except ValueError as error:
        raise ConfigError(f"invalid data option: {error}", usage=True) from None
    return name, model_config, _train_config(args, name), data_config, notes


def apply_options(model_name: str, model_config: Any, train_config: TrainConfig, data_config: DataConfig,
                  options: dict[str, Any]) -> tuple[Any, TrainConfig, DataConfig, list[str]]:
    """Configs with training command-line options applied (``options``: destination -> value, as
    :func:`training.train.given_options` reads them; e.g. the demo's ``--train-args``).

    Model options the model lacks are ignored with a note, as for a new run; a new ``--image-size`` without
    ``--digit-size`` keeps the standard digit-to-canvas ratio.

    Returns:
        ``(model config, train config, data config, notes on ignored options)``.

    Raises:
        ConfigError: an option that does not set a config field (e.g. ``--name``), or an invalid value.
    """
    fields, notes = model_fields(model_name), []
    model_values: dict[str, Any] = {}
    data_values: dict[str, Any] = {}
    train_values = {dest: value for dest, value in options.items() if dest in TRAIN_OPTIONS}
    for dest, value in options.items():
        if dest == "model_option":
            model_values.update(model_option_values(model_name, value))
        elif dest in MODEL_OPTIONS:
            if MODEL_OPTIONS[dest] in fields:
                model_values[MODEL_OPTIONS[dest]] = value
            else:
                option = dest.replace("_", "-")
                notes.append(f"--{option} is ignored: the {model_name} model has no {MODEL_OPTIONS[dest]}")
        elif dest in DATA_OPTIONS:
            data_values[DATA_OPTIONS[dest]] = value
        elif dest == "fixed_train_set":
            data_values["fresh_train"] = not value
        elif dest not in TRAIN_OPTIONS:
            raise ConfigError(f"--{dest.replace('_', '-')} does not set a model, training or data option here")
    if "image_size" in data_values:
        data_values.setdefault("digit_size", default_digit_size(data_values["image_size"]))
        if "image_size" in fields:
            model_values["image_size"] = data_values["image_size"]
    flat = data_config.to_dict()
    try:
        model_config = replace(model_config, **model_values)
        train_config = replace(train_config, **train_values)
        data_config = DataConfig.from_dict({**flat, **data_values})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid option: {error}", usage=True) from None
    return model_config, train_config, data_config, notes


def _train_config(args: Any, model_name: str, base: TrainConfig | None = None,
                  only: set[str] | None = None) -> TrainConfig:
    values = {dest: getattr(args, dest) for dest in TRAIN_OPTIONS if only is None or dest in only}
    try:
        if base is None:
            return TrainConfig(experiment_name=args.name, model=model_name, **values)
        return replace(base, experiment_name=args.name, **values)
    except ValueError as error:
        raise ConfigError(f"invalid training option: {error}", usage=True) from None


def resumed_configs(args: Any, explicit: set[str], checkpoint: dict[str, Any],
                    source: Any) -> tuple[str, Any, TrainConfig, DataConfig, list[str]]:
    """The configs of a resumed run: the checkpoint's, with the options a resumed run may change.

    Args:
        args: the parsed command line (an ``argparse.Namespace``).
        explicit: the destinations the command line set explicitly.
        checkpoint: the loaded ``last.pt``.
        source: its path (for messages).

    Returns:
        ``(model name, model config, train config, data config, notes)``.

    Raises:
        ConfigError: an explicit option contradicts the run, or the checkpoint's configs do not rebuild.
    """
    name = checkpoint["model_name"]
    if args.model is not None and args.model != name:
        raise ConfigError(f"--resume: {source} holds a {name!r} model, not {args.model!r}")
    try:
        model_config = MODELS[name].config_class(**checkpoint["model_config"])
        data_config = DataConfig.from_checkpoint(checkpoint, strict=True)
        saved_train = config_from_dict(TrainConfig, checkpoint["train_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"--resume: {source} holds configs this code cannot rebuild: {error}") from None
    conflicts, notes = [], []
    saved = {"model": dataclasses.asdict(model_config), "data": data_config.to_dict(),
             "train": dataclasses.asdict(saved_train)}
    given: list[tuple[str, str, str, Any]] = []  # (option, config, field, value)
    for dest, field_name in MODEL_OPTIONS.items():
        if dest in explicit:
            given.append((dest, "model", field_name, getattr(args, dest)))
    for dest, field_name in DATA_OPTIONS.items():
        if dest in explicit:
            given.append((dest, "data", field_name, getattr(args, dest)))
    if "image_size" in explicit and "image_size" in saved["model"]:
        given.append(("image_size", "model", "image_size", args.image_size))
    for dest in TRAIN_OPTIONS:
        if dest in explicit and dest not in RESUMABLE:
            given.append((dest, "train", dest, getattr(args, dest)))
    if "fixed_train_set" in explicit:
        given.append(("fixed_train_set", "data", "fresh_train", not args.fixed_train_set))
    for key, value in model_option_values(name, args.model_option).items():
        given.append(("model_option", "model", key, value))
    for dest, where, field_name, value in given:
        if field_name not in saved[where]:
            notes.append(f"--{dest.replace('_', '-')} is ignored: the {name} model has no {field_name}")
        elif dest in RESUMABLE:
            continue
        elif saved[where][field_name] != value:
            conflicts.append(f"--{dest.replace('_', '-')} {value} (the run has {saved[where][field_name]})")
    if conflicts:
        raise ConfigError(
            f"--resume keeps the run's configuration, but {'; '.join(conflicts)}; start a new run (another "
            "--name, or --overwrite) to change it", usage=True,
        )
    if "mnist_root" in explicit and args.mnist_root != data_config.mnist_root:
        notes.append(f"--mnist-root changed from {data_config.mnist_root} to {args.mnist_root}")
        data_config = replace(data_config, mnist_root=args.mnist_root)
    train_config = _train_config(args, name, base=saved_train, only=(explicit & RESUMABLE) | PER_INVOCATION)
    return name, model_config, train_config, data_config, notes
