"""Evaluate one trained model from its checkpoint alone: metrics, figures and GIFs.

    python evaluate.py --checkpoint ./checkpoints/disentangled_vae/best_model.pt \\
        --device auto --num_samples 5 --save_dir ./eval_results

The model is rebuilt from the checkpoint (``models.checkpoint.load_model``), the test set from the
checkpoint's data config (the same fixed test videos training never saw), and every output is named after
the checkpoint's experiment: ``NAME_metrics.json``, ``NAME_reconstructions.png`` and so on (``--help``
lists them). A missing, corrupt or mismatched checkpoint, or a bad option, prints one line on stderr and
exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import platform
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import PIL
import torch

from data import DataConfig, get_standard_test_loader
from evaluation.disentanglement import compute_all_disentanglement_metrics
from evaluation.figures import MAX_SWAP_VIDEOS, make_figures
from evaluation.judges import get_judges
from evaluation.metric_names import RECONSTRUCTION_OUTPUT_KEYS
from evaluation.metrics import compare_models, reconstruction_metrics
from evaluation.runs import checkpoint_data_config, test_loader
from models.checkpoint import CheckpointError, library_versions, load_model
from utils.atomic import atomic_write_json
from utils.cli import device_name, non_negative_int, positive_int
from utils.devices import resolve_device
from utils.provenance import collect as provenance

PROG = "evaluate.py"
STANDARD_IMAGE_SIZE = 64  # mnist_test_seq.npy has 64x64 frames

OUTPUTS = (
    ("metrics.json", "reconstruction metrics, cost, disentanglement metrics and metadata"),
    ("reconstructions.png", "test videos (truth) above their reconstructions, one frame per column"),
    ("samples.png", "random videos from the prior (seeded)"),
    ("interpolation.png", "latent interpolation between two test videos: content, then motion"),
    ("interpolation.gif", "the interpolation, animated: content row above motion row"),
    ("content_swap.png", "swap matrix: content from the row, motion from the column"),
    ("motion_swap.png", "swaps frame by frame, both directions, for pairs of test videos"),
    ("reconstructions.gif", "animated truth (top row) and reconstructions (bottom row)"),
    ("samples.gif", "animated samples"),
    ("swaps.gif", "the animated swap matrix"),
)


class EvaluationError(Exception):
    """A problem with the inputs of an evaluation, reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")





def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``--help`` documents every option and every output file)."""
    outputs = "\n".join(f"  NAME_{suffix:<22}{what}" for suffix, what in OUTPUTS)
    parser = _Parser(
        prog=PROG,
        description=(
            "Evaluate a trained video VAE from its checkpoint alone: reconstruction metrics, cost,\n"
            "content/motion disentanglement metrics, figures and GIFs, on the fixed test set of the\n"
            "checkpoint's data config."
        ),
        epilog=(
            f"Files written to SAVE_DIR (NAME = the checkpoint's experiment name):\n{outputs}\n"
            "Each .png also as .pdf; each .gif also as .mp4 where imageio-ffmpeg is installed.\n"
            "The JSON has the sections reconstruction, cost, disentanglement, metadata and, with\n"
            "--standard-test-file, standard_test_file; non-finite values are written as NaN / Infinity.\n\n"
            "Example:\n  python evaluate.py --checkpoint ./checkpoints/disentangled_vae/best_model.pt "
            "--device auto --num_samples 5 --save_dir ./eval_results\n\n"
            "Exit status: 0 on success, 2 for a missing, corrupt or mismatched checkpoint or a bad option."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="checkpoint file, e.g. checkpoints/NAME/best_model.pt",
    )
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        metavar="{auto,cuda,mps,cpu}",
        help="where to run; auto picks CUDA, then MPS, then the CPU (default: auto; cuda:N also works)",
    )
    parser.add_argument(
        "--num_samples",
        "--num-samples",
        dest="num_samples",
        type=positive_int,
        default=5,
        metavar="N",
        help="test videos to reconstruct and samples to draw in the figures; the swap matrix uses the "
        f"first min(N, {MAX_SWAP_VIDEOS}) (default: 5)",
    )
    parser.add_argument(
        "--save_dir",
        "--save-dir",
        dest="save_dir",
        default="./eval_results",
        metavar="DIR",
        help="output folder, created if missing (default: ./eval_results)",
    )
    parser.add_argument(
        "--test-size",
        type=positive_int,
        default=1000,
        metavar="N",
        help="test videos for the metrics (the checkpoint's fixed test set; default: 1000)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, metavar="N", help="videos per batch (default: 32)"
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="data seed (which test videos) and seed of the prior samples (default: the checkpoint's data seed)",
    )
    parser.add_argument(
        "--max-samples",
        type=positive_int,
        default=1000,
        metavar="N",
        help="test videos for the disentanglement metrics, at least 5 (default: 1000)",
    )
    parser.add_argument(
        "--no-judges",
        action="store_true",
        help="skip the judged disentanglement metrics (the judges are classifiers trained once per data "
        "config and cached; the first run trains them, which is slow)",
    )
    parser.add_argument(
        "--max-batches",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop the reconstruction metrics after N batches (default: the whole test set)",
    )
    parser.add_argument(
        "--interpolation-steps",
        type=int,
        default=7,
        metavar="N",
        help="points on each interpolation path, both ends included, >= 2 (default: 7)",
    )
    parser.add_argument(
        "--standard-test-file",
        default=None,
        metavar="PATH",
        help="also compute reconstruction metrics on the standard mnist_test_seq.npy (64x64 models only)",
    )
    parser.add_argument(
        "--mnist-root",
        default=None,
        metavar="DIR",
        help="folder of the official MNIST files, if the checkpoint's folder is not on this machine "
        "(default: the checkpoint's)",
    )
    parser.add_argument(
        "--name", default=None, help="prefix of the output files (default: the checkpoint's experiment name)"
    )
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second of the GIFs (default: 8)")
    return parser


def log(message: str) -> None:
    print(f"[evaluate] {message}", flush=True)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__


def to_jsonable(value: Any) -> Any:
    """Plain JSON types; non-finite floats stay floats (``json`` writes ``NaN`` / ``Infinity``)."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return cleaned or "model"


