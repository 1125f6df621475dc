"""Fit the ex-post prior of a trained checkpoint and store it inside the checkpoint (:mod:`models.fitted_prior`).

    python -m training.fit_prior --checkpoint checkpoints/NAME/best_model.pt [--components 200] [--temperature 0.4]
    python -m training.fit_prior --checkpoint checkpoints/NAME      # a run folder: best_model.pt and last.pt

Training does this itself when a run finishes (completed or out of its time budget), for ``best_model.pt``
and ``last.pt``, so this command is for checkpoints written before that (or before the per-object content
prior, format 2, the per-object path prior, format 3, the content temperature, format 4, and the path
dynamics that predictions roll forward, format 5, fitted to refined paths, format 6), or to refit with other
options.
The prior is fitted to the posterior means of the checkpoint's own training videos (its data config's
training split, the first ``--videos`` of them), written back atomically, and used from then on by
``evaluate.py --checkpoint X`` and ``model.sample``. It holds the run folder's lock, as training does (a
second process on the folder is refused in one line naming the first), reads and checks every checkpoint
before it writes any, and stores a prior only beside the weights it was fitted to. A bad checkpoint or
option, or a folder in use, prints one line on stderr and exits with status 2; Ctrl-C one line and 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from data import DataConfig, MovingMNIST, data_loaders
from models.checkpoint import (
    BEST,
    LAST,
    CheckpointError,
    RunRecord,
    load_checkpoint,
    load_model,
    save_fitted_prior,
    weights_sha256,
)
from models.fitted_prior import (
    COVARIANCES,
    DEFAULT_COMPONENTS,
    DEFAULT_CONTENT_TEMPERATURE,
    DEFAULT_COVARIANCE,
    DEFAULT_STEPS,
    DEFAULT_VIDEOS,
    DYNAMICS_REFINE_STEPS,
    FORMAT_VERSION,
    MAX_CONTENT_TEMPERATURE,
    PATH_COMPONENTS,
    FittedPrior,
    fit_prior,
)
from training.run_folder.lock import RunFolderBusy
from training.run_folder.prepare import lock_existing_run_folder
from utils.cli import device_name, non_negative_int, number, positive_int
from utils.devices import resolve_device

PROG = "python -m training.fit_prior"
PATH_VIDEO_LENGTH = 2  # the path dynamics are fitted to training videos this many times the training length
PATH_VIDEO_BATCH = 64


class LongerTrainingVideos:
    """The first ``count`` training videos of a generated dataset, :data:`PATH_VIDEO_LENGTH` times as long
    (video i starts as training video i: the same split, seed and digits), in batches; iterable again.
    The path dynamics are fitted to them (:mod:`models.objects.path_dynamics`): longer paths hold more bounces."""

    def __init__(self, dataset: MovingMNIST, count: int) -> None:
        self.count = min(int(count), len(dataset))
        self.videos = dataset.with_frames(PATH_VIDEO_LENGTH * dataset.config.num_frames, self.count)

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, self.count, PATH_VIDEO_BATCH):
            yield self.videos.generate(range(start, min(start + PATH_VIDEO_BATCH, self.count)))


def _with_path_videos(loader: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``path_videos``: the loader's videos made longer where they are generated (a video file's
    are as long as they are: its training paths are then used); an explicit ``path_videos`` is kept."""
    dataset = getattr(loader, "dataset", None)
    if "path_videos" in options or not isinstance(dataset, MovingMNIST):
        return options
    return {**options, "path_videos": LongerTrainingVideos(dataset, options.get("max_videos", DEFAULT_VIDEOS))}


def fit_checkpoint_prior(path: str | os.PathLike, loader: Any, device: str | torch.device = "cpu",
                         **options: Any) -> FittedPrior:
    """Fit the prior of the checkpoint at ``path`` to ``loader``'s videos and store it in the checkpoint.

    Args:
        path: the checkpoint file.
        loader: yields video batches (the run's training loader).
        device: where the encoder runs.
        **options: ``max_videos``, ``components``, ``covariance``, ``steps``, ``seed``, ``log`` (one line per
            part of the fit, as it finishes) of :func:`models.fitted_prior.fit_prior`; its ``path_videos``
            default to the loader's training videos made twice as long where they are generated
            (:class:`LongerTrainingVideos`).

    Returns:
        The prior, as stored.

    Raises:
        CheckpointError: the file is unusable, or holds other weights by the time the prior is stored (it is
            then not stored: a prior is only ever stored beside the weights it was fitted to).
    """
    model, checkpoint = load_model(path, device, fitted_prior=False)
    fitted_to = weights_sha256(RunRecord.of(checkpoint).model_state)
    prior = fit_prior(model, loader, **_with_path_videos(loader, options))
    save_fitted_prior(path, prior, fitted_to)
    return prior


def fit_run_priors(run_dir: str | os.PathLike, loader: Any, device: str | torch.device = "cpu",
                   **options: Any) -> dict[Path, FittedPrior]:
    """Fit and store the prior of a run folder's ``best_model.pt`` and ``last.pt`` (those that exist); where
    both hold the same weights (the last epoch was the best), the one fit is stored in both. Every file is
    read and checked before any is written, so an unusable one stops it with nothing written.

    Returns:
        ``{checkpoint written: the prior stored in it}``.
    """
    models = {}  # every checkpoint's model and weights hash, before anything is written
    for name in (BEST, LAST):
        path = Path(run_dir) / name
        if path.is_file():
            model, checkpoint = load_model(path, device, fitted_prior=False)
            models[path] = (model, weights_sha256(RunRecord.of(checkpoint).model_state))
    written: dict[Path, FittedPrior] = {}
    fitted: dict[str, FittedPrior] = {}  # the prior fitted to each weights hash so far
    for path, (model, fitted_to) in models.items():
        if fitted_to not in fitted:
            if options.get("log") is not None:
                options["log"](f"ex-post prior of {path}:")
            fitted[fitted_to] = fit_prior(model, loader, **_with_path_videos(loader, options))
        save_fitted_prior(path, fitted[fitted_to], fitted_to)
        written[path] = fitted[fitted_to]
    return written


