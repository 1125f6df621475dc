"""Run every benchmark and print its table: ``python -m benchmarks.run_all`` (or ``make bench``)."""

from __future__ import annotations

import argparse

from benchmarks import bench_data, bench_eval, bench_prior_fit, bench_train
from benchmarks.common import checked_device
from utils.cli import device_name

BENCHMARKS = {"data": bench_data.main, "train": bench_train.main, "eval": bench_eval.main,
              "prior": bench_prior_fit.main}
ON_CPU = ("data", "prior")  # benchmarks without a --device: they measure the CPU


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), nargs="*", help="run only these benchmarks")
    parser.add_argument("--device", type=device_name, default="auto",
                        help="device of the training and evaluation benchmarks (default: auto)")
    args = parser.parse_args(argv)
    checked_device(parser, args.device)
    for name, run in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n== {name} ==")
        run([] if name in ON_CPU else ["--device", args.device])


if __name__ == "__main__":
    main()
