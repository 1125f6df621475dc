"""Training throughput of each model: ms per step, videos/s, FLOPs, model FLOPs utilisation, peak memory.

Each model runs in its own process (so its memory peak is its own) through the real training step
(``training.trainer.Trainer.train_step``: forward, loss, finiteness checks, backward, gradient norm,
Adam). FLOPs per step are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one forward
and backward; model FLOPs utilisation (MFU) is the achieved FLOP/s over this machine's dense
matrix-multiply peak, measured in the same run (a large ``mm`` in the step's precision). The data column
is the time to generate one batch of videos on the training device, as a share of a step.

With two or more ``--architectures``, the step ratio of the first to each other one is measured a second
time in one process, the architectures' steps taken in turn round after round: a machine whose speed drifts
between the separate processes (a shared or virtual CPU can move the ratio by a tenth from run to run) slows
each architecture alike there, so that ratio is the one to quote.

    python -m benchmarks.bench_train [--models baseline lstm disentangled] [--device auto]
        [--batch-size 32] [--frames 20] [--image-size 64] [--width N] [--steps 6] [--amp] [--threads N]
        [--architectures keypoints slots]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from queue import Empty
from typing import Any

import torch

from benchmarks.common import checked_device, format_table, time_call
from models import MODELS
from models.disentangled_vae import ARCHITECTURES
from utils.cli import device_name, positive_int
from utils.devices import resolve_device, synchronize


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a dense ``size x size`` matrix product in ``dtype``: the practical peak of ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = time_call(lambda: a @ b, repeats=repeats, warmup=3, sync=lambda: synchronize(device))
    return 2 * size**3 / seconds


def _trainer(name: str, architecture: str | None, args: argparse.Namespace) -> tuple[Any, Any, dict, Any, torch.device]:
    """The model (the Disentangled VAE with ``architecture`` when given) at its defaults, its trainer, one batch,
    the dataset and the device."""
    from data import DataConfig, MovingMNIST, MovingMNISTConfig
    from models import build_model
    from training.config import TrainConfig
    from training.linking import link_configs
    from training.optimizer import make_optimizer
    from training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    video_config = MovingMNISTConfig(image_size=args.image_size, num_frames=args.frames)
    dataset = MovingMNIST("train", args.batch_size * 100, video_config, seed=0)
    batch = dataset.generate(range(args.batch_size))
    overrides = {"width": args.width} if args.width else {}
    if architecture is not None:
        overrides["architecture"] = architecture
    model_config, _ = link_configs(name, overrides, DataConfig(video=video_config), given=overrides)
    model = build_model(name, model_config).to(device)
    config = TrainConfig(experiment_name="bench", model=name, batch_size=args.batch_size, amp=args.amp,
                         device=str(device))
    trainer = Trainer(model, make_optimizer(model, config), [batch], [], config, device)
    return model, trainer, batch, dataset, device


def _measure(name: str, architecture: str | None, args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    """Child process: build one model at its defaults (the Disentangled VAE with ``architecture`` when given)
    and time its training step."""
    from torch.utils.flop_counter import FlopCounterMode

    model, trainer, batch, dataset, device = _trainer(name, architecture, args)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    step_seconds = time_call(lambda: trainer.train_step(batch), repeats=args.steps, warmup=2,
                             sync=lambda: synchronize(device))
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux: the process's peak minus its peak before the first step
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024

    video = batch["video"].to(device)
    with FlopCounterMode(display=False) as counter, trainer._autocast():
        model(video).loss.backward()
    flops = counter.get_total_flops()
    precision = trainer.autocast_dtype
    peak = matmul_peak(device, precision or torch.float32)

    counter_start = iter(range(1, 10**6))

    def generate() -> None:
        start = next(counter_start) * args.batch_size
        dataset.generate(range(start, start + args.batch_size), device=device)

    data_seconds = time_call(generate, repeats=10, warmup=2, sync=lambda: synchronize(device))
    queue.put({
        "model": name if architecture is None else f"{name} ({architecture})",
        "precision": str(precision or torch.float32).removeprefix("torch."),
        "ms/step": step_seconds * 1e3,
        "videos/s": args.batch_size / step_seconds,
        "GFLOP/step": flops / 1e9,
        "GFLOP/s": flops / step_seconds / 1e9,
        "peak GFLOP/s": peak / 1e9,
        "MFU": f"{flops / step_seconds / peak:.0%}",
        "peak MB": peak_mb,
        "data share": f"{data_seconds / step_seconds:.1%}",
    })


def _interleaved(architectures: list[str], args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    """Child process: the Disentangled VAE once per architecture, their training steps taken in turn for
    ``max(args.steps, 10)`` rounds after two warm-up rounds; sends each one's median ms per step."""
    runs = [_trainer("disentangled", architecture, args) for architecture in architectures]
    seconds: list[list[float]] = [[] for _ in runs]
    for round_index in range(2 + max(args.steps, 10)):
        for times, (_, trainer, batch, _, device) in zip(seconds, runs, strict=True):
            started = time.perf_counter()
            trainer.train_step(batch)
            synchronize(device)
            if round_index >= 2:
                times.append(time.perf_counter() - started)
    queue.put({architecture: statistics.median(times) * 1e3 for architecture, times in zip(architectures, seconds,
                                                                                             strict=True)})


