"""Run every benchmark and print its table: ``python -m benchmarks.run_all`` (or ``make bench``)."""

from __future__ import annotations

import argparse

from benchmarks import bench_data

BENCHMARKS = {"data": bench_data.main}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), nargs="*", help="run only these benchmarks")
    args = parser.parse_args(argv)
    for name, run in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n== {name} ==")
        run([])


if __name__ == "__main__":
    main()
