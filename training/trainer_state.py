"""What a trainer (:class:`training.trainer.Trainer`) saves and restores so that a resumed run continues
exactly: the model, optimizer, scheduler and global random states, the counters and the progress of an
unfinished epoch. It reads the trainer through :class:`ResumableTrainer`, so it does not import the trainer."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from models.checkpoint import Key, RunRecord, build_checkpoint, load_weights
from training.distributed import DistributedContext, all_reduce_sum


@dataclass
class EpochProgress:
    """The epoch in progress: batches done, their videos and seconds, and metric sums weighted by videos."""

    batches: int = 0
    videos: int = 0
    seconds: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)


class ResumableTrainer(Protocol):
    """What of a trainer its checkpoint holds (:class:`training.trainer.Trainer` has all of it)."""

    metadata: dict[str, Any]
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    context: DistributedContext
    device: torch.device
    sum_dtype: torch.dtype  # of the all-reduced metric sums
    epoch: int
    step: int
    best_metric: float
    progress: EpochProgress
    steps_per_epoch: int
    last_kl_scale: float
    saved: tuple[int, int, int]

    def kl_scale(self, step: int) -> float: ...


# ----------------------------------------------------------------------------------------------------
# The global random states (python, numpy, torch, CUDA), in checkpointable types


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch and CUDA random states, in types ``weights_only`` loading accepts."""
    numpy_state = np.random.get_state()  # noqa: NPY002 - libraries may use the legacy global state
    state = {
        "python": random.getstate(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only where available)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached))  # noqa: NPY002
    # .cpu(): a checkpoint loaded with map_location="cuda" puts these byte tensors on the GPU.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU of the saving machine; restore those this machine has.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


# ----------------------------------------------------------------------------------------------------
# The trainer's state


def trainer_checkpoint(trainer: ResumableTrainer) -> dict[str, Any]:
    """Everything needed to resume, plus the trainer's ``metadata``, as a checkpoint of
    :mod:`models.checkpoint`. Collective under DDP (the epoch's partial sums are all-reduced)."""
    progress = asdict(trainer.progress)
    if trainer.context.enabled and progress["sums"]:
        names = list(progress["sums"])
        local = torch.tensor([progress["sums"][name] for name in names] + [progress["videos"]],
                             device=trainer.device, dtype=trainer.sum_dtype)
        totals = all_reduce_sum(local, trainer.context).tolist()
        progress["sums"] = dict(zip(names, totals[:-1], strict=True))
        progress["videos"] = int(totals[-1])
    return build_checkpoint(
        trainer.metadata,
        model_state_dict=trainer.module.state_dict(),
        optimizer_state_dict=trainer.optimizer.state_dict(),
        scheduler_state_dict=trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        rng_state=rng_state(),
        epoch=trainer.epoch,
        step=trainer.step,
        best_metric=trainer.best_metric,
        epoch_progress=progress,
    )


def restore_trainer(trainer: ResumableTrainer, checkpoint: dict[str, Any], source: str = "checkpoint") -> None:
    """Restore what :func:`trainer_checkpoint` saved (weights, optimizer, scheduler, RNG, counters, progress).

    Raises:
        CheckpointError: the weights do not fit the model.
        ValueError: the checkpoint stopped mid-epoch past the end of an epoch of this run.
    """
    missing = [key for key in (Key.OPTIMIZER_STATE, Key.EPOCH, Key.STEP) if key not in checkpoint]
    if missing:
        raise KeyError(f"the checkpoint lacks {missing}")
    record = RunRecord.of(checkpoint)
    load_weights(trainer.module, record.model_state, source)
    trainer.optimizer.load_state_dict(record.optimizer_state)
    if trainer.scheduler is not None and record.scheduler_state is not None:
        trainer.scheduler.load_state_dict(record.scheduler_state)
    if record.rng_state is not None:
        set_rng_state(record.rng_state)
    trainer.epoch = int(record.epoch)
    trainer.step = int(record.step)
    trainer.best_metric = float(record.best_metric if record.best_metric is not None else math.inf)
    progress = dict(record.epoch_progress or {})
    if not trainer.context.is_main:  # rank 0 carries the (already all-reduced) partial sums
        progress.update(sums={}, videos=0)
    trainer.progress = EpochProgress(**progress)
    if trainer.progress.batches >= trainer.steps_per_epoch > 0:
        raise ValueError(
            f"{source} stopped after batch {trainer.progress.batches} of an epoch, but an epoch now has only "
            f"{trainer.steps_per_epoch} batches (did --batch-size or --train-size change?)"
        )
    trainer.last_kl_scale = trainer.kl_scale(max(trainer.step - 1, 0))
    trainer.saved = (trainer.epoch, trainer.step, trainer.progress.batches)