def interleaved_ratios(args: argparse.Namespace) -> dict[str, float]:
    """Median ms per step of each ``--architectures`` entry, measured in turn in one fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_interleaved, args=(args.architectures, args, queue))
    process.start()
    medians = _result(queue, process, "the architectures in turn")
    process.join()
    return medians


def measured_runs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(model, architecture)`` per row: the Disentangled VAE once per ``--architectures`` entry (``None``: its
    default), every other model once."""
    return [(name, architecture) for name in args.models
            for architecture in (args.architectures if name == "disentangled" and args.architectures else [None])]


def run(args: argparse.Namespace) -> list[dict]:
    """One row per model (and Disentangled VAE architecture), each measured in a fresh process."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for name, architecture in measured_runs(args):
        queue = context.Queue()
        process = context.Process(target=_measure, args=(name, architecture, args, queue))
        started = time.perf_counter()
        process.start()
        row = _result(queue, process, name)
        process.join()
        row["wall s"] = time.perf_counter() - started
        rows.append(row)
    return rows


def _result(queue: Any, process: Any, name: str) -> dict:
    """The row the measuring process sends; an error (not a hang) if it dies without sending one."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except Empty:
            if not process.is_alive() and queue.empty():
                raise RuntimeError(
                    f"measuring {name} failed in its process (exit status {process.exitcode}); "
                    "its traceback is printed above"
                ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to measure (default: all)")
    parser.add_argument("--device", type=device_name, default="auto", help="device (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="videos per step (default: 32)")
    parser.add_argument("--frames", type=positive_int, default=20, help="frames per video (default: 20)")
    parser.add_argument("--image-size", type=positive_int, default=64, help="frame side (default: 64)")
    parser.add_argument("--width", type=positive_int, default=None, help="base channels (default: the model's)")
    parser.add_argument("--steps", type=positive_int, default=6, help="timed steps; the median is reported")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast, as training's --amp")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--architectures", nargs="+", choices=list(ARCHITECTURES), default=None,
                        help="the Disentangled VAE once per architecture, e.g. keypoints slots: the step ratio of the "
                        "first to each other one is printed (default: its default architecture only)")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = checked_device(parser, args.device)
    rows = run(args)
    print(f"Training step at model defaults{f' but width {args.width}' if args.width else ''}, batch {args.batch_size}, "
          f"{args.frames} frames of "
          f"{args.image_size}x{args.image_size}, device {device}, "
          f"{torch.get_num_threads() if args.threads is None else args.threads} threads")
    print(format_table(rows))
    mean_step = statistics.mean(row["ms/step"] for row in rows)
    print(f"mean step {mean_step:.0f} ms")
    variants = [row for row in rows if row["model"].startswith("disentangled (")]
    for other in variants[1:]:
        print(f"step ratio {variants[0]['model']} / {other['model']}: {variants[0]['ms/step'] / other['ms/step']:.2f}"
              " (separate processes)")
    if len(variants) > 1:
        medians = interleaved_ratios(args)
        first, *others = args.architectures
        for other in others:
            print(f"step ratio disentangled ({first}) / disentangled ({other}): {medians[first] / medians[other]:.2f} "
                  f"(in turn in one process, {max(args.steps, 10)} rounds: {medians[first]:.1f} / "
                  f"{medians[other]:.1f} ms)")
    return rows


if __name__ == "__main__":
    main()