# ----------------------------------------------------------------------------------------------------
# Set-up: everything that can fail because of the inputs, before any long computation


@dataclasses.dataclass
class Setup:
    args: argparse.Namespace
    device: torch.device
    model: torch.nn.Module
    checkpoint: dict[str, Any]
    name: str
    data_config: DataConfig
    test_loader: Any
    standard_loader: Any
    standard_skip: str | None
    save_dir: Path
    judge_accuracy: dict[str, Any] | None = None


def effective_data_config(checkpoint: Mapping[str, Any], model: torch.nn.Module, args: Any) -> DataConfig:
    """The checkpoint's data config with this evaluation's test size, seed and MNIST folder."""
    ignored = DataConfig.unknown_keys(checkpoint)
    if ignored:
        log(f"note: ignoring data config keys this version does not know: {ignored}")
    return checkpoint_data_config(checkpoint, model, test_size=args.test_size, seed=args.seed,
                                  mnist_root=args.mnist_root)


def prepare(args: argparse.Namespace) -> Setup:
    """Check the options, load the model and build the loaders.

    Raises:
        EvaluationError, FileNotFoundError, CheckpointError, ValueError: with a one-line message.
    """
    if args.interpolation_steps < 2:
        raise EvaluationError(f"--interpolation-steps must be at least 2, got {args.interpolation_steps}")
    if args.max_samples < 5:
        raise EvaluationError(
            f"--max-samples must be at least 5 (the disentanglement probes need them), got {args.max_samples}"
        )
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise EvaluationError(f"--fps must be a positive number, got {args.fps}")
    device = resolve_device(args.device)

    log(f"loading {args.checkpoint} on {device}")
    try:
        model, checkpoint = load_model(args.checkpoint, device)
    except (RuntimeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"cannot load {args.checkpoint}: {_one_line(error)}") from error
    name = _safe_name(
        args.name or checkpoint.get("experiment_name") or Path(args.checkpoint).resolve().parent.name
    )
    data_config = effective_data_config(checkpoint, model, args)
    try:
        loader = test_loader(data_config, args.batch_size)
    except FileNotFoundError as error:
        raise EvaluationError(
            f"{_one_line(error)} (the checkpoint's mnist_root; override with --mnist-root)"
        ) from error

    standard_loader, standard_skip = None, None
    if args.standard_test_file is not None:
        standard_loader = get_standard_test_loader(args.standard_test_file, args.batch_size)
        frame_size = standard_loader.dataset.array.shape[-1]
        if model.config.image_size != STANDARD_IMAGE_SIZE or frame_size != model.config.image_size:
            standard_skip = (
                f"the model takes {model.config.image_size}x{model.config.image_size} frames; "
                f"{args.standard_test_file} has {frame_size}x{frame_size} frames (the standard file is "
                f"{STANDARD_IMAGE_SIZE}x{STANDARD_IMAGE_SIZE})"
            )
            standard_loader = None

    save_dir = Path(args.save_dir)
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"cannot create the output folder {save_dir}: {_one_line(error)}") from error
    return Setup(
        args,
        device,
        model,
        checkpoint,
        name,
        data_config,
        loader,
        standard_loader,
        standard_skip,
        save_dir,
    )


# ----------------------------------------------------------------------------------------------------
# Metrics


def _timed(what: str, function: Callable[[], Any]) -> Any:
    log(f"{what} ...")
    start = time.perf_counter()
    result = function()
    log(f"{what}: done in {time.perf_counter() - start:.1f} s")
    return result


