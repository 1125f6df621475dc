"""The command line of ``training.train``, generated from the config dataclasses, and its one translator.

Every training and data option is a config field whose metadata (:func:`utils.cli.option`) names its
flag, its help and its role on resume (``run``: identifies the run; ``resumable``: a resume may change
it; ``invocation``: belongs to one invocation). Its destination is the field's name (``--frames`` sets
``num_frames``, ``--fixed-train-set`` clears ``fresh_train``) and its default the field's. Model fields
with a flag of their own are :data:`training.config.MODEL_OPTIONS`; any other one is set with
``--model-option FIELD=VALUE``.

:func:`make_configs` turns the options a command line sets into the configs of a run: a new run (from
the defaults, or from a caller's configs such as the demo's) or a resumed one (the checkpoint's, where
an explicit option may change only what a resume can change without losing exactness). New runs are
linked to their data (:func:`training.linking.link_configs`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from data import DataConfig, MovingMNISTConfig, VideoFileError, read_video_file
from data.video_file import default_split_sizes
from training.config import (
    MODEL_OPTIONS,
    ConfigError,
    TrainConfig,
    field_default,
    flag,
    model_fields,
    model_option_label,
    models_with_field,
    parse_field_value,
)
from training.linking import link_configs
from utils.cli import INVOCATION, RUN

_SECTIONS = {"train": TrainConfig, "data": DataConfig, "video": MovingMNISTConfig}


def config_options() -> dict[str, dict[str, Any]]:
    """Every option a config field declares, by destination (the field's name), in declaration order.

    Returns:
        ``{dest: {"flags", "role", "group", "argparse", "default", "sections"}}``; ``sections`` lists the
        configs the option sets (``--seed`` sets the training and the data config's seed).
    """
    options: dict[str, dict[str, Any]] = {}
    for section, config_class in _SECTIONS.items():
        for item in dataclasses.fields(config_class):
            spec = item.metadata.get("option")
            if spec is None:
                continue
            entry = options.setdefault(item.name, {**spec, "default": item.default, "sections": []})
            entry["sections"].append(section)
    return options


# The fields a resumed run may take from its command line (the others identify the run).
RESUME_MAY_CHANGE = frozenset(dest for dest, spec in config_options().items() if spec["role"] != RUN)


def _model_default(field_name: str) -> str:
    default = field_default(field_name)
    if isinstance(default, dict):
        default = ", ".join(f"{name} {value}" for name, value in default.items())
    return f"for {', '.join(models_with_field(field_name))}; default: {default}"


def add_config_options(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """Add every config option to its ``--help`` group (``groups``: "run", "training", "model", "data")."""
    specs = config_options()
    for dest, spec in specs.items():
        if spec["group"] != "data":  # the data options after the model options, as before
            groups[spec["group"]].add_argument(*spec["flags"], dest=dest, default=spec["default"], **spec["argparse"])
    for field_name, options in MODEL_OPTIONS.items():
        help_text = f"{options['help']} ({_model_default(field_name)})"
        groups["model"].add_argument(flag(field_name), dest=field_name, default=None,
                                     **{**options, "help": help_text})
    groups["model"].add_argument("--model-option", action="append", default=[], metavar="FIELD=VALUE",
                                 help="set any other field of the model's config, e.g. feature_dim=256 or "
                                 "architecture=pooled (repeatable)")
    for dest, spec in specs.items():
        if spec["group"] == "data":
            groups["data"].add_argument(*spec["flags"], dest=dest, default=spec["default"], **spec["argparse"])


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


def _label(spec: dict[str, Any], value: Any) -> str:
    if spec["argparse"].get("action") in ("store_true", "store_false"):
        return spec["flags"][0] + ("" if value == (spec["argparse"]["action"] == "store_true") else " (unset)")
    return f"{spec['flags'][0]} {value}"


def follow_video_file(data_values: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """Make a new run's data values follow its ``--video-file``: frames and image size from the file, split
    sizes 80/10/10 unless given; returns the notes that say so (the layout used and how it was chosen).

    Raises:
        ConfigError: the file cannot be used (one line), or an explicit --frames / --image-size contradicts it.
    """
    # stored absolute: evaluate.py, run from anywhere, must recognise the run's own file (and its test split)
    data_values["video_file"] = str(Path(data_values["video_file"]).expanduser().resolve())
    try:
        videos = read_video_file(data_values["video_file"], data_values.get("video_layout"))
    except VideoFileError as error:
        raise ConfigError(f"argument --video-file: {error}") from None
    for dest, value in (("num_frames", videos.num_frames), ("image_size", videos.image_size)):
        if dest in options and options[dest] != value:
            raise ConfigError(f"{config_options()[dest]['flags'][0]} {options[dest]} contradicts --video-file, "
                              f"whose videos have {videos.num_frames} frames of {videos.image_size}x"
                              f"{videos.image_size}; leave it out", usage=True)
        data_values[dest] = value
    data_values["digit_size"] = None
    data_values["video_layout"] = videos.layout
    try:
        defaults = default_split_sizes(videos.num_videos)
    except VideoFileError as error:
        raise ConfigError(f"argument --video-file: {error}") from None
    for split in ("val", "test"):
        if f"{split}_size" not in options:
            data_values[f"{split}_size"] = defaults[split]
    if "train_size" not in options:
        data_values["train_size"] = max(1, videos.num_videos - data_values["val_size"] - data_values["test_size"])
    return [f"video file {videos.describe()}",
            f"splits of the video file: a permutation seeded by --seed {data_values['seed']}: test "
            f"{data_values['test_size']}, validation {data_values['val_size']}, training {data_values['train_size']} "
            "videos (no ground-truth factors: the judged and factor metrics are not available)"]


def make_configs(model_name: str, experiment_name: str, options: dict[str, Any],
                 base: tuple[Any, TrainConfig, DataConfig] | None = None,
                 *, resume: bool = False) -> tuple[Any, TrainConfig, DataConfig, list[str]]:
    """The configs of a run from the options a command line sets (the one translator).

    Args:
        model_name: a key of ``models.MODELS``.
        experiment_name: the run's name.
        options: the options set explicitly, by destination (:func:`utils.cli.given_values`), without the
            command's own (``--model``, ``--name``, ``--resume``...).
        base: ``(model config, train config, data config)`` the options apply to; None: the defaults.
        resume: ``base`` is the run being resumed: an option that identifies the run must keep its value,
            a resumable one changes it, and one that belongs to an invocation takes its default when unset.
            Otherwise (a new run) every option applies and the model is linked to its data.

    Returns:
        ``(model config, train config, data config, notes)``: notes on ignored options, on values that
        followed the data and on options without effect.

    Raises:
        ConfigError: an option that sets no config field here (e.g. the demo's ``--train-args "--name x"``),
            an invalid value, a model option that contradicts the data, or (``resume``) one that contradicts
            the run.
    """
    fields, specs = model_fields(model_name), config_options()
    notes: list[str] = []
    given_model: dict[str, Any] = {}
    for dest, value in options.items():
        if dest == "model_option":
            given_model.update(model_option_values(model_name, value))
        elif dest in MODEL_OPTIONS:
            if dest in fields:
                given_model[dest] = value
            else:
                notes.append(f"{flag(dest)} is ignored: the {model_name} model has no {dest}")
        elif dest not in specs:
            raise ConfigError(f"{flag(dest)} does not set a model, training or data option here")
    if base is None:
        model_values: dict[str, Any] = {}
        train_config, data_config = TrainConfig(experiment_name=experiment_name, model=model_name), DataConfig()
    else:
        model_config, train_config, data_config = base
        model_values = dataclasses.asdict(model_config)
    train_values = {item.name: getattr(train_config, item.name) for item in dataclasses.fields(TrainConfig)}
    train_values.update(experiment_name=experiment_name, model=model_name)
    data_values = data_config.to_dict()
    targets = {"train": train_values, "data": data_values, "video": data_values}

    conflicts = []
    for dest, spec in specs.items():
        if dest in options:
            value = options[dest]
        elif resume and spec["role"] == INVOCATION:
            value = spec["default"]
        else:
            continue
        current = targets[spec["sections"][0]][dest]
        if resume and spec["role"] == RUN:
            if value != current:
                conflicts.append(f"{_label(spec, value)} (the run has {current})")
            continue
        if resume and dest == "mnist_root" and value != current:
            notes.append(f"--mnist-root changed from {current} to {value}")
        for section in spec["sections"]:
            targets[section][dest] = value
    if not resume and "image_size" in options and "digit_size" not in options:
        data_values["digit_size"] = None  # the data config derives it for the new canvas
    if not resume and data_values.get("video_file") is not None:
        notes += follow_video_file(data_values, options)
    if resume:
        for name, value in given_model.items():
            if model_values.get(name) != value:
                conflicts.append(f"{model_option_label(name, value)} (the run has {model_values.get(name)})")
    if conflicts:
        raise ConfigError(f"--resume keeps the run's configuration, but {'; '.join(conflicts)}; start a new run "
                          "(another --name, or --overwrite) to change it", usage=True)
    try:
        train_config = TrainConfig(**train_values)
        data_config = DataConfig.from_dict(data_values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid option: {error}", usage=True) from None
    if resume:
        return model_config, train_config, data_config, notes
    model_config, link_notes = link_configs(model_name, {**model_values, **given_model}, data_config, given_model)
    return model_config, train_config, data_config, notes + link_notes

