"""What a run records as it goes: ``metrics.csv``, TensorBoard scalars and reconstructions
(:class:`RunLogger`), and the log on the console and in ``train.log`` (:func:`setup_logging`)."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import torch

from models.checkpoint import RunFiles
from training import distributed
from training.trainer import Trainer

logger = logging.getLogger("training")


class RunLogger:
    """Writes ``metrics.csv`` and TensorBoard scalars and reconstructions at the end of every epoch.

    Args:
        run_dir: the run folder.
        start_epoch: epochs already done (a resumed run drops later rows and TensorBoard events).
        preview: a few validation videos ``(N, T, 1, H, W)`` to reconstruct each epoch.
    """

    def __init__(self, run_dir: Path, start_epoch: int, preview: torch.Tensor) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where needed

        self.csv_path = run_dir / RunFiles.METRICS
        self.preview = preview
        # Rows past the checkpoint (only if a run wrote them and then lost its last.pt) would repeat epochs.
        self._truncate_csv(start_epoch)
        self.writer = SummaryWriter(str(run_dir / RunFiles.TENSORBOARD), purge_step=start_epoch + 1)

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


def setup_logging(context: distributed.DistributedContext, run_dir: Path | None) -> list[logging.Handler]:
    """Attach the run's log handlers to the ``training`` logger: on rank 0 progress to stdout, warnings and
    errors to stderr and everything to ``RUN_DIR/train.log``; on other ranks warnings and errors only.

    Returns:
        The handlers added (remove and close them when the run ends).
    """
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
            file_handler = _LogFile(run_dir / RunFiles.LOG)
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
