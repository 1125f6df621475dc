"""A generic training loop for any model whose ``forward(video, kl_scale, generator)`` returns an output
with ``loss``, ``recon_loss`` and ``kl_terms`` (nothing here knows which model it trains).

What it guarantees:

* **Adam** (:mod:`training.optimizer`) with an optional gradient-norm clip and an optional per-step
  cosine schedule (its state is checkpointed). KL warm-up: the KL weight ``kl_scale`` grows linearly, per optimizer step, from 0 to 1
  over ``kl_warmup_epochs`` epochs.
* **Never loses work.** ``last.pt`` is written (atomically) after every epoch and whenever training
  stops early; ``best_model.pt`` when the validation loss is finite and lower than every earlier one. At
  the end of an epoch the callbacks (``metrics.csv``'s row) run first, then ``best_model.pt`` is written,
  then ``last.pt``: a process killed between two of these writes resumes from the previous ``last.pt``,
  which drops the newer row and trains that epoch again, and a ``best_model.pt`` newer than ``last.pt``
  is never replaced by a worse model (``python -m training.train --resume`` lowers :attr:`best_metric`
  to the newer file's). A
  stop request (SIGINT/SIGTERM via :meth:`Trainer.request_stop`, or the wall-clock budget) ends training
  *after the current optimizer step*, possibly mid-epoch: the checkpoint then records how many batches of
  the epoch are done, and resuming skips exactly those batches, so a stopped-and-resumed run gives the
  same weights as an uninterrupted one. A stop request during validation takes effect once the epoch's
  checkpoint is written.
* **Non-finite values are never saved.** A NaN or infinite loss or gradient stops training before the
  optimizer step, a non-finite validation loss before the epoch is saved, and non-finite weights before
  any checkpoint is written (:class:`NonFiniteLossError`, whose message says what the checkpoints
  keep): ``last.pt`` and ``best_model.pt`` only ever hold finite weights of an epoch (or a stop) whose
  values were all finite.
* **Reproducible noise.** The posterior noise of training step ``s`` on rank ``r`` comes from a generator
  seeded with ``(seed, s, r)``, and validation batch ``i`` from one seeded with ``(seed, i)`` and
  ``kl_scale=1``: validation losses are deterministic, comparable across epochs and independent of the
  number of processes, and no generator state needs saving.
* **DDP.** Each rank trains on its share of the data; validation batches are dealt out round-robin to
  the ranks and the sums all-reduced; only rank 0 writes checkpoints and calls the callbacks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from data import video_of
from models.checkpoint import (
    BEST,
    LAST,
    atomic_torch_save,
    non_finite_weights,
)
from training.config import TrainConfig
from training.distributed import SINGLE_PROCESS, DistributedContext, all_reduce_max, all_reduce_sum
from training.noise import train_noise_seed, validation_noise_seed
from training.trainer_messages import format_row, non_finite_hints, non_finite_weights_hint
from training.trainer_state import EpochProgress, restore_trainer, trainer_checkpoint
from utils.devices import bf16_supported

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A NaN or infinite loss, gradient, validation loss or weight; raised before anything non-finite is
    used by the optimizer or written to a checkpoint."""


class Callback(Protocol):
    def on_epoch_end(self, trainer: Trainer, row: dict[str, float], is_best: bool) -> None: ...


