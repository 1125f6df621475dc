"""The training config: a frozen dataclass that travels with every checkpoint.

Model configs live with their models (``MODELS[name].config_class``) and the data config with the data
(:class:`data.DataConfig`); :class:`TrainConfig` describes how a model was trained. A checkpoint stores all
three as plain dicts, so a run can be rebuilt, resumed or evaluated from the checkpoint alone.

The fields' metadata names their command-line options; :mod:`training.options` turns a command line into
these configs, and :mod:`training.linking` makes a model config agree with its data config.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from data import DataConfig, MovingMNISTConfig
from data.config import check_int, check_known_keys
from models import MODELS
from models.config import RECON_LOSSES
from utils.cli import INVOCATION, RESUMABLE, device_name, non_negative_int, number, option, positive_int
from utils.devices import DEVICE_CHOICES

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

    Each field's metadata (:func:`utils.cli.option`) names its ``training.train`` option and its role on
    resume: ``run`` fields identify the run, ``resumable`` ones a resume may change, ``invocation`` ones
    belong to one invocation (:mod:`training.options` builds the parser and the configs from them).

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
    epochs: int = field(default=100, metadata=option(
        "--epochs", role=RESUMABLE, type=positive_int, metavar="N", help="number of epochs (default: %(default)s)"))
    batch_size: int = field(default=32, metadata=option(
        "--batch-size", type=positive_int, metavar="N",
        help="videos per step per process; under torchrun the global batch is N x processes (default: %(default)s)"))
    lr: float = field(default=1e-4, metadata=option(
        "--lr", type=number(0.0, inclusive=False), metavar="FLOAT", help="Adam learning rate (default: %(default)g)"))
    grad_clip: float = field(default=0.0, metadata=option(
        "--grad-clip", type=number(0.0, inclusive=True), metavar="FLOAT",
        help="clip the global gradient norm to FLOAT; 0 disables (default: %(default)g)"))
    scheduler: str = field(default="none", metadata=option(
        "--scheduler", choices=SCHEDULERS,
        help="learning-rate schedule: none (constant) or cosine (per step, from --lr down to 0 at the last step) "
        "(default: %(default)s)"))
    kl_warmup_epochs: float = field(default=0.0, metadata=option(
        "--kl-warmup-epochs", type=number(0.0, inclusive=True), metavar="N",
        help="KL weight grows linearly, per step, from 0 to 1 over N epochs; 0 disables (default: %(default)g)"))
    max_minutes: float | None = field(default=None, metadata=option(
        "--max-minutes", role=INVOCATION, type=number(0.0, inclusive=False), metavar="M",
        help="wall-clock budget of this invocation: after M minutes training stops after the current step "
        "(possibly mid-epoch), writes last.pt and exits 0; --resume continues exactly (default: no budget)"))
    amp: bool = field(default=False, metadata=option(
        "--amp", role=RESUMABLE, action="store_true",
        help="mixed precision: bf16 autocast, on CUDA GPUs with bf16 and on CPUs with AVX-512 BF16 or AMX "
        "(ignored, with a warning, elsewhere)"))
    device: str = field(default="auto", metadata=option(
        "--device", role=INVOCATION, group="run", type=device_name, metavar="{" + ",".join(DEVICE_CHOICES) + "}",
        help="device: auto picks CUDA, then MPS, then the CPU; cuda:N selects a GPU (default: %(default)s)"))
    seed: int = field(default=42, metadata=option(
        "--seed", type=non_negative_int, metavar="N",
        help="seed of the videos, the model's initialisation and the posterior noise (default: %(default)s)"))
    num_workers: int = field(default=0, metadata=option(
        "--num-workers", role=INVOCATION, group="data", type=non_negative_int, metavar="N",
        help="DataLoader worker processes per training process (default: %(default)s)"))
    deterministic: bool = field(default=False, metadata=option(
        "--deterministic", role=RESUMABLE, action="store_true",
        help="deterministic kernels (torch.use_deterministic_algorithms; slower on GPUs)"))
    checkpoint_dir: str = field(default="checkpoints", metadata=option(
        "--checkpoint-dir", role=INVOCATION, group="run", metavar="DIR",
        help="parent folder of the run folders (default: %(default)s)"))

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


# Model config fields with an option of their own (any other field: --model-option FIELD=VALUE). Their
# defaults are each model's (the registry's), so the parser's default is None: unset.
MODEL_OPTIONS = {
    "beta": {"type": number(0.0, inclusive=True), "metavar": "FLOAT", "help": "KL weight of the beta-VAE loss"},
    "recon_loss": {"choices": RECON_LOSSES, "help": "reconstruction loss"},
    "latent_dim": {"type": positive_int, "metavar": "N", "help": "per-frame latent size"},
    "content_dim": {"type": positive_int, "metavar": "N",
                    "help": "content latent size (with an object architecture, a multiple of the slots; "
                    "unset, it is rounded up to one)"},
    "motion_dim": {"type": positive_int, "metavar": "N", "help": "per-frame motion latent size"},
    "lstm_hidden": {"type": positive_int, "metavar": "N", "help": "LSTM hidden size"},
    "width": {"type": positive_int, "metavar": "N", "help": "base channels of the conv encoder/decoder"},
}


def flag(field_name: str) -> str:
    """The option of a model config field with one of its own: ``content_dim`` -> ``--content-dim``."""
    return "--" + field_name.replace("_", "-")


def model_option_label(field_name: str, value: Any) -> str:
    """How a model field is set on the command line: ``--content-dim 128`` or ``--model-option slots=2``."""
    if field_name in MODEL_OPTIONS:
        return f"{flag(field_name)} {value}"
    return f"--model-option {field_name}={value}"


def data_option_label(field_name: str, value: Any) -> str:
    """How a data config field is set on the command line: ``num_digits`` -> ``--digits 3``."""
    for config_class in (MovingMNISTConfig, DataConfig):
        for item in dataclasses.fields(config_class):
            if item.name == field_name and "option" in item.metadata:
                return f"{item.metadata['option']['flags'][0]} {value}"
    return f"{field_name} {value}"
