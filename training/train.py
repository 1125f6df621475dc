"""Train one run as a library function: :func:`train` takes the configs (dataclasses), writes the run
folder and returns a :class:`TrainResult`; problems are exceptions. :func:`main` is ``python -m
training.train``: the command line parsed and planned by :mod:`training.cli`, trained, its exceptions
mapped to exit codes.

One process at a time per run folder: rank 0 holds the folder's advisory lock (:mod:`training.run_folder.lock`)
while it trains (only it writes); under torchrun every rank learns when rank 0 cannot go on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from data import DataConfig, data_loaders, video_of
from models import MODELS, build_model
from models.checkpoint import LAST, CheckpointError, Key, RunFiles, library_versions, run_metadata
from training import distributed
from training.cli import (
    EXIT_NON_FINITE,
    EXIT_USAGE,
    EXIT_WRITE,
    PROG,
    RunPlan,
    build_parser,
    explicit_options,
    plan_run,
    run_folder,
)
from training.config import ConfigError, TrainConfig
from training.fit_prior import fit_run_priors
from training.linking import data_mismatches
from training.optimizer import make_optimizer, make_scheduler
from training.run_folder.lock import RunFolderBusy, RunLock
from training.run_folder.logs import RunLogger, logger, setup_logging
from training.run_folder.prepare import ResumePoint, lock_existing_run_folder, prepare_run_dir
from training.trainer import NonFiniteLossError, Trainer
from utils.atomic import atomic_write_json
from utils.devices import bf16_supported, resolve_device

IMAGE_VIDEOS, IMAGE_FRAMES = 4, 10  # reconstructions shown in TensorBoard each epoch


class OtherProcessFailed(ConfigError):
    """Under torchrun, rank 0 could not prepare the run folder (it reports why; the other ranks stop)."""


class RunWriteError(OSError):
    """An output could not be written (e.g. a full disk); the message says what the checkpoints keep."""


class TrainingInterrupted(RuntimeError):
    """A second SIGINT or SIGTERM stopped training at once, mid-step, or the first one stopped the ex-post prior
    fit of a finished run; the message says what ``last.pt`` holds.

    Attributes:
        exit_status: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signum


class _SecondSignal(KeyboardInterrupt):
    """Raised by the signal handler when a stop is requested twice (a BaseException: no handler swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} received twice")
        self.signum = signum


class _SignalDuringPrior(KeyboardInterrupt):
    """Raised by the signal handler of the end-of-training prior fit: its first signal stops it at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} received while fitting the ex-post prior")
        self.signum = signum


@dataclass(frozen=True)
class TrainResult:
    """How a call of :func:`train` ended.

    Attributes:
        run_dir: the run folder.
        stop_reason: ``"completed"``, ``"budget"`` (``max_minutes`` reached), or the signal's name
            (``"SIGINT"``, ``"SIGTERM"``) or another reason a stop was requested for.
        epochs: epochs completed (``last.pt`` holds them, plus ``batches`` of the next when stopped).
        batches: batches of the unfinished epoch done when training stopped mid-epoch.
        step: optimizer steps taken.
        best_metric: the best validation loss so far.
        prior_seconds: seconds spent fitting the ex-post prior after training (0 when none was fitted).
    """

    run_dir: Path
    stop_reason: str
    epochs: int
    batches: int
    step: int
    best_metric: float
    prior_seconds: float = 0.0

    @property
    def finished(self) -> bool:
        """Training ran to its last epoch or its wall-clock budget (not stopped by a signal)."""
        return self.stop_reason in ("completed", "budget")

    @property
    def exit_status(self) -> int:
        """0 when finished, else 128 + the stopping signal's number (130 for SIGINT; SIGTERM's 143 for a stop
        another process was signalled for)."""
        if self.finished:
            return 0
        try:
            return 128 + signal.Signals[self.stop_reason].value
        except KeyError:
            return 128 + signal.SIGTERM.value


# What train() raises for a run that cannot go on (the command line maps each to its own exit status).
TRAINING_ERRORS = (ConfigError, RunFolderBusy, NonFiniteLossError, RunWriteError, TrainingInterrupted)


