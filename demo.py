"""The whole experiment in one command: train the three models, evaluate them, write the comparison report.

    python demo.py [options]            # what `make demo` runs (`make demo ARGS="--seeds 3"`)

On the embedded MNIST digits, it trains the Baseline VAE, the LSTM-VAE and the Disentangled VAE (its default,
the learned localiser) for a fixed number of optimizer steps each (``--steps-per-model``: the same models on
any machine), and the Disentangled VAE a second time with the hand tracker (``architecture="slots"``, run
``disentangled_vae_slots``; ``--no-hand-tracker`` skips it), evaluates each as ``evaluate.py`` does (reconstruction,
disentanglement, judged swaps, figures, GIFs), and writes ``results/report.md`` and ``results/report.html``
with the tables, the design document's hypotheses against the measurements, and the figures. Longer runs
pass options through, e.g. full runs on a GPU::

    python demo.py --device cuda --steps-per-model 0 --epochs 100 --train-size 10000 --width 32 --frames 20

Runs are saved as ``checkpoints/baseline_vae`` etc. (``..._seed43`` for further seeds). A run folder that
already holds a run whose model, training and data configs are exactly those this command would train with
is reused, not retrained, when its training finished (so re-running the demo only redoes the evaluation),
and continued from its ``last.pt`` when it did not (a Ctrl-C or a ``--minutes-per-model`` stop); a run
with other settings stops the demo, before any work, with one line naming the differing settings.
``--retrain`` starts those runs over; another ``--checkpoint-dir`` keeps them.

Exit status: 0 done; 1 a training run failed (non-finite loss) or ended without a checkpoint to evaluate;
2 a bad option or a run folder that cannot be used (as ``python -m training.train``); 3 an output that cannot be written (e.g. a full disk);
130 / 143 interrupted (SIGINT / SIGTERM). Every checkpoint and output file is written atomically, so an
interrupted demo leaves whole files, and running the same command again continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from data import DATASETS, DataConfig, MovingMNISTConfig, data_loaders
from data.config import VIDEO_LAYOUTS
from evaluation.judges.cache import get_judges
from evaluation.pipeline import EvalConfig, EvaluationError, evaluate, evaluation_name
from evaluation.reporting import report as reports
from evaluation.reporting.comparison import comparison_figures, write_report
from evaluation.reporting.writer import markdown_table
from evaluation.trained_runs import config_differences, test_loader
from models import MODELS
from models.checkpoint import BEST, LAST, CheckpointError, RunFiles, RunRecord, load_checkpoint
from training.cli import given_options
from training.config import ConfigError, TrainConfig, model_fields
from training.fit_prior import fit_run_priors, stale_prior
from training.options import make_configs
from training.run_folder.lock import RunFolderBusy, RunLock
from training.run_folder.prepare import ResumePoint, lock_existing_run_folder, resume_point
from training.train import TRAINING_ERRORS, RunWriteError, TrainingInterrupted, train
from training.trainer import NonFiniteLossError
from utils.cli import device_name, given_values, non_negative_int, number, positive_int
from utils.curves import plot_training_curves
from utils.devices import bf16_supported, resolve_device
from utils.stages import StageTimes

PROG = "demo.py"
EXIT_FAILED, EXIT_USAGE, EXIT_WRITE, EXIT_INTERRUPTED = 1, 2, 3, 130
# Options of python -m training.train that the demo sets itself, for every run: --train-args may not move them.
DEMO_OWNED_OPTIONS = {"checkpoint_dir": "--checkpoint-dir", "device": "--device", "video_file": "--video-file",
                      "video_layout": "--video-layout"}
CONTINUE = "run the same demo.py command again to continue"  # the demo continues an unfinished run itself
# Training failures that the run logs itself, with what last.pt holds (the demo adds no second line).
LOGGED_TRAINING_ERRORS = (NonFiniteLossError, RunWriteError, TrainingInterrupted)
RUN_NAMES = {name: f"{name}_vae" for name in MODELS}  # the design document's checkpoints/NAME folders
# The Disentangled VAE with the hand tracker (architecture="slots", the default before the learned localiser),
# trained beside the learned default so that the report shows how close the learned split comes to the
# hand-coded one; --no-hand-tracker skips it.
HAND_TRACKER_RUN = "disentangled_vae_slots"
HAND_TRACKER_OPTIONS = ("architecture=slots",)
HAND_TRACKER_LABEL = "Disentangled VAE (hand tracker)"
# The option that skipped the learned localiser's run when it was the fourth: refused, saying what to pass now.
NO_LEARNED_LOCALISER = ("--no-learned-localiser: the learned localiser is now the default Disentangled VAE; use "
                        "--no-hand-tracker to skip the hand-tracker run")
DEFAULT_STEPS = 512  # about 25 min for the whole demo on a 2-core AVX2 CPU (docs/results.md, benchmarks/NOTES.md)


class RefusedOption(argparse.Action):
    """An option that no longer exists: one line saying what to pass instead, exit status 2 (a usage error)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {NO_LEARNED_LOCALISER}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    budget = parser.add_argument_group("budget")
    budget.add_argument("--steps-per-model", type=non_negative_int, default=DEFAULT_STEPS, metavar="N",
                        help="optimizer steps of each model: the same training on any machine; a multiple of "
                        "the steps per epoch (--train-size / --batch-size); 0 trains --epochs epochs instead "
                        "(default: %(default)s)")
    budget.add_argument("--minutes-per-model", type=number(0.0, inclusive=True), default=0.0, metavar="M",
                        help="also stop each model after M minutes of training (then machines differ in "
                        "steps); 0 means no wall-clock budget (default: %(default)s)")
    budget.add_argument("--epochs", type=positive_int, default=100, metavar="N",
                        help="epochs per model when --steps-per-model is 0; with a step budget it has no "
                        "effect (a note says so) (default: 100)")
    budget.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                        help="train and evaluate every model with N seeds (42, 43, ...) and report mean ± std "
                        "(default: 1)")
    shape = parser.add_argument_group("models and data (the defaults are the CPU-sized choice)")
    shape.add_argument("--train-size", type=positive_int, default=2048, metavar="N",
                       help="fresh training videos per epoch (default: %(default)s)")
    shape.add_argument("--val-size", type=positive_int, default=256, metavar="N",
                       help="validation videos (default: %(default)s)")
    shape.add_argument("--frames", type=positive_int, default=10, metavar="N",
                       help="frames per video (default: %(default)s; the design document uses 20)")
    shape.add_argument("--image-size", type=positive_int, default=64, metavar="N",
                       help="frame side (default: %(default)s)")
    shape.add_argument("--digits", type=positive_int, default=2, metavar="N",
                       help="digits per video; the Disentangled VAE gets one slot per digit (default: %(default)s)")
    shape.add_argument("--dataset", choices=DATASETS, default="mnist",
                       help="which images move: mnist digits, or fashion (Fashion-MNIST idx files: `apt-get install "
                       "dataset-fashion-mnist`, or --image-root DIR) (default: %(default)s)")
    shape.add_argument("--image-root", "--mnist-root", dest="mnist_root", default=None, metavar="DIR",
                       help="folder of the dataset's idx files (default: the embedded MNIST digits; for fashion "
                       "/usr/share/datasets/fashion-mnist)")
    shape.add_argument("--video-file", default=None, metavar="PATH",
                       help="train and evaluate on the videos of a .npy/.npz array instead (layouts (T, N, H, W) "
                       "as mnist_test_seq.npy, (N, T, H, W), (N, T, C, H, W)); frames, image size and the 80/10/10 "
                       "seeded split follow the file; no judges: the metrics that need ground-truth factors are "
                       "listed as not available")
    shape.add_argument("--video-layout", choices=VIDEO_LAYOUTS, default=None,
                       help="the layout of --video-file when it cannot be inferred (default: inferred, and logged)")
    shape.add_argument("--width", type=positive_int, default=16, metavar="N",
                       help="base channels of every model's conv encoder/decoder (default: %(default)s; the "
                       "models' own default is 32)")
    shape.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                       help="videos per step (default: %(default)s)")
    shape.add_argument("--lstm-hidden", type=positive_int, default=128, metavar="N",
                       help="hidden size of every LSTM (posterior and prior) of the LSTM-VAE and the Disentangled "
                       "VAE (default: %(default)s; the report's cost table gives each model's parameter count)")
    shape.add_argument("--lr", type=number(0.0, inclusive=False), default=1e-3, metavar="FLOAT",
                       help="Adam learning rate (default: %(default)s: higher than training's 1e-4 default, "
                       "for a short budget)")
    shape.add_argument("--beta", type=number(0.0, inclusive=True), default=1.0, metavar="FLOAT",
                       help="KL weight (default: %(default)s, the plain ELBO: with the design document's 4.0 "
                       "the models are still drawing blobs, not digits, at the end of a CPU-sized budget)")
    shape.add_argument("--kl-warmup-epochs", type=number(0.0, inclusive=True), default=4.0, metavar="N",
                       help="epochs over which the KL weight grows linearly from 0 to --beta (default: %(default)s, "
                       "half of the default budget: the reconstructions learn faster, benchmarks/NOTES.md)")
    shape.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                       help="bf16 autocast: auto uses it where the device computes bf16 natively "
                       "(default: %(default)s)")
    shape.add_argument("--train-args", default="", metavar="'ARGS'",
                       help="further options for python -m training.train, e.g. \"--grad-clip 1\"; they replace "
                       "the demo's own (a note names each one that changes the step budget), a --model-option goes "
                       "to the models that have its field (a note names them), and the judges "
                       "are trained for the data they give")
    shape.add_argument("--no-hand-tracker", action="store_true",
                       help="skip the fourth run: the Disentangled VAE with the hand tracker (architecture=slots, "
                       "checkpoints/disentangled_vae_slots), trained beside the default learned localiser; also "
                       "skipped when --train-args chooses an architecture")
    shape.add_argument("--no-learned-localiser", nargs=0, action=RefusedOption, help=argparse.SUPPRESS)
    where = parser.add_argument_group("where")
    where.add_argument("--device", type=device_name, default="auto",
                       help="auto picks CUDA, then MPS, then the CPU (default: auto)")
    where.add_argument("--checkpoint-dir", default="checkpoints", metavar="DIR",
                       help="parent of the run folders (default: %(default)s)")
    where.add_argument("--out", default="results", metavar="DIR",
                       help="where the report, tables, figures and evaluation files go (default: %(default)s)")
    where.add_argument("--retrain", action="store_true",
                       help="start existing runs over (deletes their checkpoints) instead of reusing them")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--test-size", type=positive_int, default=500, metavar="N",
                            help="test videos evaluated per model (default: %(default)s)")
    evaluation.add_argument("--num-samples", type=positive_int, default=5, metavar="N",
                            help="videos shown in each figure (default: %(default)s)")
    evaluation.add_argument("--no-judges", action="store_true",
                            help="skip the judges (no judged swap metrics; saves their one-off training)")
    evaluation.add_argument("--prediction-videos", type=non_negative_int, default=100, metavar="N",
                            help="test videos each model predicts from 10 frames to --prediction-horizon, read by "
                            "the judges per window of 10 frames; 0 skips the long horizon and its figures (the "
                            "10 -> 10 table is always scored) (default: %(default)s)")
    evaluation.add_argument("--prediction-horizon", type=positive_int, default=100, metavar="N",
                            help="the long horizon's last frame, more than 10 (default: %(default)s)")
    evaluation.add_argument("--threads", type=non_negative_int, default=0, metavar="N",
                            help="torch CPU threads (default: 0, torch's choice)")
    return parser


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_names(seeds: int, hand_tracker: bool = False) -> list[tuple[str, int, str]]:
    """``(model, seed, run name)`` for every run: seed 42 keeps the design document's names; with
    ``hand_tracker``, each seed also trains :data:`HAND_TRACKER_RUN` (a ``"disentangled"`` run)."""
    runs = []
    for index in range(seeds):
        seed = 42 + index
        suffix = "" if index == 0 else f"_seed{seed}"
        for model in MODELS:
            runs.append((model, seed, RUN_NAMES[model] + suffix))
        if hand_tracker:
            runs.append(("disentangled", seed, HAND_TRACKER_RUN + suffix))
    return runs


