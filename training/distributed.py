"""Multi-process training with DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node=N -m training.train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in
each process; :func:`from_environment` reads them. One process per device: NCCL between GPUs (process
``LOCAL_RANK`` drives ``cuda:LOCAL_RANK``), gloo between CPU processes. Without those variables (or with
``WORLD_SIZE=1``) training runs in one process and nothing here talks to ``torch.distributed``.

Conventions of the trainer under DDP: ``--batch-size`` is per process (the global batch is
``batch_size * world_size``), each rank trains on a disjoint share of every epoch, gradients are averaged by
DDP, validation is split across ranks and all-reduced, and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits among the training processes.

    Attributes:
        rank: global rank (0 writes checkpoints and logs).
        local_rank: rank on this machine (selects the GPU).
        world_size: number of processes.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints and logs."""
        return self.rank == 0


SINGLE_PROCESS = DistributedContext()


def from_environment(environ: dict[str, str] | None = None) -> DistributedContext:
    """The context torchrun's environment variables describe (single-process when they are absent).

    Raises:
        ValueError: the variables are present but inconsistent.
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ or "RANK" not in environ:
        return SINGLE_PROCESS
    try:
        world_size = int(environ["WORLD_SIZE"])
        rank = int(environ["RANK"])
        local_rank = int(environ.get("LOCAL_RANK", rank))
    except ValueError as error:
        raise ValueError(f"malformed torchrun variables RANK/LOCAL_RANK/WORLD_SIZE: {error}") from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"inconsistent torchrun variables: RANK={rank}, WORLD_SIZE={world_size}")
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size)


def process_device(context: DistributedContext, device: torch.device) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` when training on GPUs under DDP.

    Raises:
        ValueError: DDP on MPS (not supported by torch.distributed).
    """
    if not context.enabled:
        return device
    if device.type == "cuda":
        if context.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {context.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                "use --nproc_per_node at most the number of GPUs"
            )
        return torch.device("cuda", context.local_rank)
    if device.type == "mps":
        raise ValueError("multi-process training is not supported on MPS; use --device cpu or one process")
    return device


def initialize(context: DistributedContext, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo otherwise); a no-op for one process."""
    if not context.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)


def shutdown(context: DistributedContext) -> None:
    """Leave the process group (a no-op for one process)."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum ``tensor`` over processes, in place; returns it."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over processes, in place; returns it."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def wrap_model(model: torch.nn.Module, context: DistributedContext, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DDP (which also copies rank 0's initial weights to every rank), or unchanged."""
    if not context.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