def stale_prior(path: str | os.PathLike) -> str | None:
    """Why the checkpoint's ex-post prior should be fitted again, or None when it is current: it has none,
    or one of an older format (fitted by an older rule: format 1 fitted the whole content code as one unit)."""
    stored = RunRecord.of(load_checkpoint(path)).fitted_prior
    if stored is None:
        return "it has no ex-post prior"
    if stored.get("format_version") != FORMAT_VERSION:
        return f"its ex-post prior is of format {stored.get('format_version')}, fitted by an older rule"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="the checkpoint file to add the prior to, or a run folder (its best_model.pt and "
                             "last.pt, fitted once when they hold the same weights)")
    parser.add_argument("--videos", type=positive_int, default=DEFAULT_VIDEOS, metavar="N",
                        help=f"training videos whose codes are fitted (default: {DEFAULT_VIDEOS})")
    parser.add_argument("--components", type=positive_int, default=DEFAULT_COMPONENTS, metavar="K",
                        help=f"components of the content mixture, and of the per-frame motion mixture of a "
                             f"model without a learned motion prior (default: {DEFAULT_COMPONENTS})")
    parser.add_argument("--path-components", type=positive_int, default=PATH_COMPONENTS, metavar="K",
                        help=f"components of the objects' path mixture (default: {PATH_COMPONENTS})")
    parser.add_argument("--covariance", choices=COVARIANCES, default=DEFAULT_COVARIANCE,
                        help=f"covariance of each component of the content mixture and of a per-frame motion "
                             f"mixture; the paths always take full ones (default: {DEFAULT_COVARIANCE})")
    parser.add_argument("--whole-content", action="store_true",
                        help="fit the content code as one unit even where it is one code per object (the "
                             "object architectures); the default fits one mixture to every object's code")
    parser.add_argument("--learned-motion", action="store_true",
                        help="keep the model's learned motion prior even where its motion code places objects "
                             "(the object architectures); the default fits one full-covariance mixture of "
                             "--path-components components to every object's path. --covariance does not "
                             "change the paths' covariance")
    parser.add_argument("--temperature", type=number(0.0, inclusive=True, maximum=MAX_CONTENT_TEMPERATURE),
                        default=DEFAULT_CONTENT_TEMPERATURE, metavar="T",
                        help=f"temperature of the content draws, stored with the prior: each draw is a component's "
                             f"mean plus T times its spread (1: the fitted mixture itself; 0: its component "
                             f"means; from 0 to {MAX_CONTENT_TEMPERATURE:g}); the motion is drawn at 1 (default: "
                             f"{DEFAULT_CONTENT_TEMPERATURE})")
    parser.add_argument("--dynamics-refine-steps", type=non_negative_int, default=DYNAMICS_REFINE_STEPS,
                        metavar="N",
                        help=f"steps of 0.5 px by which the object models refine their training paths before the "
                             f"path dynamics are fitted to them (0: the encoder's positions, the rule of format 5; "
                             f"models that place no objects fit no dynamics; default: {DYNAMICS_REFINE_STEPS})")
    parser.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, metavar="N",
                        help=f"EM steps (default: {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the EM start (default: 0)")
    parser.add_argument("--device", type=device_name, default="auto", help="where the encoder runs (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="videos per batch")
    args = parser.parse_args(argv)
    lock = None
    try:
        device = resolve_device(args.device)
        first = Path(args.checkpoint)
        run_dir = first if first.is_dir() else None
        # The run folder's lock, as training holds it: no run writes new weights while its prior is fitted.
        lock = lock_existing_run_folder(first if run_dir is not None else first.parent)
        if run_dir is not None:
            found = [run_dir / name for name in (BEST, LAST) if (run_dir / name).is_file()]
            if not found:
                raise FileNotFoundError(f"the run folder {run_dir} holds neither {BEST} nor {LAST}")
            first = found[0]
        _, checkpoint = load_model(first, device, fitted_prior=False)
        image_size = RunRecord.of(checkpoint).model_config.get("image_size")
        data_config = DataConfig.from_checkpoint(checkpoint, image_size=image_size)
        loader = data_loaders(data_config, args.batch_size)[0]
        options = dict(max_videos=args.videos, components=args.components, covariance=args.covariance,
                       steps=args.steps, seed=args.seed, per_object=not args.whole_content,
                       object_paths=not args.learned_motion, path_components=args.path_components,
                       content_temperature=args.temperature, dynamics_refine_steps=args.dynamics_refine_steps,
                       log=lambda line: print(line, file=sys.stderr, flush=True))  # progress, on stderr
        if run_dir is not None:
            written = fit_run_priors(run_dir, loader, device, **options)
        else:
            written = {first: fit_checkpoint_prior(first, loader, device, **options)}
    except (FileNotFoundError, CheckpointError, ValueError, OSError, RunFolderBusy) as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: stopped at once; every checkpoint is whole (with the prior stored before the "
              "stop, or the one it had)", file=sys.stderr)
        return 130
    finally:
        if lock is not None:
            lock.release()
    for path, prior in written.items():
        described = prior.describe()
        print(f"{path}: content prior: {described['content']}")
        if described["motion"] is not None:
            print(f"{path}: motion prior: {described['motion']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
