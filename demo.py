"""The whole experiment in one command: train the three models, evaluate them, write the comparison report.

    python demo.py [options]            # what `make demo` runs (`make demo ARGS="--seeds 3"`)

On the embedded MNIST digits, it trains the Baseline VAE, the LSTM-VAE and the Disentangled VAE for a
fixed number of optimizer steps each (``--steps-per-model``: the same models on any machine; the default
fits a 2-core CPU in under 25 minutes), evaluates each with
``evaluate.py`` (reconstruction, disentanglement, judged swaps, figures, GIFs), and writes
``results/report.md`` and ``results/report.html`` with the tables, the design document's hypotheses
against the measurements, and the figures. Longer runs pass options through, e.g. full runs on a GPU::

    python demo.py --device cuda --steps-per-model 0 --epochs 100 --train-size 10000 --width 32 --frames 20

Runs are saved as ``checkpoints/baseline_vae`` etc. (``..._seed43`` for further seeds). A run folder that
already holds ``best_model.pt`` is reused, not retrained, when the model, training and data configs stored
in it are exactly those this command would train with and its training finished (so re-running the demo
only redoes the evaluation); otherwise the demo stops with one line naming the differing settings.
``--retrain`` starts those runs over; another ``--checkpoint-dir`` keeps them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

import evaluate
from data import MovingMNISTConfig, render_digits
from evaluation import report as reports
from evaluation.judges import get_judges
from evaluation.metric_names import TABLES
from evaluation.report_writer import Report, markdown_table
from evaluation.runs import checkpoint_data_config, config_differences, load_runs, test_loader
from models import MODELS
from models.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from training import train
from training.config import ConfigError, fresh_configs
from utils.animation import save_video_gif
from utils.cli import device_name, non_negative_int, number, positive_int
from utils.curves import plot_training_curves
from utils.devices import bf16_supported, resolve_device
from utils.provenance import collect as provenance
from utils.provenance import cpu_description, summary_lines
from utils.visualization import save_frame_grid

PROG = "demo.py"
RUN_NAMES = {name: f"{name}_vae" for name in MODELS}  # the design document's checkpoints/NAME folders
DEFAULT_STEPS = 512  # about 25 min for the whole demo on a 2-core AVX2 CPU (README, benchmarks/NOTES.md)


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
                        help="epochs per model when --steps-per-model is 0 (default: 100)")
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
    shape.add_argument("--width", type=positive_int, default=16, metavar="N",
                       help="base channels of every model's conv encoder/decoder (default: %(default)s; the "
                       "models' own default is 32)")
    shape.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                       help="videos per step (default: %(default)s)")
    shape.add_argument("--lstm-hidden", type=positive_int, default=128, metavar="N",
                       help="hidden size of every LSTM (posterior and prior) of the LSTM-VAE and the Disentangled "
                       "VAE (default: %(default)s: at width 16 this keeps the three parameter counts within 10%% "
                       "of each other, as the models' defaults do at width 32 and 256)")
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
                       help="further options for python -m training.train, e.g. \"--grad-clip 1\"")
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
    evaluation.add_argument("--threads", type=non_negative_int, default=0, metavar="N",
                            help="torch CPU threads (default: 0, torch's choice)")
    return parser


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_names(seeds: int) -> list[tuple[str, int, str]]:
    """``(model, seed, run name)`` for every run: seed 42 keeps the design document's names."""
    runs = []
    for index in range(seeds):
        seed = 42 + index
        for model in MODELS:
            runs.append((model, seed, RUN_NAMES[model] + ("" if index == 0 else f"_seed{seed}")))
    return runs


def train_argv(args: argparse.Namespace, model: str, seed: int, name: str, amp: bool) -> list[str]:
    argv = [
        "--model", model, "--name", name, "--checkpoint-dir", args.checkpoint_dir, "--device", args.device,
        "--epochs", str(epochs_per_model(args)), "--seed", str(seed), "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--beta", str(args.beta), "--kl-warmup-epochs", str(args.kl_warmup_epochs),
        "--width", str(args.width),
        "--frames", str(args.frames), "--image-size", str(args.image_size),
        "--train-size", str(args.train_size), "--val-size", str(args.val_size), "--test-size", str(args.test_size),
    ]
    fields = {field.name for field in dataclasses.fields(MODELS[model].config_class)}
    argv += [option for field in ("lstm_hidden", "prior_hidden") if field in fields
             for option in ("--model-option", f"{field}={args.lstm_hidden}")]
    if args.minutes_per_model > 0:
        argv += ["--max-minutes", str(args.minutes_per_model)]
    if amp:
        argv.append("--amp")
    if args.retrain:
        argv.append("--overwrite")
    return argv + shlex.split(args.train_args)


