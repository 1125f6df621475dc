"""The command line of ``python -m training.train --model NAME --name RUN [options]``: its parser, and the plan
of a run (configs, run folder, resume) made from it; :func:`training.train.main` runs the plan.

Outputs go to ``CHECKPOINT_DIR/RUN/``: ``last.pt`` (every epoch, and on any early stop), ``best_model.pt``
(lowest finite validation loss), ``config.json``, ``metrics.csv`` (one row per epoch), ``train.log`` and
``tensorboard/``. ``--resume`` continues ``last.pt`` exactly; see ``--help`` for every option,
:mod:`training.trainer` for the loop's guarantees and :func:`training.train.train` for the same as a library
function (this module only turns the command line into its configs; ``main`` its exceptions into exit codes).

One process at a time per run folder: the process holds an advisory lock on it (:mod:`training.run_folder.lock`)
from before it reads the folder until it exits, and a second process is refused in one line naming the
first. Under torchrun only rank 0 locks (only it writes), before it writes anything, and it then checks
that the files the ranks planned from have not changed.

Exit codes: 0 done (or the ``--max-minutes`` budget reached, with ``last.pt`` written), 1 non-finite
loss, validation loss or weights (never saved), 2 invalid options, a run folder in use by another process,
or an unusable run folder or checkpoint, 3 an output could not be written (e.g. "No space left on
device"; the checkpoints keep the last state written), 130 SIGINT and 143 SIGTERM (both after writing
``last.pt``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import DataConfig, VideoFileError, load_digits, read_video_file
from data.video_file import split_indices
from models import MODELS
from models.checkpoint import LAST, Key, RunRecord
from training.config import ConfigError, TrainConfig, config_from_dict
from training.options import add_config_options, config_options, make_configs
from training.run_folder.prepare import (
    ResumePoint,
    refuse_existing_run,
    resume_point,
)
from utils.cli import INVOCATION, RESUMABLE, given_values
from utils.devices import resolve_device

PROG = "python -m training.train"
EXIT_NON_FINITE, EXIT_USAGE, EXIT_WRITE = 1, 2, 3
# Options of the command itself; every other one sets a config field (training.options).
COMMAND_OPTIONS = ("model", "name", "resume", "overwrite", "quiet")

# ----------------------------------------------------------------------------------------------------
# The command line


def _flags(role: str) -> str:
    flags = [spec["flags"][0] for spec in config_options().values() if spec["role"] == role]
    return ", ".join(flags[:-1]) + " and " + flags[-1]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (model choices and model defaults come from the ``MODELS`` registry)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a video VAE on Moving MNIST (or Moving Fashion-MNIST with --dataset fashion, or the "
        "videos of an array with --video-file). Outputs go to CHECKPOINT_DIR/NAME/: last.pt (every "
        "epoch), best_model.pt (lowest finite validation loss), config.json, metrics.csv, train.log and "
        "tensorboard/.",
        epilog="Optimizer: Adam (betas 0.9, 0.999). Stopping: SIGINT/SIGTERM and --max-minutes end training "
        "after the current optimizer step (possibly mid-epoch) and write last.pt; --resume then continues "
        "exactly where it stopped (same weights as an uninterrupted run). A resumed run keeps its model, "
        f"data and training options; it may change {_flags(RESUMABLE)}, and takes {_flags(INVOCATION)} from "
        "its own command line. "
        "Several devices: torchrun --nproc_per_node=N -m training.train ... (DDP; NCCL on GPUs, gloo on "
        "CPUs): --batch-size is per process, each process trains on a disjoint share of every epoch, "
        "validation is split across processes and summed, only rank 0 writes. One process per run "
        "folder: a second one is refused (an advisory lock, released when its holder exits or dies). Exit "
        "codes: 0 done or budget reached, 1 non-finite loss or weights (never saved), 2 invalid option, run "
        "folder in use, or unusable run folder or checkpoint, 3 an output could not be written (e.g. disk "
        "full; the checkpoints keep the last state written), 130 SIGINT, 143 SIGTERM.",
    )
    groups = {"run": parser.add_argument_group("run")}
    run = groups["run"]
    run.add_argument("--model", choices=list(MODELS), default=None,
                     help="model to train (required, except with --resume, which reads it from last.pt)")
    run.add_argument("--name", required=True, help="experiment name: outputs go to CHECKPOINT_DIR/NAME")
    run.add_argument("--resume", action="store_true",
                     help="continue CHECKPOINT_DIR/NAME/last.pt exactly (its model, data and training options)")
    run.add_argument("--overwrite", action="store_true",
                     help="start over in a run folder that already holds checkpoints (deletes the old run's "
                     "outputs); without it such a start is refused")
    run.add_argument("--quiet", action="store_true", help="no progress bar (it is also off when stderr is "
                     "not a terminal)")
    groups["training"] = parser.add_argument_group("training")
    groups["model"] = parser.add_argument_group(
        "model (an option the chosen model lacks is ignored, with a note)",
        "The frame size, the channels and, for an object-structured Disentangled VAE (architecture=keypoints, the "
        "default, or slots), the slots follow the data (--image-size, --digits); an explicit model option that "
        "contradicts them is an error.")
    groups["data"] = parser.add_argument_group("data")
    add_config_options(groups)
    return parser


def given_options(argv: list[str]) -> dict[str, Any]:
    """The options the command line sets explicitly, by destination (``--name`` is not required here:
    options for a run planned elsewhere, such as the demo's ``--train-args``, lack it).

    Raises:
        SystemExit: an option that does not parse (argparse has printed why).
    """
    return given_values(build_parser(), argv)


def explicit_options(argv: list[str]) -> set[str]:
    """Destinations the command line sets explicitly."""
    return set(given_options(argv))


def config_options_of(args: argparse.Namespace, explicit: set[str]) -> dict[str, Any]:
    """The explicit options that set config fields, by destination (for :func:`training.options.make_configs`)."""
    return {dest: getattr(args, dest) for dest in explicit if dest not in COMMAND_OPTIONS}


# ----------------------------------------------------------------------------------------------------
# From options to configs


@dataclass
class RunPlan:
    """Everything a run needs, decided before anything is written (the arguments of :func:`train`)."""

    model_name: str
    model_config: Any
    train_config: TrainConfig
    data_config: DataConfig
    run_dir: Path
    resume: ResumePoint | None
    overwrite: bool
    quiet: bool
    notes: list[str] = field(default_factory=list)


def resumed_configs(args: argparse.Namespace, explicit: set[str], checkpoint: dict[str, Any],
                    source: Path) -> tuple[str, Any, TrainConfig, DataConfig, list[str]]:
    """The configs of a resumed run: the checkpoint's, with the options a resumed run may change.

    Raises:
        ConfigError: another model, an explicit option that contradicts the run, or checkpoint configs that
            do not rebuild.
    """
    record = RunRecord.of(checkpoint)
    name = record.model_name
    if args.model is not None and args.model != name:
        raise ConfigError(f"--resume: {source} holds a {name!r} model, not {args.model!r}")
    try:
        model_config = MODELS[name].config_class(**record.model_config)
        data_config = DataConfig.from_checkpoint(checkpoint, strict=True)
        if Key.TRAIN_CONFIG not in checkpoint:
            raise KeyError(Key.TRAIN_CONFIG)
        saved_train = config_from_dict(TrainConfig, record.train_config)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"--resume: {source} holds configs this code cannot rebuild: {error}") from None
    model_config, train_config, data_config, notes = make_configs(
        name, args.name, config_options_of(args, explicit), (model_config, saved_train, data_config), resume=True)
    return name, model_config, train_config, data_config, notes


def run_folder(args: argparse.Namespace) -> Path:
    """``CHECKPOINT_DIR/NAME``.

    Raises:
        ConfigError: ``--name`` is not a plain folder name.
    """
    name = args.name
    if not name.strip() or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"argument --name: must be a plain folder name, got {name!r}", usage=True)
    return Path(args.checkpoint_dir) / name


def plan_run(args: argparse.Namespace, explicit: set[str]) -> RunPlan:
    """Check the options and the run folder and build the configs; writes nothing.

    Raises:
        ConfigError: invalid options, a run folder that is not what the flags expect, or an unusable
            checkpoint.
    """
    run_dir = run_folder(args)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: pick one", usage=True)
    try:
        resolve_device(args.device)
    except ValueError as error:
        raise ConfigError(f"argument --device: {error}", usage=True) from None
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} exists and is not a folder")
    if args.resume:
        point = resume_point(run_dir)
        model_name, model_config, train_config, data_config, notes = resumed_configs(
            args, explicit, point.checkpoint, run_dir / LAST)
        if point.best_note is not None:
            notes.append(point.best_note)
        return RunPlan(model_name, model_config, train_config, data_config, run_dir, point, False, args.quiet, notes)
    if not args.overwrite:
        refuse_existing_run(run_dir)
    if args.model is None:
        raise ConfigError("the following arguments are required: --model (or --resume)", usage=True)
    model_name = args.model
    model_config, train_config, data_config, notes = make_configs(model_name, args.name,
                                                                  config_options_of(args, explicit))
    if data_config.video_file is not None:
        try:
            split_indices(read_video_file(data_config.video_file, data_config.video_layout).num_videos,
                          {"train": data_config.train_size, "val": data_config.val_size,
                           "test": data_config.test_size}, data_config.seed)
        except VideoFileError as error:
            raise ConfigError(f"argument --video-file: {error}") from None
    elif data_config.mnist_root is not None or data_config.dataset != "mnist":
        try:
            digits = load_digits(data_config.mnist_root, data_config.dataset)  # cached: the loaders reuse it
        except (FileNotFoundError, ValueError) as error:
            option = "--mnist-root" if data_config.mnist_root is not None else "--dataset"
            raise ConfigError(f"argument {option}: {error}") from None
        notes.append(f"data: {data_config.title}, images from {digits.source}")
    return RunPlan(model_name, model_config, train_config, data_config, run_dir, None, args.overwrite,
                   args.quiet, notes)
