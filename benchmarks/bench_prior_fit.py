"""Ex-post prior fit (models/fitted_prior.py): seconds and held-out likelihood of each mixture, before and now.

For each model at the demo's settings (width 16, 64x64, 10 frames), briefly trained (``--train-steps``) so
that its codes are not those of random weights, encodes ``--videos`` training videos as ``fit_prior`` does
(:func:`models.fitted_prior.prior_codes`) and ``--held-out`` test videos, then fits every mixture the demo
fits (content; the Baseline's per-frame motion; the object paths) with

* ``now``: :func:`models.fitted_prior.fit_gaussian_mixture`;
* ``before``: the EM as it was before issue 32 (commit 9854a39, kept below as :func:`fit_before`), which
  formed the ``(N, K, D)`` differences of every point to every mean in every step (``--before``; the
  Baseline's two mixtures take about 2.5 min each this way on a 2-core EPYC);
* ``sklearn``: scikit-learn's ``GaussianMixture`` with the same components, steps, ridge and k-means++ start
  (a reference, when scikit-learn is installed: it is a dev requirement).

The likelihood column is the mean log-density of the held-out codes (nats per code): a faster fit that
scores lower there would be a worse prior.

    python -m benchmarks.bench_prior_fit [--models baseline lstm disentangled] [--before] [--train-steps 30]
        [--before-steps 30] [--videos 2000] [--held-out 500] [--parts content motion paths]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch

from benchmarks.common import format_table
from data import DataConfig, MovingMNIST, MovingMNISTConfig
from models import MODELS, build_model
from models.fitted_prior import (
    DEFAULT_COMPONENTS,
    DEFAULT_COVARIANCE,
    DEFAULT_STEPS,
    PATH_COMPONENTS,
    PATH_COVARIANCE,
    GaussianMixture,
    fit_gaussian_mixture,
    initial_components,
    prior_codes,
)
from training.linking import link_configs
from utils.cli import non_negative_int, positive_int

PARTS = ("content", "motion", "paths")
BATCH = 32


def fit_before(points: torch.Tensor, components: int, covariance: str, steps: int, seed: int = 0,
               regularization: float = 1e-3) -> GaussianMixture:
    """The EM of models/fitted_prior.py before issue 32 (commit 9854a39), kept to measure against: the same
    k-means++ start and updates, through ``(N, K, D)`` differences."""
    points = points.to(torch.float64)
    count, dim = points.shape
    components = max(1, min(int(components), count))
    generator = torch.Generator().manual_seed(seed)
    ridge = regularization * float(points.var(dim=0).mean()) + 1e-12
    eye = torch.eye(dim, dtype=torch.float64)
    means, scales = initial_components(points, components, covariance, generator, ridge)  # the same start
    weights = torch.full((components,), 1.0 / components, dtype=torch.float64)
    for _ in range(steps):
        centred = points[:, None, :] - means[None]  # (N, K, D)
        if covariance == "full":
            solved = torch.stack([torch.linalg.solve_triangular(scale, centred[:, k].T, upper=False).T
                                  for k, scale in enumerate(scales)], dim=1)
            log_det = 2 * torch.log(torch.diagonal(scales, dim1=-2, dim2=-1)).sum(-1)
        else:
            solved = centred / scales[None]
            log_det = 2 * torch.log(scales).sum(-1)
        log_probs = torch.log(weights)[None] - 0.5 * (solved.pow(2).sum(-1) + log_det[None]
                                                      + dim * math.log(2 * math.pi))
        responsibilities = torch.softmax(log_probs, dim=1)
        mass = responsibilities.sum(0) + 1e-10
        means = responsibilities.T @ points / mass[:, None]
        centred = points[:, None, :] - means[None]
        if covariance == "full":
            weighted = centred * responsibilities[..., None]
            covariances = torch.einsum("nkd,nke->kde", weighted, centred) / mass[:, None, None] + ridge * eye
            scales = torch.linalg.cholesky(covariances)
        else:
            scales = ((responsibilities[..., None] * centred.pow(2)).sum(0) / mass[:, None] + ridge).sqrt()
        weights = mass / mass.sum()
    return GaussianMixture(weights, means, scales, covariance)


def fit_sklearn(points: torch.Tensor, components: int, covariance: str, steps: int, seed: int = 0,
                regularization: float = 1e-3):
    """scikit-learn's ``GaussianMixture`` with our settings (absolute ridge: ours is relative to the mean
    variance; at most one component a point, as ours); ``None`` without scikit-learn."""
    try:
        from sklearn.mixture import GaussianMixture as SklearnMixture
    except ImportError:
        return None
    array = points.double().numpy()
    mixture = SklearnMixture(min(components, len(array)), covariance_type=covariance, max_iter=steps, n_init=1, tol=1e-3,
                             reg_covar=regularization * float(array.var(0).mean()) + 1e-12,
                             init_params="k-means++", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: we cap the steps as our EM does
        return mixture.fit(array)


def demo_model(name: str, train_steps: int, video_config: MovingMNISTConfig) -> torch.nn.Module:
    """The model at the demo's width on ``video_config``, trained ``train_steps`` Adam steps."""
    overrides = {"width": 16}
    model_config, _ = link_configs(name, overrides, DataConfig(video=video_config), given=overrides)
    torch.manual_seed(0)
    model = build_model(name, model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = MovingMNIST("train", BATCH * max(1, train_steps), video_config, seed=7)
    model.train()
    for step in range(train_steps):
        video = dataset.generate(range(step * BATCH, (step + 1) * BATCH))["video"]
        optimizer.zero_grad()
        model(video).loss.backward()
        optimizer.step()
    return model.eval()


def time_before(points: torch.Tensor, test: torch.Tensor, components: int, covariance: str, steps: int) -> dict:
    """``before s`` (and its held-out likelihood) of :func:`fit_before`; with ``steps`` below the default, the
    time of the default steps extrapolated from ``steps`` (each of its steps costs the same: no tolerance
    stops it), and no likelihood."""
    started = time.perf_counter()
    mixture = fit_before(points, components, covariance, steps)
    seconds = time.perf_counter() - started
    if steps >= DEFAULT_STEPS:
        return {"before s": seconds, "before held-out ll": float(mixture.log_prob(test).mean())}
    started = time.perf_counter()
    fit_before(points, components, covariance, 0)  # the k-means++ start alone
    start = time.perf_counter() - started
    return {"before s": start + (seconds - start) * DEFAULT_STEPS / max(1, steps)}


def batches(split: str, count: int, video_config: MovingMNISTConfig):
    dataset = MovingMNIST(split, count, video_config, seed=0)
    for start in range(0, count, BATCH):
        yield dataset.generate(range(start, min(count, start + BATCH)))["video"]


def run(args: argparse.Namespace) -> list[dict]:
    """One row per model and mixture."""
    video_config = MovingMNISTConfig(image_size=64, num_frames=args.frames)
    rows = []
    for name in args.models:
        model = demo_model(name, args.train_steps, video_config)
        started = time.perf_counter()
        codes = prior_codes(model, batches("train", args.videos, video_config), args.videos)
        encode = time.perf_counter() - started
        held = prior_codes(model, batches("test", args.held_out, video_config), args.held_out)
        parts = {"content": (codes.content, held.content, DEFAULT_COMPONENTS, DEFAULT_COVARIANCE),
                 "motion": (codes.motion, held.motion, DEFAULT_COMPONENTS, DEFAULT_COVARIANCE),
                 "paths": (codes.paths, held.paths, PATH_COMPONENTS, PATH_COVARIANCE)}
        first = True
        for part, (points, test, components, covariance) in parts.items():
            if points is None or part not in args.parts:
                continue
            row = {"model": name, "mixture": f"{part} ({components} {covariance})",
                   "codes": f"{points.shape[0]} x {points.shape[1]}", "encode s": encode if first else math.nan}
            first = False
            if args.before:
                row.update(time_before(points, test, components, covariance, args.before_steps))
            for label, fit in {"now": fit_gaussian_mixture, "sklearn": fit_sklearn}.items():
                started = time.perf_counter()
                mixture = fit(points, components, covariance, DEFAULT_STEPS, 0)
                seconds = time.perf_counter() - started
                if mixture is None:
                    continue
                row[f"{label} s"] = seconds
                row[f"{label} held-out ll"] = (float(mixture.score(test.numpy())) if label == "sklearn"
                                               else float(mixture.log_prob(test).mean()))
            rows.append(row)
    return rows


COLUMNS = ["model", "mixture", "codes", "encode s", "before s", "now s", "sklearn s", "before held-out ll",
           "now held-out ll", "sklearn held-out ll"]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to measure (default: all)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="mixtures to fit (default: all)")
    parser.add_argument("--before", action="store_true", help="also time the EM as it was before issue 32 (minutes)")
    parser.add_argument("--before-steps", type=positive_int, default=DEFAULT_STEPS, metavar="N",
                        help=f"EM steps of the --before fit; below {DEFAULT_STEPS} its time is extrapolated to "
                             f"{DEFAULT_STEPS} steps and its likelihood left out (default: {DEFAULT_STEPS})")
    parser.add_argument("--train-steps", type=non_negative_int, default=30, help="Adam steps before encoding (default: 30)")
    parser.add_argument("--videos", type=positive_int, default=2000, help="training videos encoded (default: 2000)")
    parser.add_argument("--held-out", type=positive_int, default=500, help="test videos scored (default: 500)")
    parser.add_argument("--frames", type=positive_int, default=10, help="frames per video (default: 10, the demo's)")
    args = parser.parse_args(argv)
    rows = run(args)
    extrapolated = (f" (before: {args.before_steps} steps timed, extrapolated to {DEFAULT_STEPS})"
                    if args.before and args.before_steps < DEFAULT_STEPS else "")
    print(f"Ex-post prior fit, {DEFAULT_STEPS} EM steps{extrapolated}, {args.videos} training videos of {args.frames} frames "
          f"(held-out: {args.held_out}), models trained {args.train_steps} steps, {torch.get_num_threads()} threads; "
          "held-out ll: mean log-density of the held-out codes, nats per code")
    print(format_table(rows, columns=COLUMNS))
    return rows


if __name__ == "__main__":
    main()
