"""Evaluation benchmark: the metric suite of ``evaluate.py`` on 1,000 test videos, judges excluded and included.

For each model at its defaults (untrained weights: the cost does not depend on them), times
``evaluation.reconstruction.metrics.compare_models`` (reconstruction metrics, parameters, forward and generation time)
and ``evaluation.disentanglement.compute_all_disentanglement_metrics`` without judges, then with the
cached judges (trained first if the cache is empty; that training is timed on its own row). Figures are
not included: they are a few dozen decodes.

    python -m benchmarks.bench_eval [--models ...] [--videos 1000] [--device auto] [--no-judges]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import checked_device, format_table
from data import get_moving_mnist_dataloaders
from evaluation.disentanglement import compute_all_disentanglement_metrics
from evaluation.judges.cache import get_judges
from evaluation.reconstruction.metrics import compare_models
from models import MODELS, build_model
from utils.cli import device_name, positive_int
from utils.devices import resolve_device


def run(args: argparse.Namespace) -> list[dict]:
    """One row per model (and one for judge training when it happens)."""
    device = resolve_device(args.device)
    _, _, test_loader = get_moving_mnist_dataloaders(
        batch_size=args.batch_size, train_size=args.batch_size, val_size=args.batch_size, test_size=args.videos
    )
    rows = []
    judges = None
    if not args.no_judges:
        started = time.perf_counter()
        judges = get_judges(test_loader.dataset.config, device, progress=False)
        if not judges.accuracy.get("cached"):
            rows.append({"model": "(judges: training, once per data config)", "judges trained s":
                         time.perf_counter() - started})
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name).to(device).eval()
        started = time.perf_counter()
        compare_models({name: model}, test_loader, device, progress=False)
        reconstruction = time.perf_counter() - started
        started = time.perf_counter()
        compute_all_disentanglement_metrics(model, test_loader, device, max_samples=args.videos, judges=None)
        codes = time.perf_counter() - started
        row = {"model": name, "reconstruction s": reconstruction, "disentanglement s": codes,
               "suite without judges s": reconstruction + codes}
        if judges is not None:
            started = time.perf_counter()
            compute_all_disentanglement_metrics(model, test_loader, device, max_samples=args.videos, judges=judges)
            judged = time.perf_counter() - started
            row["suite with judges s"] = reconstruction + judged
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to measure (default: all)")
    parser.add_argument("--videos", type=positive_int, default=1000, help="test videos (default: 1000)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="videos per batch (default: 32)")
    parser.add_argument("--device", type=device_name, default="auto", help="device (default: auto)")
    parser.add_argument("--no-judges", action="store_true", help="skip the judged metrics")
    args = parser.parse_args(argv)
    device = checked_device(parser, args.device)
    rows = run(args)
    print(f"Metric suite on {args.videos} test videos (20 frames of 64x64), device {device}, "
          f"{torch.get_num_threads()} threads")
    print(format_table(rows, columns=["model", "reconstruction s", "disentanglement s", "suite without judges s",
                                      "suite with judges s", "judges trained s"]))
    return rows


if __name__ == "__main__":
    main()
