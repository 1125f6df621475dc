"""The leakage ablation of docs/results.md in one command: the design document's Disentangled VAE's options.

    python ablation.py            # what `make ablation` runs; --dry-run prints the commands instead

Trains the Disentangled VAE with ``architecture=average`` six times at the old demo's settings (4.5 minutes
of wall-clock each, bf16 autocast): the default (seeds 42 and 43), ``content_pooling=global``,
``motion_blur=5``, both, and ``--motion-dim 16``; evaluates each run with ``evaluate.py`` on 500 test
videos; and writes the side-by-side tables with ``summarize.py`` (docs/results.md has them).
Each step is the same as the ``python -m training.train`` / ``python evaluate.py`` / ``python summarize.py``
command it prints, run in this process. A run folder that already exists is refused by the training
command; ``--train-args --overwrite`` starts such runs over.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import evaluate
import summarize
from models.checkpoint import BEST
from training import train

PROG = "ablation.py"
# The old demo's settings (2026-11-29) with the design document's architecture, shared by every run.
COMMON = (
    "--model disentangled --epochs 100 --lr 1e-3 --beta 1 --width 16 --frames 10 --train-size 1024 "
    "--val-size 256 --test-size 500 --lstm-hidden 128 --model-option prior_hidden=128 "
    "--model-option architecture=average --max-minutes 4.5 --amp"
)
RUNS = {  # run name: what it changes
    "dis_default": "",
    "dis_default_seed43": "--seed 43",
    "dis_pool": "--model-option content_pooling=global",
    "dis_blur": "--model-option motion_blur=5",
    "dis_pool_blur": "--model-option content_pooling=global --model-option motion_blur=5",
    "dis_motion16": "--motion-dim 16",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint-dir", default="checkpoints/ablation", metavar="DIR",
                        help="parent of the six run folders (default: %(default)s)")
    parser.add_argument("--out", default="ablation_results", metavar="DIR",
                        help="evaluation files and tables (default: %(default)s)")
    parser.add_argument("--test-size", type=int, default=500, metavar="N",
                        help="test videos evaluated per run (default: %(default)s)")
    parser.add_argument("--train-args", default="", metavar="'ARGS'",
                        help="options appended to every training command (they win over the ablation's)")
    parser.add_argument("--eval-args", default="", metavar="'ARGS'",
                        help="options appended to every evaluate.py command, e.g. '--no-judges'")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return parser


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(program, argv)`` of every step, in order: six trainings, six evaluations, the summary."""
    steps = []
    for name, change in RUNS.items():
        argv = ["--name", name, "--checkpoint-dir", args.checkpoint_dir, *shlex.split(COMMON), *shlex.split(change)]
        steps.append(("python -m training.train", argv + shlex.split(args.train_args)))
    for name in RUNS:
        argv = ["--checkpoint", f"{args.checkpoint_dir}/{name}/{BEST}", "--test-size", str(args.test_size),
                "--max-samples", str(args.test_size), "--save_dir", args.out]
        steps.append(("python evaluate.py", argv + shlex.split(args.eval_args)))
    steps.append(("python summarize.py", [args.out]))
    return steps


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    entry_points = {"python -m training.train": train.main, "python evaluate.py": evaluate.main,
                    "python summarize.py": summarize.main}
    steps = commands(args)
    for number, (program, step_argv) in enumerate(steps, start=1):
        command = f"{program} {shlex.join(step_argv)}"
        if args.dry_run:
            print(command)
            continue
        print(f"[ablation {number}/{len(steps)}] {command}", flush=True)
        status = entry_points[program](step_argv)
        if status != 0:
            print(f"{PROG}: error: step {number} failed (exit status {status}): {command}", file=sys.stderr)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