class Trainer:
    """Trains, validates and checkpoints one model.

    Args:
        model: the model, possibly wrapped in DistributedDataParallel.
        optimizer: its optimizer (see :func:`training.optimizer.make_optimizer`).
        train_loader: yields batches (dicts with ``"video"``, or video tensors); its ``sampler`` may have
            ``set_epoch``.
        val_loader: the fixed validation batches (every rank iterates all and keeps its round-robin share).
        config: the training config (epochs, clipping, warm-up, budget, AMP, seed).
        device: where batches go.
        scheduler: optional LR scheduler, stepped after every optimizer step.
        context: the distributed context (single process by default).
        run_dir: where ``last.pt`` and ``best_model.pt`` go (rank 0 only); None writes nothing.
        metadata: entries added to every checkpoint (model name and configs).
        callbacks: objects with ``on_epoch_end(trainer, row, is_best)``, called on rank 0.
        progress_bar: show a tqdm bar (rank 0 only).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: Any,
        val_loader: Any,
        config: TrainConfig,
        device: torch.device,
        *,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        context: DistributedContext = SINGLE_PROCESS,
        run_dir: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
        progress_bar: bool = False,
    ) -> None:
        self.model, self.module = model, getattr(model, "module", model)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.config, self.device, self.context = config, device, context
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.metadata = dict(metadata or {})
        self.callbacks = list(callbacks)
        self.progress_bar = progress_bar and context.is_main
        # bf16 autocast (--amp) where the device computes bf16 natively; no loss scaling is needed.
        self.autocast_dtype = torch.bfloat16 if config.amp and bf16_supported(device) else None
        self.steps_per_epoch = len(train_loader)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.best_metric = math.inf
        self.progress = EpochProgress()
        self.last_kl_scale = self.kl_scale(0)
        self.stop_reason: str | None = None
        self.saved: tuple[int, int, int] | None = None  # (epoch, step, batches) that last.pt holds
        self._generator = torch.Generator(device=device)
        self._deadline: float | None = None
        self.sum_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64

    # -- control ----------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """End training after the current optimizer step and write ``last.pt`` (safe from a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def kl_scale(self, step: int) -> float:
        """KL weight of optimizer step ``step``: ``min(1, step / (kl_warmup_epochs * steps_per_epoch))``."""
        warmup_steps = self.config.kl_warmup_epochs * self.steps_per_epoch
        return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is not None:
            return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
        return contextlib.nullcontext()

    def _local_stop(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.request_stop("budget")
        return self.stop_reason is not None

    def _agree_on_stop(self) -> bool:
        """Whether any process wants to stop (collective under DDP)."""
        flag = torch.tensor([float(self._local_stop())], device=self.device)
        stop = all_reduce_max(flag, self.context).item() > 0
        if stop:
            self.request_stop("stop requested by another process")
        return stop

    # -- the loop ---------------------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until ``config.epochs`` epochs are done or a stop is requested.

        Returns:
            ``"completed"``, ``"budget"``, or the reason given to :meth:`request_stop`.

        Raises:
            NonFiniteLossError: a non-finite loss, gradient, validation loss or weight (nothing non-finite
                is written; the checkpoints keep what :meth:`kept` says).
        """
        if self.config.max_minutes is not None:
            self._deadline = time.monotonic() + 60.0 * self.config.max_minutes
        while self.epoch < self.config.epochs:
            if not self.train_epoch():
                self.save_checkpoint(best=False)
                return self.stop_reason or "stopped"
            started = time.monotonic()
            metrics = self.validate()
            self.end_epoch(metrics, validation_seconds=time.monotonic() - started)
            if self.epoch < self.config.epochs and self._agree_on_stop():
                return self.stop_reason or "stopped"
        return "completed"

    def train_epoch(self) -> bool:
        """Train the current epoch from where :attr:`progress` says it stands.

        Returns:
            True when the epoch's last batch is done, False when a stop request ended it early.
        """
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        self.model.train()
        progress = self.progress
        # Resuming mid-epoch: the sampler's order is a function of the epoch, so skipping the batches
        # already done replays the rest exactly (skipped batches are loaded and dropped: cheap here).
        batches = itertools.islice(iter(self.train_loader), progress.batches, None)
        bar = tqdm(total=self.steps_per_epoch, initial=progress.batches, leave=False, dynamic_ncols=True,
                   desc=f"epoch {self.epoch + 1}/{self.config.epochs}", disable=not self.progress_bar)
        started, seconds_before = time.monotonic(), progress.seconds
        try:
            for batch in batches:
                values, count, stop = self.train_step(batch)
                for key, value in values.items():
                    progress.sums[key] = progress.sums.get(key, 0.0) + value * count
                progress.batches += 1
                progress.videos += count
                progress.seconds = seconds_before + time.monotonic() - started
                speed = progress.videos * self.context.world_size / max(progress.seconds, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4g}", videos_s=f"{speed:.0f}")
                if stop and progress.batches < self.steps_per_epoch:
                    return False
        finally:
            bar.close()
        return True

    def train_step(self, batch: Any) -> tuple[dict[str, float], int, bool]:
        """One optimizer step on one batch.

        Returns:
            ``(metrics of the batch, number of videos, whether to stop after this step)``.

        Raises:
            NonFiniteLossError: before ``optimizer.step`` when the loss or the gradient is not finite.
        """
        video = video_of(batch).to(self.device, non_blocking=True)
        self.last_kl_scale = self.kl_scale(self.step)
        self._generator.manual_seed(train_noise_seed(self.config.seed, self.step, self.context.rank))
        with self._autocast():
            output = self.model(video, kl_scale=self.last_kl_scale, generator=self._generator)
        names, values = _output_values(output)
        # One collective per step: any rank with a non-finite loss, any rank asked to stop.
        flags = torch.stack([(~torch.isfinite(values).all()).float(),
                             torch.tensor(float(self._local_stop()), device=values.device)])
        flags = all_reduce_max(flags, self.context)
        numbers = torch.cat([flags, values]).tolist()
        metrics = dict(zip(names, numbers[2:], strict=True))
        if numbers[0] > 0:
            self._non_finite("training loss", metrics, "stopped before the optimizer step")
        self.optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm)
        if not math.isfinite(grad_norm.item()):  # identical on every rank after DDP's all-reduce
            self._non_finite("gradient norm", {**metrics, "grad_norm": grad_norm.item()},
                             "stopped before the optimizer step")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        if numbers[1] > 0:
            self.request_stop("stop requested by another process")
        return metrics, len(video), numbers[1] > 0

    def _non_finite(self, what: str, metrics: dict[str, float], action: str) -> None:
        """Raise :class:`NonFiniteLossError` for a non-finite training loss or gradient of this step."""
        if all(map(math.isfinite, metrics.values())):
            where = " (on another process)"
        else:
            where = ": " + ", ".join(f"{key}={value:.4g}" for key, value in metrics.items())
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} (epoch {self.epoch + 1}, batch "
            f"{self.progress.batches + 1}){where}; {action}, so {self.kept()}. Hints: {non_finite_hints(metrics, self.module, self.config.lr)}"
        )

    def kept(self) -> str:
        """What the checkpoints hold after a failure (nothing non-finite is ever written)."""
        if self.run_dir is None:
            return "nothing was written (this trainer writes no checkpoints)"
        if self.saved is None:
            return "nothing was saved (the run has no checkpoint yet)"
        epoch, step, batches = self.saved
        at = f"epoch {epoch}{f' + {batches} batches' if batches else ''}, step {step}"
        best = f" and {BEST} the best epoch up to it" if (self.run_dir / BEST).exists() else ""
        return f"{LAST} keeps the last good state ({at}){best}"

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean validation metrics (``val_loss``, ``val_recon``, ``val_kl_*``) with ``kl_scale=1``.

        Deterministic: batch ``i`` uses noise seeded with ``(seed, i)``; under DDP rank ``r`` evaluates the
        batches with ``i % world_size == r`` and the sums are all-reduced, giving the single-process value.
        """
        self.module.eval()
        names, sums = None, None
        for index, batch in enumerate(self.val_loader):
            if index % self.context.world_size != self.context.rank:
                continue
            video = video_of(batch).to(self.device, non_blocking=True)
            self._generator.manual_seed(validation_noise_seed(self.config.seed, index))
            with self._autocast():
                output = self.module(video, kl_scale=1.0, generator=self._generator)
            names, values = _output_values(output)
            weighted = torch.cat([values * len(video), values.new_tensor([len(video)])])
            sums = weighted if sums is None else sums + weighted
        self.module.train()
        if sums is None:  # a rank with no validation batch (fewer batches than processes)
            names = list(self.progress.sums)
            sums = torch.zeros(len(names) + 1, device=self.device)
        totals = all_reduce_sum(sums, self.context).tolist()
        count = max(totals[-1], 1.0)
        return {f"val_{name}": total / count for name, total in zip(names, totals[:-1], strict=True)}

    def end_epoch(self, val_metrics: dict[str, float], validation_seconds: float = 0.0) -> dict[str, float]:
        """Close the epoch: reduce the training metrics, log, call the callbacks, then checkpoint.

        Returns:
            The epoch's row (what ``metrics.csv`` gets).

        Raises:
            NonFiniteLossError: the validation loss or the weights are not finite (nothing is written).
        """
        progress = self.progress
        names = list(progress.sums)
        local = torch.tensor([*(progress.sums[name] for name in names), progress.videos],
                             device=self.device, dtype=self.sum_dtype)
        totals = all_reduce_sum(local, self.context).tolist()
        videos = max(totals[-1], 1.0)
        train_metrics = {f"train_{name}": total / videos for name, total in zip(names, totals[:-1], strict=True)}
        val_loss = val_metrics.get("val_loss", math.nan)
        if not math.isfinite(val_loss):  # identical on every rank (all-reduced)
            details = ", ".join(f"{key}={value:.4g}" for key, value in val_metrics.items())
            raise NonFiniteLossError(
                f"non-finite validation loss after epoch {self.epoch + 1} (step {self.step}): {details}; the "
                f"epoch was not saved, so {self.kept()}. Hints: "
                f"{non_finite_hints({key.removeprefix('val_'): value for key, value in val_metrics.items()}, self.module, self.config.lr)}"
            )
        self._check_weights()
        self.epoch += 1
        is_best = val_loss < self.best_metric
        if is_best:
            self.best_metric = val_loss
        row = {
            "epoch": self.epoch,
            "step": self.step,
            **train_metrics,
            **val_metrics,
            "lr": self.optimizer.param_groups[0]["lr"],
            "kl_scale": self.last_kl_scale,
            "videos_per_s": totals[-1] / max(progress.seconds, 1e-9),
            "seconds": progress.seconds + validation_seconds,
        }
        self.progress = EpochProgress()
        if self.context.is_main:
            logger.info(format_row(row, self.config.epochs, is_best))
            # Before the checkpoints: a kill in between resumes from the previous last.pt, which drops this
            # row (RunLogger keeps rows up to the checkpoint's epoch), so every epoch keeps exactly one row.
            for callback in self.callbacks:
                callback.on_epoch_end(self, row, is_best)
        self.save_checkpoint(best=is_best)
        return row

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, plus :attr:`metadata` (:func:`training.trainer_state.trainer_checkpoint`).
        Collective under DDP."""
        return trainer_checkpoint(self)

    def load_state_dict(self, checkpoint: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore what :meth:`state_dict` saved (:func:`training.trainer_state.restore_trainer`)."""
        restore_trainer(self, checkpoint, source)

    def _check_weights(self) -> None:
        """Raise :class:`NonFiniteLossError` if a weight or buffer is NaN or infinite.

        The weights are the same on every rank, so under DDP every rank raises here or none does.
        """
        problem = non_finite_weights(self.module.state_dict())
        if problem is not None:
            raise NonFiniteLossError(
                f"non-finite weights after step {self.step}: {problem}; they were not saved, so "
                f"{self.kept()}. Hints: {non_finite_weights_hint(self.config.lr)}"
            )

    def save_checkpoint(self, best: bool) -> None:
        """Write ``best_model.pt`` when ``best``, then ``last.pt``, on rank 0, atomically.

        Raises:
            NonFiniteLossError: the weights (or buffers) are not all finite; nothing is written.
            OSError: a file cannot be written (e.g. a full disk); the previous file stays intact.
        """
        self._check_weights()
        state = self.state_dict()  # collective: every rank takes part
        if self.run_dir is None or not self.context.is_main:
            return
        if best:  # first: a kill before last.pt then leaves a newer best, never a lost one
            atomic_torch_save(state, self.run_dir / BEST)
        atomic_torch_save(state, self.run_dir / LAST)
        self.saved = (self.epoch, self.step, self.progress.batches)


def _output_values(output: Any) -> tuple[list[str], torch.Tensor]:
    """Metric names and a float32 vector: loss, reconstruction, then each KL term."""
    terms = dict(output.kl_terms)
    names = ["loss", "recon", *terms]
    tensors = [output.loss, output.recon_loss, *terms.values()]
    return names, torch.stack([tensor.detach().float() for tensor in tensors])