def compute_metrics(setup: Setup) -> dict[str, Any]:
    """Reconstruction metrics, cost, disentanglement metrics and (optionally) the standard test file."""
    args, device, model = setup.args, setup.device, setup.model
    progress = sys.stderr.isatty()
    # compare_models runs reconstruction_metrics over the loader and adds the cost; one pass gives both.
    compared = _timed(
        "reconstruction metrics and cost",
        lambda: compare_models(
            {setup.name: model}, setup.test_loader, device, max_batches=args.max_batches, progress=progress
        )[setup.name],
    )
    reconstruction = {key: compared[key] for key in RECONSTRUCTION_OUTPUT_KEYS if key in compared}
    cost = {key: value for key, value in compared.items() if key not in reconstruction}
    log(
        "  mse {mse:.6f}  psnr {psnr:.2f} dB  ssim {ssim:.4f}  temporal consistency "
        "{temporal_consistency:.6f}  ({num_videos} videos)".format(**reconstruction)
    )
    log(
        f"  {cost['trainable_parameters']:,} trainable parameters, forward {cost['forward_time_ms']:.1f} ms, "
        f"generation {cost['generation_time_ms']:.1f} ms (batch of {cost.get('timed_batch_size', '?')})"
    )

    judges = None
    if not args.no_judges:
        # Built here rather than with judges="auto" so that they read the checkpoint's digit source.
        judges = _timed(
            "judges (cached per data config; the first run for a data config trains them, which is slow)",
            lambda: get_judges(
                setup.test_loader.dataset.config,
                device,
                digits=setup.test_loader.dataset.digits,
                progress=progress,
            ),
        )
        setup.judge_accuracy = dict(getattr(judges, "accuracy", {}) or {})
    disentanglement = _timed(
        "disentanglement metrics" + (" (no judges: the judged metrics are NaN)" if judges is None else ""),
        lambda: compute_all_disentanglement_metrics(
            model, setup.test_loader, device, max_samples=args.max_samples, judges=judges
        ),
    )
    metrics = {"reconstruction": reconstruction, "cost": cost, "disentanglement": disentanglement}

    if args.standard_test_file is not None:
        if setup.standard_loader is None:
            log(f"skipping the standard test file: {setup.standard_skip}")
            metrics["standard_test_file"] = {"path": args.standard_test_file, "skipped": setup.standard_skip}
        else:
            standard = _timed(
                f"reconstruction metrics on {args.standard_test_file}",
                lambda: reconstruction_metrics(
                    model, setup.standard_loader, device, max_batches=args.max_batches, progress=progress
                ),
            )
            metrics["standard_test_file"] = {"path": str(args.standard_test_file), **standard}
    return metrics


def metadata(setup: Setup, argv: list[str]) -> dict[str, Any]:
    checkpoint, args = setup.checkpoint, setup.args
    versions = {
        **library_versions(),
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }
    return {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "experiment_name": checkpoint.get("experiment_name"),
        "model_name": checkpoint["model_name"],
        "epoch": checkpoint.get("epoch"),
        "step": checkpoint.get("step"),
        "best_metric": checkpoint.get("best_metric"),
        "model_config": checkpoint.get("model_config"),
        "train_config": checkpoint.get("train_config"),
        "data_config": checkpoint.get("data_config"),
        "evaluation_data_config": setup.data_config.to_dict(),
        "evaluation": {
            "test_size": setup.data_config.test_size,
            "seed": setup.data_config.seed,
            "batch_size": args.batch_size,
            "max_batches": args.max_batches,
            "max_samples": args.max_samples,
            "judges": not args.no_judges,
            "num_samples": args.num_samples,
            "interpolation_steps": args.interpolation_steps,
        },
        "device": str(setup.device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([PROG, *argv]),
        "versions": versions,
        "checkpoint_versions": checkpoint.get("versions"),
        "judges": setup.judge_accuracy,
        # commit (and dirty tree), the process's exact command line, package versions, CPU and GPU
        "provenance": provenance(),
    }


# ----------------------------------------------------------------------------------------------------
# Entry point


def main(argv: list[str] | None = None) -> int:
    """Run an evaluation; returns the exit status (0, or 2 for bad inputs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, message already printed)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        setup = prepare(args)
    except (EvaluationError, FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    checkpoint = setup.checkpoint
    config = setup.data_config
    log(
        f"model {checkpoint['model_name']!r} of experiment {setup.name!r}, epoch {checkpoint.get('epoch', '?')}; "
        f"test set: {config.test_size} videos of {config.video.num_frames} frames, {config.video.image_size}x"
        f"{config.video.image_size}, seed {config.seed}"
    )
    start = time.perf_counter()
    try:
        results = compute_metrics(setup)
        metrics_path = setup.save_dir / f"{setup.name}_metrics.json"
        document = {
            "experiment_name": setup.name,
            "model_name": checkpoint["model_name"],
            **results,
            "metadata": metadata(setup, argv),
        }
        atomic_write_json(metrics_path, to_jsonable(document))  # never a half-written JSON
        args = setup.args
        figures = make_figures(
            setup.model, setup.test_loader, setup.save_dir, setup.name, device=setup.device,
            num_samples=args.num_samples, batch_size=args.batch_size,
            interpolation_steps=args.interpolation_steps, fps=args.fps, seed=config.seed, log=log,
        )
        written = [metrics_path, *figures]
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    log(f"finished in {time.perf_counter() - start:.1f} s; wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
