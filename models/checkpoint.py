"""The checkpoint format: its keys and files, building, saving and loading it; checkpoints that never lose
work and never run code. The run record lives here: :class:`Key` names the keys, :class:`RunFiles` the run
folder's files, :class:`RunRecord` reads a checkpoint as attributes, and :data:`NOT_COMPARED_ON_REUSE` and
:data:`EXPERIMENT_FIELDS` say which config fields tell runs apart.

Format (a plain dict, loadable with ``torch.load(..., weights_only=True)``; :func:`run_metadata` and
:func:`build_checkpoint` build it):

* ``model_state_dict``: the weights (the key the design document uses);
* ``model_name``, ``model_config``: the registry name and the config fields, enough to rebuild the model;
* ``train_config``, ``data_config``: how it was trained, on what (flat dicts; ``data.DataConfig`` rebuilds
  the latter with ``from_checkpoint``);
* ``optimizer_state_dict``, ``scheduler_state_dict``, ``rng_state``: to resume (older checkpoints also hold
  an always-None ``scaler_state_dict``, which is ignored);
* ``epoch`` (epochs completed), ``step``, ``best_metric``, ``experiment_name``, ``versions``,
  ``format_version``;
* ``epoch_progress`` (batches, videos, seconds and metric sums of an epoch stopped part-way, so a resume
  continues it exactly) and ``world_size`` (processes that trained it);
* ``fitted_prior`` (optional): the ex-post fitted prior of :mod:`models.fitted_prior` (tensors and plain
  values), which :func:`load_model` attaches so that ``model.sample`` uses it; a checkpoint without it
  samples the model's original prior. :func:`save_fitted_prior` adds it to a checkpoint atomically.

Saving writes a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``-s it over the
final path (an atomic rename on POSIX): a crash during a save leaves the previous file intact and no partial
file at the final path. Loading always uses ``weights_only=True``: a pickle that carries code is refused
before any of it runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import platform
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import MODELS, VideoVAE, build_model
from models.fitted_prior import FittedPrior
from utils.atomic import atomic_torch_save  # noqa: F401 - part of the checkpoint API

# ----------------------------------------------------------------------------------------------------
# The run record: the one place that names a checkpoint's keys and a run folder's files


class RunFiles:
    """The files of a run folder ``CHECKPOINT_DIR/NAME/``."""

    LAST = "last.pt"  # the latest state: every epoch and on any stop
    BEST = "best_model.pt"  # the lowest finite validation loss
    CONFIG = "config.json"  # the run's configs (run_metadata) and library versions, as JSON
    METRICS = "metrics.csv"  # one row per epoch
    LOG = "train.log"
    TENSORBOARD = "tensorboard"  # a folder
    ALL = (LAST, BEST, CONFIG, METRICS, LOG, TENSORBOARD)


LAST, BEST = RunFiles.LAST, RunFiles.BEST


class Key:
    """The keys of a checkpoint dict (the format of the module docstring; :class:`RunRecord` reads them)."""

    MODEL_STATE = "model_state_dict"
    MODEL_NAME = "model_name"
    MODEL_CONFIG = "model_config"
    TRAIN_CONFIG = "train_config"
    DATA_CONFIG = "data_config"
    EXPERIMENT_NAME = "experiment_name"
    WORLD_SIZE = "world_size"
    OPTIMIZER_STATE = "optimizer_state_dict"
    SCHEDULER_STATE = "scheduler_state_dict"
    RNG_STATE = "rng_state"
    EPOCH = "epoch"
    STEP = "step"
    BEST_METRIC = "best_metric"
    EPOCH_PROGRESS = "epoch_progress"
    VERSIONS = "versions"
    FORMAT_VERSION = "format_version"
    FITTED_PRIOR = "fitted_prior"
    CONFIGS = (MODEL_NAME, MODEL_CONFIG, DATA_CONFIG, TRAIN_CONFIG)  # what a run is, as config.json records it


FORMAT_VERSION = 1
REQUIRED_KEYS = (Key.MODEL_STATE, Key.MODEL_NAME, Key.MODEL_CONFIG)

# Which config fields say what a run is. A resume may change the options whose role (``utils.cli``:
# ``resumable``, ``invocation``) is not ``run``: ``training.options.RESUME_MAY_CHANGE`` derives them from
# the config fields' metadata. The two rules below compare finished runs.
# Settings that do not change what a run learns, left out when a trained run is reused for the configs asked
# for: its name, where and with how many workers it ran, and how many test videos it keeps (an evaluation
# picks its own).
NOT_COMPARED_ON_REUSE = {Key.TRAIN_CONFIG: {"experiment_name", "device", "num_workers", "checkpoint_dir"},
                         Key.DATA_CONFIG: {"test_size"}}
# What makes two runs the same experiment (their seeds aside): the model's configuration, and these
# fields of the data and training configurations. Runs that differ only in seed, name, device, worker
# count or test-set size are repeats of one experiment and are averaged; any other difference makes them
# variants, reported side by side.
EXPERIMENT_FIELDS = {
    Key.DATA_CONFIG: ("image_size", "digit_size", "num_digits", "num_frames", "min_speed", "max_speed",
                      "train_size", "fresh_train"),
    Key.TRAIN_CONFIG: ("epochs", "batch_size", "lr", "grad_clip", "scheduler", "kl_warmup_epochs", "max_minutes"),
}


@dataclass(frozen=True)
class RunRecord:
    """A checkpoint dict read as attributes (:meth:`of`); ``None`` where a checkpoint written by an older
    version lacks the entry. The dict itself stays the on-disk format."""

    model_name: str
    model_config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    train_config: dict[str, Any] | None
    data_config: Any  # a dict, unless the file is damaged (data.DataConfig.from_checkpoint says so)
    experiment_name: str | None
    world_size: int | None
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None
    epoch: int | None
    step: int | None
    best_metric: float | None
    epoch_progress: dict[str, Any] | None
    versions: dict[str, str] | None
    fitted_prior: dict[str, Any] | None

    @classmethod
    def of(cls, checkpoint: Mapping[str, Any]) -> RunRecord:
        """The record of a loaded checkpoint (:func:`load_checkpoint` has checked the required keys)."""
        return cls(
            model_name=checkpoint.get(Key.MODEL_NAME),
            model_config=_with_legacy_values(checkpoint.get(Key.MODEL_NAME), checkpoint.get(Key.MODEL_CONFIG)),
            model_state=checkpoint.get(Key.MODEL_STATE),
            train_config=checkpoint.get(Key.TRAIN_CONFIG),
            data_config=checkpoint.get(Key.DATA_CONFIG),
            experiment_name=checkpoint.get(Key.EXPERIMENT_NAME),
            world_size=checkpoint.get(Key.WORLD_SIZE),
            optimizer_state=checkpoint.get(Key.OPTIMIZER_STATE),
            scheduler_state=checkpoint.get(Key.SCHEDULER_STATE),
            rng_state=checkpoint.get(Key.RNG_STATE),
            epoch=checkpoint.get(Key.EPOCH),
            step=checkpoint.get(Key.STEP),
            best_metric=checkpoint.get(Key.BEST_METRIC),
            epoch_progress=checkpoint.get(Key.EPOCH_PROGRESS),
            versions=checkpoint.get(Key.VERSIONS),
            fitted_prior=checkpoint.get(Key.FITTED_PRIOR),
        )

    def configs(self) -> dict[str, Any]:
        """``model_name`` and the three configs, keyed as the checkpoint and ``config.json`` key them."""
        return {Key.MODEL_NAME: self.model_name, Key.MODEL_CONFIG: self.model_config,
                Key.DATA_CONFIG: self.data_config, Key.TRAIN_CONFIG: self.train_config}


def _with_legacy_values(model_name: Any, model_config: Any) -> Any:
    """A stored model config with the fields it lacks because they were added after it was written filled
    with the values that reproduce its model (the config class's ``legacy_values``); others keep their
    defaults when the model is built."""
    if model_name not in MODELS or not isinstance(model_config, Mapping):
        return model_config
    return {**MODELS[model_name].config_class.legacy_values, **model_config}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe, or for another model."""


def library_versions() -> dict[str, str]:
    """Versions of what produced a checkpoint."""
    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses.
    return {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(np.__version__)}


def run_metadata(model_name: str, model_config: Any, train_config: Any, data_config: Any,
                 world_size: int) -> dict[str, Any]:
    """What a run is: the entries every checkpoint of the run carries (and ``config.json`` records).

    Args:
        model_name: the registry name.
        model_config: the model's config dataclass.
        train_config: the training config (a dataclass with ``experiment_name``).
        data_config: the data config (a ``data.DataConfig``, stored flat by its ``to_dict``).
        world_size: processes that train the run.
    """
    return {
        Key.MODEL_NAME: model_name,
        Key.MODEL_CONFIG: dataclasses.asdict(model_config),
        Key.TRAIN_CONFIG: dataclasses.asdict(train_config),
        Key.DATA_CONFIG: data_config.to_dict(),
        Key.EXPERIMENT_NAME: train_config.experiment_name,
        Key.WORLD_SIZE: world_size,
    }


def build_checkpoint(
    metadata: Mapping[str, Any],
    *,
    model_state_dict: Mapping[str, torch.Tensor],
    optimizer_state_dict: dict[str, Any],
    scheduler_state_dict: dict[str, Any] | None,
    rng_state: dict[str, Any],
    epoch: int,
    step: int,
    best_metric: float,
    epoch_progress: dict[str, Any],
) -> dict[str, Any]:
    """A checkpoint dict in the format above: ``metadata`` (:func:`run_metadata`), the training state, the
    library versions and the format version."""
    return {
        **metadata,
        Key.MODEL_STATE: model_state_dict,
        Key.OPTIMIZER_STATE: optimizer_state_dict,
        Key.SCHEDULER_STATE: scheduler_state_dict,
        Key.RNG_STATE: rng_state,
        Key.EPOCH: epoch,
        Key.STEP: step,
        Key.BEST_METRIC: best_metric,
        Key.EPOCH_PROGRESS: epoch_progress,
        Key.VERSIONS: library_versions(),
        Key.FORMAT_VERSION: FORMAT_VERSION,
    }


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``), with clear errors.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors go.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: truncated or corrupt file, a pickle carrying code, or missing keys.
    """
    path = Path(path)
    if path.is_dir():
        inside = [name for name in (BEST, LAST) if (path / name).is_file()]
        hint = f"pass {path / inside[0]}" if inside else "pass the .pt file of a run"
        raise FileNotFoundError(f"checkpoint {path} is a folder, not a checkpoint file; {hint}")
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found; train one with `python -m training.train --model ... --name NAME` "
            "(it writes checkpoints/NAME/best_model.pt and last.pt)"
        )
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.filterwarnings("ignore", message=".*pickle protocol")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        code = _unsafe_global(error)
        if code is not None:
            raise CheckpointError(
                f"refusing to load {path}: it references {code}, which is not plain weights or configs, and "
                "loading it could run code (nothing in it was run)"
            ) from error
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch checkpoint ({_unpickler_reason(error)}); use another "
            "checkpoint (last.pt and best_model.pt are written separately)"
        ) from error
    except Exception as error:  # zip, pickle and storage errors of a damaged file come in many types
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({_describe(error)}); use "
            "another checkpoint (last.pt and best_model.pt are written separately)"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project (it holds a {type(checkpoint).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint of this project: it lacks {missing}")
    if checkpoint[Key.MODEL_NAME] not in MODELS:
        raise CheckpointError(
            f"{path} holds a model named {checkpoint[Key.MODEL_NAME]!r}; this project knows {list(MODELS)}"
        )
    return checkpoint


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    expected_model: str | None = None,
    fitted_prior: bool = True,
) -> tuple[VideoVAE, dict[str, Any]]:
    """Rebuild the exact model of a checkpoint from the checkpoint alone, in eval mode.

    Args:
        path: the ``.pt`` file.
        device: where the model goes.
        expected_model: if given, the registry name the checkpoint must hold.
        fitted_prior: attach the checkpoint's ex-post prior (checked: a damaged one, NaN included, is a
            ``CheckpointError``); False leaves it unread (``training.fit_prior``, which replaces it).

    Returns:
        ``(model, checkpoint)``.

    Raises:
        FileNotFoundError / CheckpointError: as :func:`load_checkpoint`, and for a checkpoint of another
            model, whose weights do not fit the model its config describes, or whose weights are not all
            finite (its run diverged: every use would fail deep inside, e.g. a loss on NaN outputs).
    """
    checkpoint = load_checkpoint(path, map_location=device)
    record = RunRecord.of(checkpoint)
    name = record.model_name
    if expected_model is not None and name != expected_model:
        raise CheckpointError(f"{path} holds a {name!r} model, not the {expected_model!r} model asked for")
    try:
        model = build_model(name, record.model_config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its model config does not build a {name!r} model: {error}") from error
    load_weights(model, record.model_state, source=str(path))
    problem = non_finite_weights(record.model_state)
    if problem is not None:
        raise CheckpointError(f"{path} holds non-finite weights ({problem}): its run diverged; use a checkpoint "
                              "written before that")
    if fitted_prior and record.fitted_prior is not None:
        try:
            model.set_fitted_prior(FittedPrior.from_state_dict(record.fitted_prior))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path} holds a damaged fitted prior: {error}; fit it again with `python -m "
                                  f"training.fit_prior --checkpoint {path}`") from error
    return model.to(device).eval(), checkpoint


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The SHA-256 of a weights dict: each tensor's name, dtype, shape and bytes, in name order. What the
    run learned, whatever else its file holds: a refitted prior or a re-save does not change it."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_fitted_prior(path: str | os.PathLike, prior: FittedPrior, fitted_to: str | None = None) -> Path:
    """Store an ex-post fitted prior inside the checkpoint at ``path`` (read, then written back atomically:
    a crash leaves the previous file whole). Raises as :func:`load_checkpoint`.

    Args:
        fitted_to: the :func:`weights_sha256` of the weights the prior was fitted to; the checkpoint's must
            still be those (``CheckpointError`` otherwise: another process wrote new weights meanwhile).
    """
    checkpoint = load_checkpoint(path)
    if fitted_to is not None and weights_sha256(RunRecord.of(checkpoint).model_state) != fitted_to:
        raise CheckpointError(f"{path} holds other weights than those its prior was fitted to (another process "
                              f"wrote it meanwhile): the prior was not stored; fit it again with `python -m "
                              f"training.fit_prior --checkpoint {path}`")
    checkpoint[Key.FITTED_PRIOR] = prior.state_dict()
    return atomic_torch_save(checkpoint, path)


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing, unexpected and mis-shaped keys."""
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{source} holds no weights dict of tensors (model_state_dict is damaged)")
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(state_dict))
        if tuple(own[key].shape) != tuple(state_dict[key].shape)
    ]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing keys {_abbreviate(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_abbreviate(unexpected)}")
        if mis_shaped:
            parts.append(f"shape mismatches {_abbreviate(mis_shaped)}")
        raise CheckpointError(
            f"weights in {source} do not fit {type(model).__name__}: {'; '.join(parts)}. The checkpoint was "
            "probably written for another model or configuration"
        )
    model.load_state_dict(state_dict, strict=True)


def non_finite_weights(state_dict: Mapping[str, Any]) -> str | None:
    """Describe the NaN or infinite values of a weights dict, or None when every value is finite.

    Returns:
        E.g. ``"12 of 1,024 values are NaN or infinite, in 2 of 10 tensors: [encoder.weight, ...]"``.
    """
    if not isinstance(state_dict, Mapping):
        return None  # not a weights dict at all: load_weights says so
    bad, bad_values, total = [], 0, 0
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        total += tensor.numel()
        count = int((~torch.isfinite(tensor)).sum())
        if count:
            bad.append(key)
            bad_values += count
    if not bad:
        return None
    floating = sum(isinstance(t, torch.Tensor) and t.is_floating_point() for t in state_dict.values())
    return (f"{bad_values:,} of {total:,} values are NaN or infinite, in {len(bad)} of {floating} tensors: "
            f"{_abbreviate(bad)}")


def _abbreviate(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items) - limit} more)' if len(items) > limit else ''}]"


def _unpickler_lines(error: BaseException) -> list[str]:
    # torch's message wraps the unpickler's reason in advice (and terminal escape codes).
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    return [line.strip() for line in text.splitlines() if line.strip()]


def _unsafe_global(error: BaseException) -> str | None:
    """The global a weights-only load refused (a class or function the pickle would call), if any."""
    for line in _unpickler_lines(error):
        match = re.search(r"GLOBAL ([\w.]+)", line)
        if match:
            return match.group(1)
    return None


def _unpickler_reason(error: BaseException) -> str:
    lines = _unpickler_lines(error)
    for index, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            reason = line.partition("WeightsUnpickler error:")[2].strip()
            reason = reason or (lines[index + 1] if index + 1 < len(lines) else "")
            return reason or "unreadable pickle"
    return lines[0] if lines else type(error).__name__


def _describe(error: BaseException) -> str:
    """``Type: first sentence of the message`` (torch's messages run on with advice)."""
    text = str(error).strip().splitlines()
    sentence = text[0].split(". ")[0].rstrip(".") if text else ""
    return f"{type(error).__name__}: {sentence}" if sentence else type(error).__name__