def check_run_inputs(model_name: str, model_config: Any, train_config: TrainConfig, data_config: DataConfig) -> None:
    """Check that the configs of a run fit together, before anything is written.

    Raises:
        ConfigError: an unknown model, a training config of another model, a model config of another class,
            or a model whose frames are not the data's.
    """
    if model_name not in MODELS:
        raise ConfigError(f"unknown model {model_name!r}; pick one of {list(MODELS)}")
    if train_config.model != model_name:
        raise ConfigError(f"train_config.model is {train_config.model!r} but the model trained is {model_name!r}; "
                          "give both the same name")
    config_class = MODELS[model_name].config_class
    if not isinstance(model_config, config_class):
        raise ConfigError(f"model_config is a {type(model_config).__name__}, not the {config_class.__name__} of "
                          f"the {model_name} model; build it with MODELS[{model_name!r}].config_class(...)")
    size, channels = getattr(model_config, "image_size", None), getattr(model_config, "channels", 1)
    if size is not None and size != data_config.video.image_size:
        raise ConfigError(f"the model takes {size}x{size} frames but the data has {data_config.video.image_size}x"
                          f"{data_config.video.image_size}; give the model config image_size="
                          f"{data_config.video.image_size} (or the data config image_size={size})")
    if channels != 1:
        raise ConfigError(f"Moving MNIST is grayscale but the model config has channels={channels}")


def build_loaders(train_config: TrainConfig, data_config: DataConfig, context: distributed.DistributedContext,
                  device: torch.device) -> tuple[Any, Any]:
    """This process's training loader (its share of every epoch) and the full validation loader."""
    try:
        train_loader, val_loader, _ = data_loaders(
            data_config, train_config.batch_size, num_workers=train_config.num_workers, rank=context.rank,
            world_size=context.world_size, pin_memory=device.type == "cuda",
        )
    except (FileNotFoundError, ValueError) as error:  # e.g. a --mnist-root without the MNIST files
        raise ConfigError(f"cannot build the data loaders: {error}") from None
    return train_loader, val_loader


def create_model(model_name: str, model_config: Any, seed: int) -> torch.nn.Module:
    """The model, initialised from ``seed`` (the same weights on every process and every run)."""
    torch.manual_seed(seed)
    return build_model(model_name, model_config)


def train(
    model_name: str,
    model_config: Any,
    train_config: TrainConfig,
    data_config: DataConfig,
    run_dir: str | os.PathLike | None = None,
    *,
    resume: ResumePoint | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    notes: tuple[str, ...] | list[str] = (),
    context: distributed.DistributedContext | None = None,
    lock: RunLock | None = None,
    how_to_continue: str = "continue with --resume",
) -> TrainResult:
    """Train a model and write its run folder (``last.pt``, ``best_model.pt``, ``config.json``,
    ``metrics.csv``, ``train.log``, ``tensorboard/``); SIGINT and SIGTERM stop it after the current step.

    Args:
        model_name: a key of ``models.MODELS``.
        model_config: its config.
        train_config: how to train.
        data_config: on which videos.
        run_dir: the run folder; ``train_config.checkpoint_dir / train_config.experiment_name`` by default.
        resume: the ``last.pt`` to continue (:func:`training.run_folder.prepare.resume_point`); None starts afresh.
        overwrite: a fresh start may replace an earlier run's outputs in ``run_dir``.
        quiet: no progress bar (it is also off when stderr is not a terminal).
        notes: lines logged before training (e.g. options that were ignored).
        context: the distributed context; read from the environment (torchrun) by default.
        lock: the run folder's lock if the caller already holds it (released here either way).
        how_to_continue: what the messages of a stopped or failed run tell the user to do next (the demo
            continues a run when its command is run again).

    Returns:
        How training ended (a stop by signal or budget is a result, not an error).

    Raises:
        ConfigError: a model config that does not fit the data config (a new run; see
            :func:`training.linking.link_configs`), an unusable run folder, a resume that cannot be restored,
            or data that cannot be built
            (:class:`OtherProcessFailed` on the ranks that did not see why).
        RunFolderBusy: another process holds the run folder.
        NonFiniteLossError: a non-finite loss, gradient, validation loss or weight (logged; never saved).
        RunWriteError: an output could not be written (logged; the checkpoints keep the last state written).
    """
    check_run_inputs(model_name, model_config, train_config, data_config)
    run_dir = Path(run_dir) if run_dir is not None else Path(train_config.checkpoint_dir) / train_config.experiment_name
    mismatches = [] if resume is not None else data_mismatches(model_name, model_config, data_config)
    if mismatches:  # a new run trains exactly the configs it is given, so they must agree
        raise ConfigError(f"the {model_name} model config does not fit the data config: {'; '.join(mismatches)}; "
                          "build the model config with training.linking.link_configs")
    context = context if context is not None else distributed.from_environment()
    lock = lock or RunLock(run_dir)
    try:
        return _train_locked(model_name, model_config, train_config, data_config, run_dir, resume, overwrite,
                             quiet, list(notes), context, lock, how_to_continue)
    finally:
        lock.release()