def run_base(name: str) -> str:
    """A run's name without its ``_seedN`` suffix."""
    return re.sub(r"_seed\d+$", "", name)


def run_label(model: str, name: str) -> str:
    """How figures name a run: the model's display name, or :data:`HAND_TRACKER_LABEL`."""
    return HAND_TRACKER_LABEL if run_base(name) == HAND_TRACKER_RUN else reports.display_name(model)


def hand_tracker(args: argparse.Namespace) -> bool:
    """Whether the demo trains :data:`HAND_TRACKER_RUN`: unless ``--no-hand-tracker``, or ``--train-args``
    already chooses the Disentangled VAE's architecture (then the main run is no longer the learned default the
    hand tracker is set beside; with ``architecture=slots`` the two runs would be the same model)."""
    if args.no_hand_tracker:
        return False
    chosen = _train_args(args).get("model_option") or []
    return not any(str(item).split("=", 1)[0].strip() == "architecture" for item in chosen)


def steps_per_epoch(args: argparse.Namespace, train_config: TrainConfig | None = None,
                    data_config: DataConfig | None = None) -> int:
    """Optimizer steps in one epoch of one process (the training loader drops a last partial batch); of the
    given configs (the demo's options with ``--train-args`` applied) when given, else of the demo's options."""
    if train_config is not None and data_config is not None:
        return max(1, data_config.train_size // train_config.batch_size)
    return max(1, args.train_size // args.batch_size)


def epochs_per_model(args: argparse.Namespace) -> int:
    """Epochs that make ``--steps-per-model`` steps exactly (``--epochs`` when it is 0)."""
    return args.steps_per_model // steps_per_epoch(args) if args.steps_per_model else args.epochs


def requested_configs(args: argparse.Namespace, model: str, seed: int, name: str, amp: bool) -> tuple:
    """The configs of the run this demo would train: ``(model config, train config, data config, notes)``.

    ``--train-args`` options replace the demo's own (:func:`training.options.make_configs`, which also
    links the model to the data: ``--digits 3`` gives a 3-slot Disentangled VAE). A step budget stays a
    step budget: when ``--train-args`` changes the steps of an epoch (``--batch-size``, ``--train-size``),
    the epochs are recomputed and a note says so; an ``--epochs`` there replaces the budget, also noted.

    Raises:
        ConfigError, ValueError: an invalid value; SystemExit: a ``--train-args`` option that does not parse.
    """
    fields = model_fields(model)
    wanted = {"width": args.width, "beta": args.beta, "lstm_hidden": args.lstm_hidden,
              "prior_hidden": args.lstm_hidden}
    model_config = MODELS[model].config_class(**{key: value for key, value in wanted.items() if key in fields})
    train_config = TrainConfig(
        # a video file sets the steps of an epoch itself (recomputed below): any placeholder >= 1 will do here
        experiment_name=name, model=model, epochs=max(1, epochs_per_model(args)) if args.video_file else
        epochs_per_model(args), batch_size=args.batch_size, lr=args.lr,
        kl_warmup_epochs=args.kl_warmup_epochs, max_minutes=args.minutes_per_model or None, amp=amp,
        device=args.device, seed=seed, checkpoint_dir=args.checkpoint_dir,
    )
    data_config = DataConfig(train_size=args.train_size, val_size=args.val_size, test_size=args.test_size,
                             video=MovingMNISTConfig(image_size=args.image_size, num_digits=args.digits,
                                                     num_frames=args.frames), seed=seed, dataset=args.dataset,
                             mnist_root=args.mnist_root, video_file=args.video_file, video_layout=args.video_layout)
    options = model_options_for(model, _train_args(args))
    if run_base(name) == HAND_TRACKER_RUN:
        options = {**options, "model_option": [*(options.get("model_option") or []), *HAND_TRACKER_OPTIONS]}
    model_config, train_config, data_config, notes = make_configs(
        model, name, options, (model_config, train_config, data_config))
    if args.steps_per_model:
        if "epochs" in options:
            notes.append(f"--train-args --epochs {options['epochs']} replaces --steps-per-model "
                         f"{args.steps_per_model}: {options['epochs']} epochs are trained")
        elif args.video_file is not None:  # the file sets the training videos, hence the steps of an epoch
            per_epoch = steps_per_epoch(args, train_config, data_config)
            train_config = replace(train_config, epochs=max(1, args.steps_per_model // per_epoch))
            notes.append(f"--video-file: {data_config.train_size} training videos make an epoch {per_epoch} steps: "
                         f"--steps-per-model {args.steps_per_model} is {train_config.epochs} epochs "
                         f"({train_config.epochs * per_epoch} steps)")
        elif steps_per_epoch(args, train_config, data_config) != steps_per_epoch(args):
            per_epoch = steps_per_epoch(args, train_config, data_config)
            changed = " and ".join(f"--{dest.replace('_', '-')} {options[dest]}" for dest in ("batch_size", "train_size")
                                   if dest in options)
            notes.append(f"--train-args {changed} makes an epoch {per_epoch} steps instead of "
                         f"{steps_per_epoch(args)}: --steps-per-model {args.steps_per_model} is "
                         f"{args.steps_per_model // per_epoch} epochs")
            train_config = replace(train_config, epochs=max(1, args.steps_per_model // per_epoch))
    return model_config, train_config, data_config, notes


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """How every run is evaluated: on ``--test-size`` videos of its own checkpoint's test set (its seed's).

    Raises:
        EvaluationError: a bad value (e.g. fewer test videos than the disentanglement probes need).
    """
    return EvalConfig(device=args.device, num_samples=args.num_samples, save_dir=str(Path(args.out) / "eval"),
                      test_size=args.test_size, max_samples=args.test_size, judges=not args.no_judges,
                      prediction_videos=args.prediction_videos, prediction_horizon=args.prediction_horizon)


def output_folder_problem(option: str, folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot hold outputs (``None`` if it can): checked before any work, so that a file in
    its place or an unwritable parent is not found after all the training."""
    existing = Path(folder)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{option} {folder}: {existing} is a file, not a folder; pick a folder (it is created if missing)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{option} {folder}: {existing} is not writable; pick a folder you can write"
    return None


def check_training_options(args: argparse.Namespace) -> str | None:
    """The first problem with the options of any run (``None`` if there is none), found before the judges
    or any model are trained, so a bad value costs seconds, not a training run."""
    for option, folder in (("--checkpoint-dir", args.checkpoint_dir), ("--out", args.out)):
        problem = output_folder_problem(option, folder)
        if problem is not None:
            return problem
    try:
        eval_config(args)
        options = _train_args(args)
    except EvaluationError as error:
        return str(error)
    except SystemExit:  # argparse has printed the problem (e.g. a bad --train-args option)
        return "the options above are not valid training options"
    except ValueError as error:  # shlex: an unclosed quote
        return f"--train-args: {error}"
    for dest, option in DEMO_OWNED_OPTIONS.items():
        if dest in options:
            return (f"--train-args: {option} is an option of demo.py itself (it applies to every run and to the "
                    f"evaluation); pass it to demo.py, not in --train-args")
    for model, _, name in run_names(1, hand_tracker(args)):
        try:
            _, train_config, data_config, _ = requested_configs(args, model, 42, name, amp=False)
        except SystemExit:  # argparse has printed the problem (e.g. a bad --train-args option)
            return "the options above are not valid training options"
        except (ConfigError, ValueError) as error:
            return str(error)
        per_epoch = steps_per_epoch(args, train_config, data_config)
        if args.steps_per_model % per_epoch and "epochs" not in _train_args(args) and args.video_file is None:
            return (f"--steps-per-model {args.steps_per_model} is not a multiple of the {per_epoch} steps of an "
                    f"epoch (--train-size {data_config.train_size} / --batch-size {train_config.batch_size}); try "
                    f"{max(1, round(args.steps_per_model / per_epoch)) * per_epoch}")
    return None


def _train_args(args: argparse.Namespace) -> dict:
    return given_options(shlex.split(args.train_args)) if args.train_args else {}


def _option_field(item: object) -> str:
    return str(item).split("=", 1)[0].strip()


def model_options_for(model: str, options: dict) -> dict:
    """``options`` with only the ``--model-option`` items whose field ``model`` has (``architecture=average``
    goes to the Disentangled VAE alone); an item no model has goes to every one, whose error names it."""
    items = options.get("model_option")
    if not items:
        return options
    known = set().union(*(model_fields(name) for name in MODELS))
    fields = model_fields(model)
    return {**options, "model_option": [item for item in items
                                        if _option_field(item) in fields or _option_field(item) not in known]}


def model_option_notes(args: argparse.Namespace) -> list[str]:
    """One line per ``--train-args --model-option`` that some models lack, naming the models it goes to."""
    notes = []
    for item in _train_args(args).get("model_option") or []:
        takers = [name for name in MODELS if _option_field(item) in model_fields(name)]
        if takers and len(takers) < len(MODELS):
            notes.append(f"--model-option {item} goes to the {' and '.join(takers)} model"
                         f"{'s' if len(takers) > 1 else ''} only (the others have no {_option_field(item)})")
    return notes


def option_notes(args: argparse.Namespace, argv: list[str], runs: list[tuple[str, int, str]]) -> list[str]:
    """One line per option that has no effect or changes another (each said once)."""
    notes = model_option_notes(args)
    if args.steps_per_model and "epochs" in given_values(build_parser(), argv):
        notes.append(f"--epochs {args.epochs} has no effect: --steps-per-model {args.steps_per_model} sets the "
                     f"budget ({epochs_per_model(args)} epochs); pass --steps-per-model 0 to train --epochs epochs")
    if not args.no_hand_tracker and not hand_tracker(args):
        notes.append(f"--train-args chooses the Disentangled VAE's architecture: the {HAND_TRACKER_RUN} run (the "
                     "hand tracker beside the learned localiser) is skipped")
    for model, seed, name in runs:
        for note in requested_configs(args, model, seed, name, amp=False)[3]:
            note = f"{model}: {note}"
            if note not in notes:
                notes.append(note)
    return notes


def judge_data_configs(args: argparse.Namespace, runs: list[tuple[str, int, str]]) -> list[DataConfig]:
    """The data configs the evaluations will judge, one per set of judges (the demo's options with
    ``--train-args`` applied: the judges are trained for exactly what each run is evaluated on)."""
    configs: dict[str, DataConfig] = {}
    for model, seed, name in runs:
        data_config = requested_configs(args, model, seed, name, amp=False)[2]
        key = repr((data_config.video, data_config.mnist_root, data_config.dataset))
        configs.setdefault(key, replace(data_config, test_size=args.test_size))
    return list(configs.values())


def get_run_judges(data_config: DataConfig, device: torch.device, progress: bool = False):
    """The judges an evaluation of a run on ``data_config`` uses (the same call as
    :func:`evaluation.pipeline.evaluate`: the test set's video config and digit set)."""
    dataset = test_loader(data_config, batch_size=1).dataset
    return get_judges(dataset.config, device, digits=dataset.digits, progress=progress)


def unusable_run(run_dir: Path, error: object) -> str:
    """The one line for a reused run folder whose checkpoint cannot be used, and what to do."""
    return f"cannot use the run in {run_dir}: {error}; pass --retrain to train it again (or another --checkpoint-dir to keep it)"


def check_reused_runs(args: argparse.Namespace, runs: list[tuple[str, int, str]], amp: bool
                      ) -> tuple[dict[str, ResumePoint | None], str | None]:
    """What to do with the existing runs, and the problem that stops the demo (``None`` if there is none).

    A run folder's run is used only if its stored configs are exactly what this demo would train now: it is
    reused when its training finished (``best_model.pt`` is there and ``last.pt`` reached its epochs, or a
    wall-clock budget stopped it), and continued from ``last.pt`` when it did not (a Ctrl-C, or a budget
    stop before ``best_model.pt`` was first written).

    Returns:
        ``({run name: the last.pt to continue, or None to reuse best_model.pt}`` for the runs that exist,
        ``problem)``; runs not in the dict are trained from the start.
    """
    if args.retrain:
        return {}, None
    plans: dict[str, ResumePoint | None] = {}
    stale = []
    for model, seed, name in runs:
        run_dir = Path(args.checkpoint_dir) / name
        best, last = run_dir / BEST, run_dir / LAST
        if not best.exists() and not last.exists():
            continue
        source = last if last.exists() else best  # last.pt records how far training got
        try:
            checkpoint = load_checkpoint(source)
        except (CheckpointError, FileNotFoundError) as error:
            return plans, unusable_run(run_dir, error)
        model_config, train_config, data_config, _ = requested_configs(args, model, seed, name, amp)
        differences = config_differences(checkpoint, model, model_config, train_config, data_config)
        if differences:
            stale.append(f"{name}: {', '.join(differences)}")
            continue
        stored_name = evaluation_name(checkpoint, source)  # the name its evaluation is written under
        if stored_name != name:  # its evaluation would be written (and read) under the other name
            return plans, unusable_run(run_dir, f"it holds the run {stored_name!r} (a renamed or copied run folder), "
                                                f"whose evaluation would be written as {stored_name}_metrics.json")
        record = RunRecord.of(checkpoint)
        stored = record.train_config or {}
        epochs = stored.get("epochs", train_config.epochs)
        finished = (record.epoch if record.epoch is not None else epochs) >= epochs or stored.get("max_minutes") is not None
        if best.exists() and (finished or source == best):
            if source != best:  # the file that is reused (and evaluated) must be readable too
                try:
                    load_checkpoint(best)
                except CheckpointError as error:
                    return plans, unusable_run(run_dir, error)
            plans[name] = None
        elif finished:  # a finished run whose best_model.pt is gone: nothing to continue, nothing to evaluate
            return plans, (f"{run_dir} holds the last.pt of a finished run but no {BEST}; pass --retrain to train "
                           f"it again (or copy {LAST} to {BEST} to evaluate its last epoch)")
        else:
            try:
                plans[name] = resume_point(run_dir)
            except ConfigError as error:
                return plans, f"cannot continue the run in {run_dir}: {error}; pass --retrain to train it again"
    if not stale:
        return plans, None
    return plans, (f"runs in {args.checkpoint_dir} differ from what this demo would train ({'; '.join(stale)}); "
                   "pass --retrain to train them again, or another --checkpoint-dir to keep them")


def joined_option_values(argv: list[str], options: tuple[str, ...] = ("--train-args",)) -> list[str]:
    """``argv`` with the value of each of ``options`` joined to it (``--train-args=--deterministic``): argparse
    takes a separate value that starts with ``-`` for an option ("expected one argument"), though a value of
    ``--train-args`` is training options, which all start so."""
    joined, index = [], 0
    while index < len(argv):
        if argv[index] in options and index + 1 < len(argv):
            joined.append(f"{argv[index]}={argv[index + 1]}")
            index += 2
        else:
            joined.append(argv[index])
            index += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    argv = joined_option_values(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        return run_demo(args, argv)
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops itself after its step): judges, evaluation
        print(f"{PROG}: interrupted; the runs in {args.checkpoint_dir} keep their last checkpoints and every file "
              f"in {args.out} is whole; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # a full disk, a folder made read-only: every file written so far is whole
        what = error.filename or f"the outputs in {args.out}"
        print(f"{PROG}: error: cannot write {what}: {error.strerror or error}; every file written is whole (the "
              "new one or the one before); free space and run the same command again", file=sys.stderr)
        return EXIT_WRITE


def run_demo(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """The demo for parsed options (``argv``: the command line they came from, for the notes on options that
    have no effect); returns the exit status (see the module docstring)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problem = check_training_options(args)
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    amp = args.amp == "on" or (args.amp == "auto" and bf16_supported(device))
    runs = run_names(args.seeds, hand_tracker(args))
    locks, problem = lock_run_folders(args, runs)
    if problem is not None:  # before anything reads a run folder that another process uses
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run_demo_locked(args, argv, device, amp, runs, locks)
    finally:
        for lock in locks.values():
            lock.release()


def lock_run_folders(args: argparse.Namespace, runs: list[tuple[str, int, str]]
                     ) -> tuple[dict[str, RunLock], str | None]:
    """Take the lock of every run folder that exists (:mod:`training.run_folder.lock`, as training does), so
    that no other demo or training process writes one while this demo reads, continues or refits it.

    Returns:
        ``({run name: its held lock}, problem)``: the problem (a folder in use, naming the holder's pid)
        comes with no lock held.
    """
    locks: dict[str, RunLock] = {}
    for _, _, name in runs:
        run_dir = Path(args.checkpoint_dir) / name
        try:
            lock = lock_existing_run_folder(run_dir)
        except RunFolderBusy:
            for held in locks.values():
                held.release()
            return {}, (f"{run_dir} is in use by another process ({RunLock(run_dir).holder()}): another demo or "
                        "training run; wait for it to end or stop it, or pass another --checkpoint-dir")
        if lock is not None:
            locks[name] = lock
    return locks, None


def _run_demo_locked(args: argparse.Namespace, argv: list[str] | None, device: torch.device, amp: bool,
                     runs: list[tuple[str, int, str]], locks: dict[str, RunLock]) -> int:
    """The demo once its existing run folders are locked (``locks``; a run trained here takes its own)."""
    plans, problem = check_reused_runs(args, runs, amp)
    if problem is not None:  # before the judges or any training: a stale run is never reported as new
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    timings: dict[str, float] = {}
    stage_times = StageTimes()  # every stage and its parts: the table at the end of the log and in the report
    log(f"{len(runs)} runs on {device}: {', '.join(name for _, _, name in runs)}; report in {out}/report.md")
    for note in option_notes(args, argv or [], runs):
        log(f"note: {note}")

    if args.video_file is not None:
        log(f"{args.video_file} has no ground-truth factors: no judges; the metrics that need factors are listed as "
            "not available")
    if not args.no_judges and args.video_file is None:
        started = time.monotonic()
        for data_config in judge_data_configs(args, runs):
            video = data_config.video
            log(f"judges for {data_config.title}, {video.num_digits} objects, {video.num_frames} frames of {video.image_size}x"
                f"{video.image_size}: loading from the cache, or training them once (about 2-3 min)")
            get_run_judges(data_config, device, progress=sys.stderr.isatty())
        timings["judges"] = time.monotonic() - started
        stage_times.add("judges", timings["judges"])

    started = time.monotonic()
    checkpoints: dict[str, Path] = {}
    # One bar over the whole demo: a stage per training run and per evaluation; the log lines say the same.
    stages = tqdm(total=2 * len(runs), desc="demo", unit="stage", dynamic_ncols=True,
                  disable=not sys.stderr.isatty(), bar_format="{l_bar}{bar}| {n}/{total} stages [{elapsed}<{remaining}]")
    demo_started, done = time.monotonic(), [0]

    def stage_done(what: str) -> None:
        stages.update(1)  # a disabled bar (no terminal) counts nothing: keep our own count
        done[0] += 1
        elapsed = time.monotonic() - demo_started
        left = elapsed / done[0] * (2 * len(runs) - done[0])
        log(f"{what} ({done[0]}/{2 * len(runs)} stages, {elapsed / 60:.1f} min so far, about {left / 60:.1f} "
            "min left)")

    for model, seed, name in runs:
        run_dir = Path(args.checkpoint_dir) / name
        best = run_dir / BEST
        if name in plans and plans[name] is None:
            log(f"{name}: reusing {best}, trained with exactly these settings (--retrain trains it again)")
            stage_times.add(f"training {name}", 0.0, note="reused")
            try:
                stale = stale_prior(best)
                if stale is not None:  # a run trained before the current prior rule samples with it from now on
                    log(f"{name}: {stale}: fitting it again (models/fitted_prior.py)")
                    _, train_config, data_config, _ = requested_configs(args, model, seed, name, amp)
                    with stage_times.time(f"prior fit {name}", note="refitted: an older prior"):
                        fit_run_priors(run_dir, data_loaders(data_config, train_config.batch_size)[0], device,
                                       seed=train_config.seed, log=log)
            except (CheckpointError, FileNotFoundError) as error:  # e.g. weights that are not finite
                print(f"{PROG}: error: {unusable_run(run_dir, ' '.join(str(error).split()))}", file=sys.stderr)
                return EXIT_USAGE
        else:
            resume = plans.get(name)
            log(f"{'continuing' if resume else 'training'} {name} ({model}, seed {seed})"
                + (f" from {run_dir / LAST} (epoch {resume.checkpoint.get('epoch')}, step "
                   f"{resume.checkpoint.get('step')})" if resume else ""))
            model_config, train_config, data_config, notes = requested_configs(args, model, seed, name, amp)
            run_started = time.perf_counter()
            try:
                result = train(model, model_config, train_config, data_config, run_dir, resume=resume,
                               overwrite=args.retrain, quiet=False, notes=notes, how_to_continue=CONTINUE,
                               lock=locks.pop(name, None))  # train() releases it
            except LOGGED_TRAINING_ERRORS as error:  # the run has said what happened, and what last.pt holds
                return getattr(error, "exit_status", EXIT_WRITE if isinstance(error, RunWriteError) else EXIT_FAILED)
            except TRAINING_ERRORS as error:  # a run folder that cannot be used
                print(f"{PROG}: error: training {name} failed: {error}", file=sys.stderr)
                return EXIT_USAGE
            if not result.finished:  # the run has said where it stopped, and how to continue
                return result.exit_status
            # train() fits the ex-post prior when it finishes: its own row, so a slow fit shows itself
            stage_times.add(f"training {name}", time.perf_counter() - run_started - result.prior_seconds,
                            note=f"continued from epoch {resume.checkpoint.get('epoch')}" if resume else "")
            stage_times.add(f"prior fit {name}", result.prior_seconds)
            held, problem = lock_run_folders(args, [(model, seed, name)])  # train() let it go: held till the end
            if problem is not None:
                print(f"{PROG}: error: {problem}", file=sys.stderr)
                return EXIT_USAGE
            locks.update(held)
            if not best.exists():  # a --minutes-per-model budget spent before the first epoch ended
                print(f"{PROG}: error: training {name} reached its --minutes-per-model budget at step {result.step}, "
                      f"before its first epoch ended, so there is no {BEST} to evaluate; {CONTINUE}, or give it "
                      "more minutes", file=sys.stderr)
                return EXIT_FAILED
        checkpoints[name] = best
        stage_done(f"{name} trained")
    timings["training"] = time.monotonic() - started

    started = time.monotonic()
    eval_dir = out / "eval"
    config = eval_config(args)
    for name, path in checkpoints.items():
        log(f"evaluating {name}")
        evaluation_started = time.perf_counter()
        try:
            evaluation = evaluate(path, config, command=f"{PROG} (evaluation of {path})")
        except (EvaluationError, FileNotFoundError, CheckpointError, ValueError) as error:
            print(f"{PROG}: error: evaluating {name} failed: {error}", file=sys.stderr)
            return EXIT_USAGE
        stage_times.add(f"evaluation {name}", time.perf_counter() - evaluation_started)
        for part, seconds in evaluation.seconds.items():
            stage_times.add(f"evaluation {name}", seconds, part=part)
        stage_done(f"{name} evaluated")
    stages.close()
    timings["evaluation"] = time.monotonic() - started

    started = time.monotonic()
    documents = reports.load_results([eval_dir / f"{name}_metrics.json" for name in checkpoints])
    # The accuracy of the judges the evaluations used (the same for every run of one data config).
    judge_accuracy = next((document["metadata"].get("judges") for document in documents
                           if document["metadata"].get("judges")), {})
    reports.write_summary(documents, out / "tables")
    first_seed = {run_label(model, name): name for model, seed, name in runs if seed == 42}
    bce = all(document["metadata"].get("model_config", {}).get("recon_loss", "bce") == "bce" for document in documents)
    plot_training_curves({label: Path(args.checkpoint_dir) / name / RunFiles.METRICS for label, name in first_seed.items()},
                         out / "figures" / "training_curves.png", title="Training curves",
                         unit="nats per video" if bce else "loss per video")
    comparison_figures(first_seed, args.checkpoint_dir, out, device, log=log,
                       prediction_horizon=args.prediction_horizon if args.prediction_videos and not args.video_file else None)
    stage_times.add("report", time.monotonic() - started, note="tables and comparison figures")
    written = write_report(documents, out, args.checkpoint_dir, timings | {"report": time.monotonic() - started}, device, amp,
                           judge_accuracy, list(checkpoints), stage_times.table())
    for frame_name, rows in reports.tables_for(documents).items():
        print(f"\n{frame_name}:\n{markdown_table(reports.table(reports.group_by_model(documents), rows))}")
    print(f"\nstages (wall-clock):\n{markdown_table(stage_times.table())}")
    log(f"done in {sum(timings.values()) / 60:.1f} min. Report: {written[0]} (and {written[1].name})")
    log(f"swap explorer: python explore.py --checkpoint {Path(args.checkpoint_dir) / RUN_NAMES['disentangled']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