def steps_per_epoch(args: argparse.Namespace) -> int:
    """Optimizer steps in one epoch of one process (the training loader drops a last partial batch)."""
    return max(1, args.train_size // args.batch_size)


def epochs_per_model(args: argparse.Namespace) -> int:
    """Epochs that make ``--steps-per-model`` steps exactly (``--epochs`` when it is 0)."""
    return args.steps_per_model // steps_per_epoch(args) if args.steps_per_model else args.epochs


def requested_configs(args: argparse.Namespace, model: str, seed: int, name: str, amp: bool) -> tuple:
    """``training.config.fresh_configs`` of the run this demo would train: ``(model name, model config, train
    config, data config, notes)``; raises as ``fresh_configs`` (or SystemExit for an unparsable option)."""
    return fresh_configs(train.build_parser().parse_args(train_argv(args, model, seed, name, amp)))


def check_training_options(args: argparse.Namespace) -> str | None:
    """The first problem with the training options of any model (``None`` if there is none), found before
    the judges or any model are trained, so a bad value costs seconds, not a training run."""
    per_epoch = steps_per_epoch(args)
    if args.steps_per_model % per_epoch:
        return (f"--steps-per-model {args.steps_per_model} is not a multiple of the {per_epoch} steps of an epoch "
                f"(--train-size {args.train_size} / --batch-size {args.batch_size}); try "
                f"{max(1, round(args.steps_per_model / per_epoch)) * per_epoch}")
    for model in MODELS:
        try:
            requested_configs(args, model, 42, RUN_NAMES[model], amp=False)
        except SystemExit:  # argparse has printed the problem (e.g. a bad --train-args option)
            return "the options above are not valid training options"
        except (ConfigError, ValueError) as error:
            return str(error)
    return None


def check_reused_runs(args: argparse.Namespace, runs: list[tuple[str, int, str]], amp: bool) -> str | None:
    """The problem with reusing the existing runs (``None`` if there is none): a run folder holding
    ``best_model.pt`` is only reused if its stored configs are exactly what this demo would train now, and
    its training finished (``last.pt`` reached its epochs, unless a wall-clock budget stopped it)."""
    if args.retrain:
        return None
    stale = []
    for model, seed, name in runs:
        run_dir = Path(args.checkpoint_dir) / name
        if not (run_dir / BEST).exists():
            continue
        try:
            checkpoint = load_checkpoint(run_dir / BEST)
        except (CheckpointError, FileNotFoundError) as error:
            return f"cannot reuse {run_dir / BEST}: {error}; pass --retrain to train it again"
        _, model_config, train_config, data_config, _ = requested_configs(args, model, seed, name, amp)
        differences = config_differences(checkpoint, model, model_config, train_config, data_config)
        if not differences and (run_dir / LAST).exists():
            last = load_checkpoint(run_dir / LAST)
            stored = last.get("train_config") or {}
            epochs = stored.get("epochs", train_config.epochs)
            if stored.get("max_minutes") is None and last.get("epoch", epochs) < epochs:
                differences.append(f"training stopped at epoch {last.get('epoch')} of {epochs}")
        if differences:
            stale.append(f"{name}: {', '.join(differences)}")
    if not stale:
        return None
    return (f"runs in {args.checkpoint_dir} differ from what this demo would train ({'; '.join(stale)}); pass "
            "--retrain to train them again, or another --checkpoint-dir to keep them")


def machine_description(device: torch.device) -> str:
    text = f"{cpu_description()['model']}, {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def comparison_figures(runs: dict[str, str], checkpoint_dir: str, out: Path, device: torch.device) -> list[Path]:
    """Figures that put the models side by side on the same test videos: reconstructions, and the content
    swap (A's digits, B's motion) beside its exact ideal render."""
    models, checkpoints = load_runs(runs, checkpoint_dir, device, log=log)
    first = next(iter(checkpoints))
    dataset = test_loader(checkpoint_data_config(checkpoints[first], models[first])).dataset
    batch = dataset[[0, 1, 2]]
    video = batch["video"].to(device)
    ideal = render_digits(dataset.digit_images(batch["digit_ids"][1:2]), batch["trajectory"][2:3], video.shape[-1])
    rows = {"ground truth": video[0]}
    swap_rows = {"A (content source)": video[1], "B (motion source)": video[2],
                 "ideal: A's digits on B's paths": ideal[0]}
    with torch.no_grad():
        for label, model in models.items():
            rows[label] = model.reconstruct(video[:1])[0]
            swap_rows[label] = model.swap(video[1:2], video[2:3])[0]
    figures = out / "figures"
    return [
        save_frame_grid(rows, figures / "reconstructions.png", title="The same test video, reconstructed"),
        save_video_gif(rows, figures / "reconstructions.gif", labels=list(rows)),
        save_frame_grid(swap_rows, figures / "content_swap.png",
                        title="Content swap: A's digits moving like B, beside the exact ideal render"),
        save_video_gif(swap_rows, figures / "content_swap.gif", labels=list(swap_rows)),
    ]


def video_config(args: argparse.Namespace):
    """How the demo's videos look (the judges are trained, and cached, per such config)."""
    digit_size = round(args.image_size * 28 / 64)
    return MovingMNISTConfig(image_size=args.image_size, digit_size=digit_size, num_frames=args.frames)


def steps_text(records: list[tuple[str, float, float]]) -> str:
    """The optimizer steps the runs trained for, from their ``metrics.csv`` (``(name, steps, seconds)``)."""
    steps = sorted({steps for _, steps, _ in records if steps == steps})  # NaN: no metrics.csv
    if not steps:
        return "an unknown number of optimizer steps (no metrics.csv beside the checkpoints)"
    if len(steps) == 1:
        return f"{steps[0]:,.0f} optimizer steps each"
    return f"{steps[0]:,.0f} to {steps[-1]:,.0f} optimizer steps"


def write_report(args: argparse.Namespace, documents: list[dict], out: Path, timings: dict[str, float],
                 device: torch.device, amp: bool, judge_accuracy: dict, run_dirs: list[str]) -> list[Path]:
    grouped = reports.group_by_model(documents)
    records = [(name, *reports.training_record(Path(args.checkpoint_dir) / name)) for name in run_dirs]
    report = Report("Content-motion VAEs on Moving MNIST: measured comparison", out)
    total_minutes = sum(timings.values()) / 60
    report.paragraph(
        f"Written by `python demo.py` on {datetime.date.today().isoformat()} on {machine_description(device)} "
        f"(device {device}{', bf16 autocast' if amp else ''}); the whole run took {total_minutes:.1f} minutes "
        f"({', '.join(f'{stage} {seconds / 60:.1f}' for stage, seconds in timings.items())} min). "
        f"Every number below was measured in this run, on the checkpoints listed; as stored in them, the "
        f"models were trained for {steps_text(records)}: {reports.trained_settings(documents)}. "
        "A CPU-sized budget trains far less than the design document's 100 epochs: read the numbers as a "
        "comparison at equal (small) compute, not as converged results."
    )
    report.paragraph("Training of each run (from its `metrics.csv`): " + "; ".join(
        f"`{name}` {steps:,.0f} steps in {seconds / 60:.1f} min" for name, steps, seconds in records) + ".")
    report.paragraph("Provenance (also in every `eval/NAME_metrics.json`, under `metadata.provenance`):")
    report.bullets(summary_lines(provenance()))
    report.heading("The design document's hypotheses against the measurements")
    expected = reports.expected_vs_measured(grouped)
    if not expected.empty:
        report.table(expected)
        report.paragraph(
            "Rules: MSE and SSIM expect the LSTM-VAE best and the Disentangled VAE within 10% (MSE) or 0.01 "
            "(SSIM) of the Baseline. Content swap scores the judged digit accuracy of `combine(content A, motion "
            "B)` against A's digits, motion swap the judged correlation of its paths with B's, both rescaled so "
            "that chance is 0 and perfect is 1, then labelled Clean (>= 0.8), Partial (>= 0.3) or Fails. "
            "Disentanglement compares the ordering of `overall_disentanglement`. Where a row says 'does not "
            "hold', the measurement contradicts the design document's expectation."
        )
    titles = {
        "reconstruction": "Reconstruction quality (test videos)",
        "disentanglement": "Disentanglement of the content and motion codes",
        "swaps": "Swaps, resampling and samples, read by the judges",
        "cost": "Cost",
    }
    for name, rows in TABLES.items():
        report.heading(titles[name])
        report.table(reports.table(grouped, rows))
        if name == "swaps" and judge_accuracy:
            report.paragraph(
                "The judges are small networks trained on real videos (train digit pool) and measured on real "
                f"test videos: digit accuracy {judge_accuracy.get('content_digit_accuracy', float('nan')):.3f}, "
                f"mean path error {judge_accuracy.get('motion_trajectory_error_px', float('nan')):.2f} px. "
                "A judged number can be no better than that reading of real videos."
            )
    report.paragraph(
        "Definitions: every metric, with its formula, is documented in `evaluation/metrics.py` (reconstruction) "
        "and `evaluation/disentanglement.py` (disentanglement, swaps); the README lists them too. Baseline VAE "
        "and LSTM-VAE have no explicit split: their content code is the time-average of the per-frame latent "
        "means and their motion code each frame's deviation from it."
    )
    report.heading("Figures")
    figures = out / "figures"
    for path, caption in (
        (figures / "training_curves.png", "Training curves (train solid, validation dashed)"),
        (figures / "reconstructions.png", "One test video reconstructed by each model"),
        (figures / "content_swap.png", "Content swap: A's digits moving like B, beside the exact ideal render"),
    ):
        if path.exists():
            report.image(path, caption)
    report.links([("reconstructions.gif", figures / "reconstructions.gif"),
                  ("content_swap.gif", figures / "content_swap.gif")])
    for model_name, documents in grouped.items():
        name = documents[0].get("experiment_name")
        report.heading(f"{model_name} ({name})", level=3)
        evaluation_dir = out / "eval"
        for suffix, caption in (("samples", "samples from the prior"), ("content_swap", "swap matrix"),
                                ("interpolation", "content and motion interpolation")):
            path = evaluation_dir / f"{name}_{suffix}.png"
            if path.exists():
                report.image(path, f"{model_name}: {caption}")
        report.links([(f"{suffix}.gif", evaluation_dir / f"{name}_{suffix}.gif")
                      for suffix in ("reconstructions", "samples", "swaps")
                      if (evaluation_dir / f"{name}_{suffix}.gif").exists()])
    report.heading("Files")
    report.bullets([
        "`eval/NAME_metrics.json`: every metric of every run (NaN kept), with the configs and the provenance",
        "`figures/` and `eval/`: every figure as PNG and PDF; the animations as GIF (and MP4 where "
        "imageio-ffmpeg is installed)",
        "`tables/`: `comparison_results.json`, `disentanglement_metrics.json` and each table as Markdown and LaTeX",
        "`checkpoints/NAME/`: `best_model.pt`, `last.pt`, `metrics.csv`, TensorBoard logs",
    ])
    return report.write()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    problem = check_training_options(args)
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    amp = args.amp == "on" or (args.amp == "auto" and bf16_supported(device))
    problem = check_reused_runs(args, run_names(args.seeds), amp)
    if problem is not None:  # before the judges or any training: a stale run is never reported as new
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    timings: dict[str, float] = {}
    runs = run_names(args.seeds)
    log(f"{len(runs)} runs on {device}: {', '.join(name for _, _, name in runs)}; report in {out}/report.md")

    judge_accuracy: dict = {}
    if not args.no_judges:
        started = time.monotonic()
        log("judges: loading from the cache, or training them once for this data configuration (about 2-3 min)")
        judge_accuracy = dict(get_judges(video_config(args), device, progress=sys.stderr.isatty()).accuracy)
        timings["judges"] = time.monotonic() - started

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
        if best.exists() and not args.retrain:
            log(f"{name}: reusing {best}, trained with exactly these settings (--retrain trains it again)")
        else:
            log(f"training {name} ({model}, seed {seed})")
            status = train.main(train_argv(args, model, seed, name, amp))
            if status != 0 or not best.exists():
                print(f"{PROG}: error: training {name} failed (exit status {status}); see {run_dir}/train.log",
                      file=sys.stderr)
                return status or 1
        checkpoints[name] = best
        stage_done(f"{name} trained")
    timings["training"] = time.monotonic() - started

    started = time.monotonic()
    eval_dir = out / "eval"
    for name, path in checkpoints.items():
        log(f"evaluating {name}")
        evaluate_argv = ["--checkpoint", str(path), "--device", args.device, "--num_samples", str(args.num_samples),
                         "--save_dir", str(eval_dir), "--test-size", str(args.test_size),
                         "--max-samples", str(args.test_size)]
        if args.no_judges:
            evaluate_argv.append("--no-judges")
        status = evaluate.main(evaluate_argv)
        if status != 0:
            print(f"{PROG}: error: evaluating {name} failed (exit status {status})", file=sys.stderr)
            return status
        stage_done(f"{name} evaluated")
    stages.close()
    timings["evaluation"] = time.monotonic() - started

    started = time.monotonic()
    documents = reports.load_results([eval_dir / f"{name}_metrics.json" for name in checkpoints])
    reports.write_summary(documents, out / "tables")
    first_seed = {reports.display_name(model): name for model, seed, name in runs if seed == 42}
    bce = all(document["metadata"].get("model_config", {}).get("recon_loss", "bce") == "bce" for document in documents)
    plot_training_curves({label: Path(args.checkpoint_dir) / name / "metrics.csv" for label, name in first_seed.items()},
                         out / "figures" / "training_curves.png", title="Training curves",
                         unit="nats per video" if bce else "loss per video")
    comparison_figures(first_seed, args.checkpoint_dir, out, device)
    written = write_report(args, documents, out, timings | {"report": time.monotonic() - started}, device, amp,
                           judge_accuracy, list(checkpoints))
    for frame_name, rows in TABLES.items():
        print(f"\n{frame_name}:\n{markdown_table(reports.table(reports.group_by_model(documents), rows))}")
    log(f"done in {sum(timings.values()) / 60:.1f} min. Report: {written[0]} (and {written[1].name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
