"""Evaluate one trained model from its checkpoint alone: metrics, figures and GIFs.

    python evaluate.py --checkpoint ./checkpoints/disentangled_vae/best_model.pt \\
        --device auto --num_samples 5 --save_dir ./eval_results

The command line over :func:`evaluation.pipeline.evaluate`: each option is a field of
:class:`evaluation.pipeline.EvalConfig` (defaults read from it). The model is rebuilt from the checkpoint,
the test set from the checkpoint's data config, and every output is named after the checkpoint's
experiment: ``NAME_metrics.json``, ``NAME_reconstructions.png`` and so on (``--help`` lists them). A
missing, corrupt or mismatched checkpoint, or a bad option, prints one line on stderr and exits with
status 2; an output that cannot be written (a full disk) with status 3, Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from data import DATASETS
from data.config import VIDEO_LAYOUTS
from evaluation.pipeline import OUTPUTS, EvalConfig, EvaluationError, evaluate, log, one_line, write_failure
from evaluation.reporting.figures import MAX_SWAP_VIDEOS
from models.checkpoint import CheckpointError
from models.disentangled_vae import REFINE_STEPS
from utils.cli import device_name, non_negative_int, positive_int

PROG = "evaluate.py"
DEFAULTS = EvalConfig()
EXIT_USAGE, EXIT_WRITE = 2, 3  # as python -m training.train


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
            "The JSON has the sections reconstruction, cost, disentanglement, generation (with the\n"
            "prior the samples were drawn from), prediction (10 -> 10 table: mse_per_frame, mae_per_frame,\n"
            "ssim, psnr; identity_kept_by_window, identity_kept_at_100), metadata and, with\n"
            "--standard-test-file, standard_test_file; non-finite values are written as NaN / Infinity.\n"
            "On videos without ground-truth factors (--video-file) the JSON has reconstruction, cost,\n"
            "pixel_generation (label-free pixel statistics) and not_available (every metric that needs\n"
            "factors, listed once with the reason) instead of disentanglement, generation and prediction.\n\n"
            "Example:\n  python evaluate.py --checkpoint ./checkpoints/disentangled_vae/best_model.pt "
            "--device auto --num_samples 5 --save_dir ./eval_results\n\n"
            "Exit status: 0 on success, 2 for a missing, corrupt or mismatched checkpoint or a bad option,\n"
            "3 when an output cannot be written (e.g. a full disk), 130 when interrupted."
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
        default=DEFAULTS.device,
        metavar="{auto,cuda,mps,cpu}",
        help="where to run; auto picks CUDA, then MPS, then the CPU (default: auto; cuda:N also works)",
    )
    parser.add_argument(
        "--num_samples",
        "--num-samples",
        dest="num_samples",
        type=positive_int,
        default=DEFAULTS.num_samples,
        metavar="N",
        help="test videos to reconstruct and samples to draw in the figures; the swap matrix uses the "
        f"first min(N, {MAX_SWAP_VIDEOS}) (default: {DEFAULTS.num_samples})",
    )
    parser.add_argument(
        "--save_dir",
        "--save-dir",
        dest="save_dir",
        default=DEFAULTS.save_dir,
        metavar="DIR",
        help=f"output folder, created if missing (default: {DEFAULTS.save_dir})",
    )
    parser.add_argument(
        "--test-size",
        type=positive_int,
        default=DEFAULTS.test_size,
        metavar="N",
        help=f"test videos for the metrics (the checkpoint's fixed test set; default: {DEFAULTS.test_size})",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULTS.batch_size, metavar="N",
        help=f"videos per batch (default: {DEFAULTS.batch_size})"
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULTS.seed,
        metavar="N",
        help="data seed (which test videos) and seed of the prior samples (default: the checkpoint's data seed)",
    )
    parser.add_argument(
        "--max-samples",
        type=positive_int,
        default=DEFAULTS.max_samples,
        metavar="N",
        help=f"test videos for the disentanglement metrics, at least 5 (default: {DEFAULTS.max_samples})",
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
        default=DEFAULTS.max_batches,
        metavar="N",
        help="stop the reconstruction metrics after N batches (default: the whole test set)",
    )
    parser.add_argument(
        "--interpolation-steps",
        type=int,
        default=DEFAULTS.interpolation_steps,
        metavar="N",
        help=f"points on each interpolation path, both ends included, >= 2 (default: {DEFAULTS.interpolation_steps})",
    )
    parser.add_argument(
        "--standard-test-file",
        default=DEFAULTS.standard_test_file,
        metavar="PATH",
        help="also compute reconstruction metrics on the standard mnist_test_seq.npy (64x64 models only)",
    )
    parser.add_argument(
        "--mnist-root",
        "--image-root",
        dest="mnist_root",
        default=DEFAULTS.mnist_root,
        metavar="DIR",
        help="folder of the dataset's idx files (MNIST or Fashion-MNIST), if the checkpoint's folder is not on "
        "this machine (default: the checkpoint's)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=DEFAULTS.dataset,
        help="which images move in the test videos (default: the checkpoint's; checkpoints older than the "
        "option are mnist)",
    )
    parser.add_argument(
        "--video-file",
        default=DEFAULTS.video_file,
        metavar="PATH",
        help="evaluate on a .npy/.npz array of videos instead (layouts (T, N, H, W) as mnist_test_seq.npy, "
        "(N, T, H, W), (N, T, C, H, W)); the checkpoint's own file keeps its held-out test split, another "
        "file gives --test-size videos of a seeded permutation. No ground-truth factors: the metrics that "
        "need them are listed as not available (default: the checkpoint's, if it was trained on one)",
    )
    parser.add_argument(
        "--video-layout",
        choices=VIDEO_LAYOUTS,
        default=DEFAULTS.video_layout,
        help="the layout of --video-file when it cannot be inferred (default: inferred, and logged)",
    )
    parser.add_argument(
        "--name", default=DEFAULTS.name, help="prefix of the output files (default: the checkpoint's experiment name)"
    )
    parser.add_argument(
        "--prediction-samples", type=non_negative_int, default=DEFAULTS.prediction_samples, metavar="N",
        help="stochastic predictions per test video for the 10 -> 10 best-of-N scores (by SSIM); 0 scores the "
        f"deterministic prediction only (default: {DEFAULTS.prediction_samples})")
    parser.add_argument(
        "--prediction-videos", type=non_negative_int, default=DEFAULTS.prediction_videos, metavar="N",
        help="generator test videos predicted to the long horizon and read by the judges per window of 10 "
        f"frames; 0 skips the long horizon (default: {DEFAULTS.prediction_videos})")
    parser.add_argument(
        "--prediction-horizon", type=positive_int, default=DEFAULTS.prediction_horizon, metavar="N",
        help=f"the long horizon's last frame: 10 observed, the rest predicted (default: {DEFAULTS.prediction_horizon})")
    parser.add_argument(
        "--prediction-refine-steps", type=non_negative_int, default=DEFAULTS.prediction_refine_steps, metavar="N",
        help="steps of 0.5 px by which the object models refine the observed objects' positions on the observed "
        "frames before predicting (0: predict from the encoder's positions; no effect on models without object "
        f"positions, which is logged; default: the model's, {REFINE_STEPS})")
    parser.add_argument("--fps", type=float, default=DEFAULTS.fps,
                        help=f"frames per second of the GIFs (default: {DEFAULTS.fps:g})")
    return parser


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of parsed options (raises :class:`EvaluationError` for a bad value)."""
    fields = {field.name for field in dataclasses.fields(EvalConfig)} - {"judges"}  # --no-judges inverts it
    return EvalConfig(judges=not args.no_judges, **{name: getattr(args, name) for name in fields})


def main(argv: list[str] | None = None) -> int:
    """Run an evaluation; returns the exit status (0, 2 for bad inputs, 3 for an output that cannot be written,
    130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, message already printed)
        return stop.code if isinstance(stop.code, int) else 2
    start = time.perf_counter()
    try:
        result = evaluate(args.checkpoint, config_from_args(args), command=" ".join([PROG, *argv]))
    except (EvaluationError, FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a full disk, a folder made read-only: every file written so far is whole
        print(f"{PROG}: error: {write_failure(error, args.save_dir)}", file=sys.stderr)
        return EXIT_WRITE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every file in {args.save_dir} is whole (each is written to a temporary file "
              "and renamed)", file=sys.stderr)
        return 130
    log(f"finished in {time.perf_counter() - start:.1f} s; wrote {len(result.written)} files:")
    for path in result.written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