def _collective_ok(context: distributed.DistributedContext, ok: bool, device: torch.device) -> bool:
    """Whether every process is ok (so all ranks exit together when one cannot go on)."""
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    return distributed.all_reduce_max(flag, context).item() == 0


def _write_failure(error: OSError, run_dir: Path, trainer: Trainer | None, how_to_continue: str) -> str:
    """The one line for an output that could not be written: the file, the system's reason, what is kept."""
    what = error.filename or f"the outputs in {run_dir}"
    kept = trainer.kept() if trainer is not None else "the checkpoints were not touched"
    return f"cannot write {what}: {error.strerror or error}; {kept}; free space (or fix the folder) and {how_to_continue}"


def _train_locked(model_name: str, model_config: Any, train_config: TrainConfig, data_config: DataConfig,
                  run_dir: Path, resume: ResumePoint | None, overwrite: bool, quiet: bool, notes: list[str],
                  context: distributed.DistributedContext, lock: RunLock, how_to_continue: str) -> TrainResult:
    device = distributed.process_device(context, resolve_device(train_config.device))
    distributed.initialize(context, device)
    error = None
    if context.is_main:  # only rank 0 writes, so only rank 0 locks
        try:
            prepare_run_dir(run_dir, lock, resume, overwrite)
        except (ConfigError, RunFolderBusy) as failure:
            error = failure
    if not _collective_ok(context, error is None, device):
        raise error if error is not None else OtherProcessFailed("rank 0 could not prepare the run folder")
    handlers = setup_logging(context, run_dir if context.is_main else None)
    run_logger, trainer = None, None
    previous_handlers: dict[int, Any] = {}
    try:
        for note in notes:
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
        model = create_model(model_name, model_config, train_config.seed).to(device)
        optimizer = make_optimizer(model, train_config)
        scheduler = make_scheduler(optimizer, train_config, len(train_loader))
        metadata = run_metadata(model_name, model_config, train_config, data_config, context.world_size)
        trainer = Trainer(
            distributed.wrap_model(model, context, device), optimizer, train_loader, val_loader, train_config,
            device, scheduler=scheduler, context=context, run_dir=run_dir, metadata=metadata,
            progress_bar=not quiet and sys.stderr.isatty(),
        )
        if resume is not None:
            _restore(trainer, resume, run_dir, context)
        if context.is_main:
            atomic_write_json(run_dir / RunFiles.CONFIG, {**metadata, Key.VERSIONS: library_versions()})
            preview = video_of(next(iter(val_loader)))[:IMAGE_VIDEOS, :IMAGE_FRAMES]
            run_logger = RunLogger(run_dir, trainer.epoch, preview)
            trainer.callbacks.append(run_logger)
        parameters = sum(parameter.numel() for parameter in model.parameters())
        logger.info(
            "training %s (%s parameters) as %s on %s%s: %d epochs of %d steps, batch %d%s, Adam lr %g",
            model_name, f"{parameters:,}", train_config.experiment_name, device,
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
            raise
        except _SecondSignal as interrupt:  # an atomic write in progress leaves the previous file
            message = f"{interrupt}: stopped at once, mid-step; {trainer.kept()}; {how_to_continue}"
            logger.error("%s", message)
            raise TrainingInterrupted(message, interrupt.signum) from None
        _log_end(reason, trainer, train_config, run_dir, how_to_continue)
        prior_seconds = 0.0
        if context.is_main and reason in ("completed", "budget"):
            # The ex-post prior (models.fitted_prior) of the finished run, so samples look like the data.
            # There is no step to finish here: the first signal stops the fit (the weights are saved).
            for signum in previous_handlers:
                signal.signal(signum, _stop_prior_fit)
            logger.info("fitting the ex-post prior of the finished run (models/fitted_prior.py)")
            started = time.perf_counter()
            try:
                signalled = {signal.Signals(signum).name: signum for signum in previous_handlers}
                if trainer.stop_reason in signalled:  # a signal that came as the last epoch ended
                    raise _SignalDuringPrior(signalled[trainer.stop_reason])
                written = fit_run_priors(run_dir, train_loader, device, seed=train_config.seed, log=logger.info)
            except _SignalDuringPrior as interrupt:  # an atomic write in progress leaves the previous file
                message = (f"{interrupt}: stopped; the trained weights are saved in {run_dir / LAST}, without "
                           f"a current ex-post prior; {how_to_continue} (it fits the prior then)")
                logger.error("%s", message)
                raise TrainingInterrupted(message, interrupt.signum) from None
            prior_seconds = time.perf_counter() - started
            paths = any(prior.paths is not None for prior in written.values())
            logger.info("fitted the ex-post prior (Gaussian mixtures on the content codes%s) into %s in %.1f s",
                        " and the objects' paths" if paths else "",
                        ", ".join(str(path) for path in written), prior_seconds)
        return TrainResult(run_dir, reason, trainer.epoch, trainer.progress.batches, trainer.step,
                           trainer.best_metric, prior_seconds)
    except OSError as failure:  # a full disk, a folder made read-only: only writes fail this way here
        message = _write_failure(failure, run_dir, trainer, how_to_continue)
        logger.error("%s", message)
        raise RunWriteError(message) from failure
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


def _restore(trainer: Trainer, resume: ResumePoint, run_dir: Path, context: distributed.DistributedContext) -> None:
    """Continue ``last.pt`` (a newer ``best_model.pt`` keeps its best_metric)."""
    try:
        trainer.load_state_dict(resume.checkpoint, source=str(run_dir / LAST))
    except (CheckpointError, ValueError, KeyError) as failure:
        raise ConfigError(f"--resume: cannot restore {run_dir / LAST}: {failure}") from None
    trainer.best_metric = min(trainer.best_metric, resume.best_on_disk)
    logger.info("resuming %s at epoch %d, step %d (batch %d of the epoch)", run_dir / LAST,
                trainer.epoch, trainer.step, trainer.progress.batches)
    saved_world = int(resume.checkpoint.get("world_size", 1))
    if saved_world != context.world_size:
        logger.warning("last.pt was written by %d processes, this run has %d: the data shares and the "
                       "noise differ, so the resumed run is not an exact continuation",
                       saved_world, context.world_size)


def _log_end(reason: str, trainer: Trainer, train_config: TrainConfig, run_dir: Path, how_to_continue: str) -> None:
    where = f"epoch {trainer.epoch} + {trainer.progress.batches} batches, step {trainer.step}"
    if reason == "completed":
        logger.info("done: %d epochs; best validation loss %.6g; outputs in %s", trainer.epoch,
                    trainer.best_metric, run_dir)
    elif reason == "budget":
        logger.info("--max-minutes %g reached: saved %s at %s; %s",
                    train_config.max_minutes, run_dir / LAST, where, how_to_continue)
    else:
        logger.warning("%s: saved %s at %s; %s", reason, run_dir / LAST, where, how_to_continue)


def _stop_prior_fit(signum: int, frame: Any) -> None:
    raise _SignalDuringPrior(signum)


def _stop_handler(trainer: Trainer):
    def handle(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if trainer.stop_reason is not None:  # asked twice: stop now (the last checkpoint stays intact)
            raise _SecondSignal(signum)
        trainer.request_stop(name)

    return handle


# ----------------------------------------------------------------------------------------------------
# The command line (python -m training.train): parsed and planned by training.cli, then trained


def run(plan: RunPlan, context: distributed.DistributedContext, lock: RunLock | None = None) -> int:
    """Train as planned (:func:`training.train.train`); returns the exit code."""
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
