"""Time-to-quality: the judged numbers of each model against optimizer steps, and the steps to reach a level.

Trains each model with the demo's settings (``demo.requested_configs``: the same run a ``demo.py
--steps-per-model STEPS`` would train, in the same run folder), in legs of ``--every`` steps: each leg is
``training.train.train(..., resume=...)`` up to the next multiple, which continues the run exactly. After
every leg the run's ``last.pt`` is scored on ``--videos`` test videos by the judges: digits read in the
reconstruction (``recon_content_accuracy``), A's digits kept in a content swap (``content_preservation``),
the swap following B's paths (``motion_correlation``), swap fidelity (SSIM), the digit probe on the
motion code and, for the object-structured Disentangled VAEs (``slots``, ``keypoints``), how far their slot
positions are from the digits and how often a slot keeps its digit (:mod:`evaluation.localisation`).
Prints one table of every checkpoint and one of the steps (and training minutes) at which each
level is first reached, and writes ``time_to_quality.csv`` and ``time_to_quality.png`` into ``--out``.

    python -m benchmarks.bench_time_to_quality [--models ...] [--steps 2560] [--every 256] [--videos 300]
        [--demo-args "--lr 2e-3"]

A run folder that already holds checkpoints is continued (``--resume``), so an interrupted benchmark picks
up where it stopped; afterwards ``demo.py --steps-per-model STEPS --checkpoint-dir DIR`` reuses the runs
and writes the full report of them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import shlex
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import demo  # noqa: E402
from benchmarks.common import checked_device, format_table  # noqa: E402
from evaluation.disentanglement import compute_all_disentanglement_metrics  # noqa: E402
from evaluation.reporting.report import display_name, training_record  # noqa: E402
from evaluation.trained_runs import checkpoint_data_config, test_loader  # noqa: E402
from models import MODELS  # noqa: E402
from models.checkpoint import LAST, load_model  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.run_folder.prepare import resume_point  # noqa: E402
from training.train import TRAINING_ERRORS, train  # noqa: E402
from utils.atomic import atomic_write_text  # noqa: E402
from utils.cli import positive_int  # noqa: E402
from utils.devices import bf16_supported  # noqa: E402
from utils.visualization import save_figure  # noqa: E402

SCORES = {  # key of compute_all_disentanglement_metrics -> column
    "recon_content_accuracy": "digits in recon",
    "content_preservation": "content kept in swap",
    "content_preservation_close_start": "kept, close start",
    "motion_correlation": "swap follows paths r",
    "swap_fidelity_ssim": "swap SSIM",
    "probe_content_from_motion": "digit probe on motion",
    # object-structured Disentangled VAEs only (NaN for the others): where their slots are
    "localisation_median_error_px": "slot error px",
    "localisation_slot_consistency": "slot keeps digit",
}
LEVELS = {"recon_content_accuracy": (0.5, 0.8, 0.9), "content_preservation": (0.5, 0.8, 0.9)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_time_to_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to train and score (default: all)")
    parser.add_argument("--steps", type=positive_int, default=2560, help="optimizer steps per model (default: 2560)")
    parser.add_argument("--every", type=positive_int, default=256,
                        help="score a checkpoint every N steps; a multiple of the steps per epoch (default: 256)")
    parser.add_argument("--videos", type=positive_int, default=300, help="test videos scored (default: 300)")
    parser.add_argument("--checkpoint-dir", default="checkpoints/long", help="parent of the run folders")
    parser.add_argument("--out", default="results/time_to_quality", help="where the CSV and the figure go")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    parser.add_argument("--demo-args", default="", metavar="'ARGS'",
                        help="further demo.py options that set the runs' recipe, e.g. \"--lr 2e-3 --train-args "
                        "'--scheduler cosine'\" (default: the demo's own settings)")
    return parser


def score(path: Path, device: torch.device, videos: int, judges) -> dict[str, float]:
    """The judged numbers of one checkpoint on its own data config's first ``videos`` test videos."""
    model, checkpoint = load_model(path, device)
    loader = test_loader(checkpoint_data_config(checkpoint, model, test_size=videos))
    metrics = compute_all_disentanglement_metrics(model, loader, device, max_samples=videos, judges=judges)
    return {key: float(metrics[key]) for key in SCORES}


