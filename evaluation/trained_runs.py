"""Trained runs: several checkpoints at once, and the test videos they share.

What ``evaluate.py``, the demo and the notebooks all need: rebuild each run's model from its checkpoint
alone, rebuild the run's fixed test set from the data config it was trained with, and check that the
runs being compared were tested on the same videos.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from data import DataConfig, data_loaders
from data.loaders import video_file_test_loader
from models import MODELS
from models.checkpoint import (
    BEST,
    LAST,
    NOT_COMPARED_ON_REUSE,
    CheckpointError,
    Key,
    RunRecord,
    load_checkpoint,
    load_model,
)
from training.linking import data_mismatches

# Fields that size the splits but do not change which videos a split holds (video i is fixed by the seed).
_SIZE_FIELDS = ("train_size", "val_size", "test_size", "fresh_train")


def checkpoint_data_config(
    checkpoint: Mapping[str, Any], model: torch.nn.Module | None = None, **overrides: Any
) -> DataConfig:
    """The data config a checkpoint was trained with, with ``overrides`` (e.g. ``test_size=1000``): the
    rule of :meth:`data.DataConfig.from_checkpoint`, checked against the model when given.

    Raises:
        CheckpointError: the stored config is not a dict, disagrees with the model, or is invalid.
    """
    image_size = model.config.image_size if model is not None else None
    try:
        data_config = DataConfig.from_checkpoint(checkpoint, image_size=image_size, **overrides)
    except (TypeError, ValueError) as error:
        raise CheckpointError(str(error)) from error
    if model is not None:  # what the model cannot run without; a slot count that differs still evaluates
        mismatches = data_mismatches(model.name, model.config, data_config, fields=("image_size", "channels"))
        if mismatches:
            raise CheckpointError(f"the checkpoint's model does not fit its data: {'; '.join(mismatches)}")
    return data_config


def test_loader(data_config: DataConfig, batch_size: int = 32, num_workers: int = 0) -> DataLoader:
    """The fixed test videos of a data config (the first ``data_config.test_size`` of its test split; for a
    video file, the first ``test_size`` of its seeded permutation)."""
    if data_config.video_file is not None:
        return video_file_test_loader(data_config, batch_size, num_workers=num_workers)
    return data_loaders(data_config, batch_size, num_workers=num_workers)[2]


def test_videos_key(data_config: DataConfig) -> dict[str, Any]:
    """What fixes a run's test videos: its data config without the split sizes."""
    return {key: value for key, value in data_config.to_dict().items() if key not in _SIZE_FIELDS}


def config_differences(checkpoint: Mapping[str, Any], model_name: str, model_config: Any, train_config: Any,
                       data_config: Any) -> list[str]:
    """The settings in which a trained run differs from the configs a new run would be given.

    Every field of the three config dataclasses is compared (but those in
    :data:`models.checkpoint.NOT_COMPARED_ON_REUSE`, and the model fields that have no effect on the model
    asked for: ``idle_fields``); a field the checkpoint lacks (written before the field existed) counts as
    its legacy value (the config class's ``legacy_values``) or else its default, as :func:`load_model`
    rebuilds it.

    Args:
        checkpoint: the run's loaded checkpoint (``model_name``, ``model_config``, ``train_config``,
            ``data_config``).
        model_name, model_config, train_config, data_config: what the new run would be.

    Returns:
        ``"FIELD RUN_VALUE (asked VALUE)"`` for each differing setting; empty when the run is the one asked for.
    """
    differences = []
    record = RunRecord.of(checkpoint)
    if record.model_name != model_name:
        differences.append(f"model {record.model_name} (asked {model_name})")
    for section, stored, wanted in ((Key.MODEL_CONFIG, record.model_config, model_config),
                                    (Key.TRAIN_CONFIG, record.train_config, train_config),
                                    (Key.DATA_CONFIG, record.data_config, data_config)):
        stored = stored or {}
        idle = wanted.idle_fields() if section == Key.MODEL_CONFIG else ()
        for name, (default, asked) in _fields_and_defaults(wanted).items():
            if name in NOT_COMPARED_ON_REUSE.get(section, ()) or name in idle:
                continue
            had = stored.get(name, default)
            if had != asked:
                differences.append(f"{name} {had} (asked {asked})")
    return list(dict.fromkeys(differences))  # the seed is in two configs: name it once


def _model_name_of_missing_run(run_dir: Path) -> str:
    """The model a run without ``best_model.pt`` trains, for the command that trains it: the name its
    ``last.pt`` stores; without one, the folder's prefix when it names a model (the design document's runs
    are named MODEL_vae), else ``MODEL``."""
    try:
        return str(RunRecord.of(load_checkpoint(run_dir / LAST)).model_name)
    except (FileNotFoundError, CheckpointError):
        prefix = run_dir.name.split("_")[0]
        return prefix if prefix in MODELS else "MODEL"


def _fields_and_defaults(config: Any) -> dict[str, tuple[Any, Any]]:
    """``{field: (default, value)}`` of a config as its checkpoint stores it (a data config flat)."""
    if isinstance(config, DataConfig):
        return {name: (DataConfig().to_dict()[name], value) for name, value in config.to_dict().items()}
    return {field.name: (field.default if field.default is not dataclasses.MISSING else None,
                         getattr(config, field.name)) for field in dataclasses.fields(config)}


def load_runs(
    runs: Mapping[str, str],
    checkpoint_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[dict[str, torch.nn.Module], dict[str, dict[str, Any]]]:
    """Load ``checkpoint_dir/RUN/best_model.pt`` for each ``{label: RUN}``, skipping missing runs with the
    command that trains them, and runs whose test videos differ from the first run's.

    Returns:
        ``(models, checkpoints)`` by label, models in eval mode on ``device``.

    Raises:
        FileNotFoundError: none of the runs exists.
    """
    models, checkpoints = {}, {}
    checkpoint_dir = Path(checkpoint_dir)
    for label, run in runs.items():
        path = checkpoint_dir / run / BEST
        if not path.is_file():
            model_name = _model_name_of_missing_run(checkpoint_dir / run)
            log(f"{label}: no checkpoint at {path}, skipped. Train it from the repository root with\n"
                f"    python -m training.train --model {model_name} --name {run} --checkpoint-dir {checkpoint_dir}\n"
                "  (or `make demo`).")
            continue
        models[label], checkpoints[label] = load_model(path, device)
    if not models:
        raise FileNotFoundError(f"no trained model in {checkpoint_dir}: train one (commands above) or point "
                                "to the folder of your runs")
    keys = {label: test_videos_key(checkpoint_data_config(checkpoints[label], models[label])) for label in models}
    first = next(iter(keys))
    for label in list(models):
        if keys[label] != keys[first]:
            log(f"{label}: trained on other videos than {first} (data config), skipped: the models are "
                "compared on the same test videos")
            del models[label], checkpoints[label]
    return models, checkpoints