def first_reached(rows: list[dict], key: str, level: float) -> dict | None:
    return next((row for row in rows if row[key] >= level), None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = checked_device(parser, args.device)
    demo_args = demo.build_parser().parse_args(["--steps-per-model", str(args.steps), "--checkpoint-dir",
                                                args.checkpoint_dir, "--device", args.device,
                                                *shlex.split(args.demo_args)])
    per_epoch = demo.steps_per_epoch(demo_args)
    if args.every % per_epoch or args.steps % args.every:
        parser.error(f"--every must be a multiple of the {per_epoch} steps of an epoch and divide --steps")
    amp = bf16_supported(device)
    try:  # builds every model's configs: settings the demo refuses are one line here too, before any work
        judge_configs = demo.judge_data_configs(demo_args, [(model, 42, demo.RUN_NAMES[model]) for model in args.models])
    except ConfigError as error:
        parser.error(f"--demo-args: {error}")
    judges = demo.get_run_judges(judge_configs[0], device)  # the models share the demo's data
    rows: list[dict] = []
    for model in args.models:
        name = demo.RUN_NAMES[model]
        run_dir = Path(args.checkpoint_dir) / name
        for steps in range(args.every, args.steps + 1, args.every):
            model_config, train_config, data_config, notes = demo.requested_configs(demo_args, model, 42, name, amp)
            train_config = dataclasses.replace(train_config, epochs=steps // per_epoch)
            done_steps, _ = training_record(run_dir)  # NaN for a run not started
            if done_steps > steps:  # last.pt holds a later step: this stage's model is gone, not scored as it
                print(f"{name}: already trained to {int(done_steps)} steps; the {steps}-step stage is not scored")
                continue
            if not done_steps >= steps:
                resume = resume_point(run_dir) if (run_dir / LAST).exists() else None
                try:
                    result = train(model, model_config, train_config, data_config, resume=resume, notes=notes)
                except TRAINING_ERRORS as error:
                    print(f"training {name} to {steps} steps failed: {error}")
                    return 1
                if not result.finished:
                    print(f"training {name} to {steps} steps stopped ({result.stop_reason})")
                    return result.exit_status
            _, seconds = training_record(run_dir)
            row = {"model": model, "steps": steps, "train minutes": seconds / 60,
                   **score(run_dir / LAST, device, args.videos, judges)}
            rows.append(row)
            print(" | ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                             for key, value in row.items()), flush=True)
    if not rows:
        print("nothing scored: every stage asked for lies before the runs' last checkpoints (--checkpoint-dir "
              "holds longer runs; give a larger --steps, or an empty --checkpoint-dir)")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "time_to_quality.csv", table.getvalue())
    print(format_table([{**{k: v for k, v in row.items() if k not in SCORES}, **{SCORES[k]: row[k] for k in SCORES}}
                        for row in rows]))
    reached = []
    for model in args.models:
        model_rows = [row for row in rows if row["model"] == model]
        for key, levels in LEVELS.items():
            for level in levels:
                row = first_reached(model_rows, key, level)
                reached.append({"model": model, "judged number": SCORES[key], "level": level,
                                "steps": row["steps"] if row else f"> {args.steps}",
                                "train minutes": row["train minutes"] if row else float("nan")})
    print()
    print(format_table(reached))
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for axis, key in zip(axes, ("recon_content_accuracy", "content_preservation", "motion_correlation",
                                "localisation_slot_consistency"), strict=True):
        for model in args.models:
            model_rows = [row for row in rows if row["model"] == model]
            axis.plot([row["steps"] for row in model_rows], [row[key] for row in model_rows], marker="o",
                      label=display_name(model))
        axis.set(title=SCORES[key], xlabel="optimizer steps", ylim=(0, 1.02))
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    save_figure(figure, out / "time_to_quality.png", dpi=120, tight=False)  # and the .pdf beside it
    print(f"\nwrote {out / 'time_to_quality.csv'} and {out / 'time_to_quality.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
