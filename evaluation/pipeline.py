"""Evaluate one trained model from its checkpoint alone: :class:`EvalConfig` and :func:`evaluate`.

    from evaluation.pipeline import EvalConfig, evaluate
    result = evaluate("checkpoints/disentangled_vae/best_model.pt", EvalConfig(save_dir="eval_results"))
    result.document["disentanglement"]["swap_quality"]

The model is rebuilt from the checkpoint (:func:`models.checkpoint.load_model`), the test set from the
checkpoint's data config (the same fixed test videos training never saw), and every output is named after
the checkpoint's experiment: ``NAME_metrics.json`` (written atomically), ``NAME_reconstructions.png`` and the
other figures of :mod:`evaluation.reporting.figures` (:data:`OUTPUTS` lists them). ``evaluate.py`` is the command line
over this module: its options are the fields of :class:`EvalConfig`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import numbers
import platform
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import PIL
import torch

from data import DataConfig, VideoFileError, get_standard_test_loader, read_video_file
from data.mnist import CLASS_NAMES
from evaluation.disentanglement import compute_all_disentanglement_metrics
from evaluation.generation import compute_generation_metrics
from evaluation.judges.cache import get_judges
from evaluation.judges.remembered import RememberedReadings
from evaluation.metric_names import NEEDS_FACTORS, NO_FACTORS, RECONSTRUCTION_OUTPUT_KEYS
from evaluation.pixel_generation import compute_pixel_generation_metrics
from evaluation.prediction import (
    DEFAULT_SAMPLES,
    HORIZON,
    OBSERVED_FRAMES,
    PREDICTED_FRAMES,
    compute_prediction_metrics,
)
from evaluation.reconstruction.metrics import compare_models, reconstruction_metrics
from evaluation.reporting.figures import make_figures
from evaluation.trained_runs import checkpoint_data_config, test_loader
from models.checkpoint import CheckpointError, Key, RunRecord, library_versions, load_model, weights_sha256
from utils.atomic import atomic_write_json
from utils.devices import resolve_device
from utils.provenance import collect as provenance

STANDARD_IMAGE_SIZE = 64  # mnist_test_seq.npy has 64x64 frames
MIN_TEST_VIDEOS = 5  # the disentanglement probes hold some videos out

OUTPUTS = (
    ("metrics.json", "reconstruction metrics, cost, disentanglement and generation metrics, metadata"),
    ("reconstructions.png", "test videos (truth) above their reconstructions, one frame per column"),
    ("samples.png", "random videos from the prior (seeded)"),
    ("interpolation.png", "latent interpolation between two test videos: content, then motion"),
    ("interpolation.gif", "the interpolation, animated: content row above motion row"),
    ("content_swap.png", "swap matrix: content from the row, motion from the column"),
    ("motion_swap.png", "swaps frame by frame, both directions, for pairs of test videos"),
    ("reconstructions.gif", "animated truth (top row) and reconstructions (bottom row)"),
    ("samples.gif", "animated samples"),
    ("samples_vs_real.png", "samples from the prior beside real test videos"),
    ("factor_grid.png", "fix one factor, resample the other: rows share content, columns share motion"),
    ("factor_grid.gif", "the factor grid, animated"),
    ("swaps.gif", "the animated swap matrix"),
)


class EvaluationError(ValueError):
    """A problem with the inputs of an evaluation, reported as one line."""


def _check_int(option: str, value: Any, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise EvaluationError(f"{option} must be at least {minimum}{why}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How a checkpoint is evaluated (each field is the ``evaluate.py`` option of the same name).

    Attributes:
        device: ``"auto"`` (CUDA, then MPS, then the CPU), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
        num_samples: test videos to reconstruct and prior samples to draw in the figures.
        save_dir: output folder, created if missing.
        test_size: test videos for the metrics (the first of the checkpoint's fixed test set; at least 5).
        batch_size: videos per batch.
        seed: data seed (which test videos) and seed of the prior samples; None keeps the checkpoint's.
        max_samples: test videos for the disentanglement metrics (at least 5, for the probes).
        judges: score swaps and samples with the trained judges (cached per data config; the first
            evaluation of a data config trains them, which is slow); False leaves the judged metrics NaN.
        max_batches: stop the reconstruction metrics after this many batches; None for the whole test set.
        interpolation_steps: points on each interpolation path, both ends included (at least 2).
        standard_test_file: also score reconstructions on the standard ``mnist_test_seq.npy`` (64x64 models).
        mnist_root: folder of the dataset's idx files; None keeps the checkpoint's.
        dataset: ``"mnist"`` or ``"fashion"``; None keeps the checkpoint's.
        video_file: evaluate on the test split of this ``.npy`` / ``.npz`` array of videos (no ground-truth
            factors: the metrics that need them are listed as not available); None keeps the checkpoint's.
        video_layout: the layout of ``video_file``; None infers it (or keeps the checkpoint's for its file).
        name: prefix of the output files; None uses the checkpoint's experiment name.
        fps: frames per second of the GIFs.
        prediction_samples: N of the 10 -> 10 prediction's best-of-N scores (0: deterministic only).
        prediction_videos: videos of the long-horizon prediction (0 skips it; it is the slow part).
        prediction_horizon: the long horizon's last frame (10 observed, the rest predicted; more than 10).
        prediction_refine_steps: steps of the object models' ``refine_positions`` before each prediction; None
            keeps the model's default (``models.disentangled_vae.REFINE_STEPS``). No effect on models without
            object positions (logged).
    """

    device: str = "auto"
    num_samples: int = 5
    save_dir: str = "./eval_results"
    test_size: int = 1000
    batch_size: int = 32
    seed: int | None = None
    max_samples: int = 1000
    judges: bool = True
    max_batches: int | None = None
    interpolation_steps: int = 7
    standard_test_file: str | None = None
    mnist_root: str | None = None
    dataset: str | None = None
    video_file: str | None = None
    video_layout: str | None = None
    name: str | None = None
    fps: float = 8.0
    prediction_samples: int = DEFAULT_SAMPLES
    prediction_videos: int = 100
    prediction_horizon: int = HORIZON
    prediction_refine_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_samples", "batch_size"):
            _check_int(f"--{name.replace('_', '-')}", getattr(self, name), 1)
        _check_int("--test-size", self.test_size, MIN_TEST_VIDEOS, " (the disentanglement probes need them)")
        if self.max_batches is not None:
            _check_int("--max-batches", self.max_batches, 1)
        if self.seed is not None:
            _check_int("--seed", self.seed, 0)
        _check_int("--interpolation-steps", self.interpolation_steps, 2)
        _check_int("--prediction-samples", self.prediction_samples, 0)
        _check_int("--prediction-videos", self.prediction_videos, 0)
        _check_int("--prediction-horizon", self.prediction_horizon, OBSERVED_FRAMES + 1,
                   f" ({OBSERVED_FRAMES} frames are observed)")
        if self.prediction_refine_steps is not None:
            _check_int("--prediction-refine-steps", self.prediction_refine_steps, 0)
        _check_int("--max-samples", self.max_samples, MIN_TEST_VIDEOS, " (the disentanglement probes need them)")
        fps = self.fps
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps > 0):
            raise EvaluationError(f"--fps must be a positive number, got {fps!r}")


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` produced: the metrics document (as written to ``metrics_path``) and every file."""

    name: str
    document: dict[str, Any]
    metrics_path: Path
    written: list[Path]
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # each part's wall-clock time


def log(message: str) -> None:
    print(f"[evaluate] {message}", flush=True)


def one_line(error: BaseException) -> str:
    """An error's message on one line (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__


def write_failure(error: OSError, save_dir: str | Path) -> str:
    """The one line for an output that could not be written: the file, the system's reason, what is kept."""
    what = error.filename or f"the outputs in {save_dir}"
    return (f"cannot write {what}: {error.strerror or one_line(error)}; every file already in {save_dir} is "
            "whole (each is written to a temporary file and renamed); free space (or fix the folder) and run "
            "the evaluation again")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (a checkpoint's identity, wherever it is copied)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_jsonable(value: Any) -> Any:
    """Plain JSON types; non-finite floats stay floats (``json`` writes ``NaN`` / ``Infinity``)."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return cleaned or "model"


def evaluation_name(checkpoint: dict[str, Any], checkpoint_path: str | Path, name: str | None = None) -> str:
    """The NAME of a checkpoint's ``NAME_metrics.json`` and figures: ``name`` when given (``--name``), else the
    run's experiment name as the checkpoint stores it, else the name of the folder it is in."""
    return _safe_name(name or RunRecord.of(checkpoint).experiment_name or Path(checkpoint_path).resolve().parent.name)


# ----------------------------------------------------------------------------------------------------
# Set-up: everything that can fail because of the inputs, before any long computation


@dataclasses.dataclass
class _Setup:
    checkpoint_path: str
    config: EvalConfig
    device: torch.device
    model: torch.nn.Module
    checkpoint: dict[str, Any]
    name: str
    data_config: DataConfig
    test_loader: Any
    standard_loader: Any
    standard_skip: str | None
    save_dir: Path
    judge_accuracy: dict[str, Any] | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # each part's, as _timed measured it


def _prepare(checkpoint_path: str, config: EvalConfig) -> _Setup:
    """Load the model and build the loaders.

    Raises:
        EvaluationError, FileNotFoundError, CheckpointError, ValueError: with a one-line message.
    """
    device = resolve_device(config.device)
    log(f"loading {checkpoint_path} on {device}")
    try:
        model, checkpoint = load_model(checkpoint_path, device)
    except (RuntimeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"cannot load {checkpoint_path}: {one_line(error)}") from error
    name = evaluation_name(checkpoint, checkpoint_path, config.name)
    if config.prediction_refine_steps is not None:
        if getattr(model, "object_slots", 0):
            model.prediction_refine_steps = config.prediction_refine_steps
        else:
            log(f"note: --prediction-refine-steps has no effect on {type(model).__name__}: it places no objects "
                "whose positions a prediction could refine")
    ignored = DataConfig.unknown_keys(checkpoint)
    if ignored:
        log(f"note: ignoring data config keys this version does not know: {ignored}")
    data_config = checkpoint_data_config(checkpoint, model, test_size=config.test_size, seed=config.seed,
                                         mnist_root=config.mnist_root, dataset=config.dataset)
    if config.video_file is not None or data_config.video_file is not None:
        data_config = _video_file_data_config(data_config, config, model, checkpoint)
    try:
        loader = test_loader(data_config, config.batch_size)
    except FileNotFoundError as error:
        option = "--mnist-root" if data_config.dataset == "mnist" else "--image-root"
        raise EvaluationError(f"{one_line(error)} (the checkpoint's mnist_root; override with {option})") from error

    standard_loader, standard_skip = None, None
    if config.standard_test_file is not None:
        standard_loader = get_standard_test_loader(config.standard_test_file, config.batch_size)
        log(f"standard test file {standard_loader.dataset.videos.describe()}")
        frame_size = standard_loader.dataset.image_size
        if model.config.image_size != STANDARD_IMAGE_SIZE or frame_size != model.config.image_size:
            standard_skip = (
                f"the model takes {model.config.image_size}x{model.config.image_size} frames; "
                f"{config.standard_test_file} has {frame_size}x{frame_size} frames (the standard file is "
                f"{STANDARD_IMAGE_SIZE}x{STANDARD_IMAGE_SIZE})"
            )
            standard_loader = None

    save_dir = Path(config.save_dir)
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"cannot create the output folder {save_dir}: {one_line(error)}") from error
    return _Setup(str(checkpoint_path), config, device, model, checkpoint, name, data_config, loader,
                  standard_loader, standard_skip, save_dir)


def _video_file_data_config(data_config: DataConfig, config: EvalConfig, model: torch.nn.Module,
                            checkpoint: Mapping[str, Any]) -> DataConfig:
    """The data config of an evaluation on a video file: the checkpoint's own file keeps its test split (at
    most the test videos training held out); another file gives the first ``test_size`` videos of its
    seeded permutation (the model never saw any of them).

    Raises:
        EvaluationError: the file cannot be used or its frames are not the model's.
    """
    path = config.video_file if config.video_file is not None else data_config.video_file
    trained_on = (checkpoint.get(Key.DATA_CONFIG) or {}).get("video_file")
    own = trained_on is not None and Path(path).resolve() == Path(trained_on).resolve()
    layout = config.video_layout if config.video_layout is not None else (data_config.video_layout if own else None)
    try:
        videos = read_video_file(path, layout)
    except VideoFileError as error:
        raise EvaluationError(f"--video-file: {one_line(error)}") from None
    log(f"video file {videos.describe()}")
    if videos.image_size != model.config.image_size:
        raise EvaluationError(f"--video-file: {path} has {videos.image_size}x{videos.image_size} frames but the "
                              f"model takes {model.config.image_size}x{model.config.image_size}")
    limit = int(checkpoint[Key.DATA_CONFIG].get("test_size", videos.num_videos)) if own else videos.num_videos
    test_size = min(config.test_size, limit)
    if test_size < config.test_size:
        log(f"note: --test-size {config.test_size} is more than the {limit} test videos of {path}"
            f"{' that training held out' if own else ''}; using {test_size}")
    if test_size < 2:
        raise EvaluationError(f"--video-file: {path} gives {test_size} test video(s); the evaluation needs 2")
    log(f"test split: the first {test_size} videos of a permutation of the file seeded by {data_config.seed}"
        f"{' (the split training held out)' if own else ''}")
    return dataclasses.replace(
        data_config, video_file=str(path), video_layout=videos.layout, test_size=test_size,
        video=dataclasses.replace(data_config.video, num_frames=videos.num_frames, image_size=videos.image_size,
                                  digit_size=None))


# ----------------------------------------------------------------------------------------------------
# Metrics


def _timed(what: str, function: Callable[[], Any], seconds: dict[str, float] | None = None, part: str = "") -> Any:
    """``function()``, logged before and after with its seconds (also stored as ``seconds[part]``)."""
    log(f"{what} ...")
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    log(f"{what}: done in {elapsed:.1f} s")
    if seconds is not None:
        seconds[part or what] = elapsed
    return result


def data_description(data_config: DataConfig) -> dict[str, Any]:
    """What the evaluated videos are: ``name`` (mnist, fashion or video_file), ``title`` (for reports and
    figure titles), ``class_names`` (None without ground-truth factors) and ``has_factors``."""
    if data_config.video_file is not None:
        return {"name": "video_file", "title": data_config.title,
                "class_names": None, "has_factors": False, "video_file": data_config.video_file,
                "video_layout": data_config.video_layout,
                "split": f"test videos: the first {data_config.test_size} of a permutation of the file seeded by "
                         f"{data_config.seed} (training takes validation, then training videos, after them)"}
    return {"name": data_config.dataset, "title": data_config.title,
            "class_names": list(CLASS_NAMES[data_config.dataset]), "has_factors": True}


def _factor_free_metrics(setup: _Setup, metrics: dict[str, Any]) -> dict[str, Any]:
    """What data without ground-truth factors allows beside reconstruction and cost: the label-free
    generation metrics, and the list of every metric that cannot be computed (once, with the reason)."""
    config = setup.config
    log(f"no ground-truth factors in {setup.data_config.video_file}: no judges, probes, SAP, MIG or judged "
        f"swaps; {len(NEEDS_FACTORS)} metrics are listed as not available")
    metrics["pixel_generation"] = _timed(
        "label-free generation metrics (pixel statistics of samples and conditional modes against real test "
        "videos)",
        lambda: compute_pixel_generation_metrics(setup.model, setup.test_loader, setup.device,
                                                 max_videos=config.max_samples, seed=setup.data_config.seed),
        setup.seconds, "generation",
    )
    describe = getattr(setup.model, "prior_description", None)
    metrics["pixel_generation"]["prior"] = describe() if describe is not None else None
    metrics["not_available"] = {
        "reason": NO_FACTORS, "metrics": [f"{metric.section}.{metric.key}" for metric in NEEDS_FACTORS],
        # label-free metrics this test set is too small for: each with its own reason
        "other": {f"pixel_generation.{key}": why for key, why in metrics["pixel_generation"].pop("unavailable").items()},
    }
    metrics["not_available"]["other"].update(_factor_free_prediction(setup, metrics))
    for entry, why in metrics["not_available"]["other"].items():
        log(f"  {entry}: {why}")
    return metrics


def _factor_free_prediction(setup: _Setup, metrics: dict[str, Any]) -> dict[str, str]:
    """The 10 -> 10 prediction table on the video file's own test videos, when they are long enough (into
    ``metrics["prediction"]``, without the judged long horizon); returns what could not be computed, and why."""
    needed = OBSERVED_FRAMES + PREDICTED_FRAMES
    frames = setup.test_loader.dataset.videos.num_frames
    if frames < needed:
        return {"prediction": f"the videos have {frames} frames, fewer than the {OBSERVED_FRAMES} observed + "
                              f"{PREDICTED_FRAMES} predicted of the prediction protocol"}
    video_file = setup.data_config.video_file
    section = _timed(
        f"prediction ({OBSERVED_FRAMES} -> {PREDICTED_FRAMES} on the test videos of {video_file})",
        lambda: compute_prediction_metrics(
            setup.model, None, None, setup.device, num_videos=len(setup.test_loader.dataset),
            batch_size=setup.config.batch_size, samples=setup.config.prediction_samples or None, long_videos=0,
            standard_loader=setup.test_loader, standard_path=str(video_file),
            reconstruction_mse_per_frame=metrics["reconstruction"].get("mse_per_frame", math.nan), judged=False,
            log=log),
        setup.seconds, "prediction",
    )
    section["test_set"] = {"kind": "video_file", "path": str(video_file), "num_videos": section["num_videos"],
                           "words": f"the test videos of {video_file}, their first {needed} frames"}
    metrics["prediction"] = section
    return {"prediction.identity_kept_by_window": NO_FACTORS, "prediction.long_horizon": NO_FACTORS}


def _compute_metrics(setup: _Setup) -> dict[str, Any]:
    """Reconstruction metrics, cost, disentanglement metrics and (optionally) the standard test file."""
    config, device, model = setup.config, setup.device, setup.model
    progress = sys.stderr.isatty()
    # compare_models runs reconstruction_metrics over the loader and adds the cost; one pass gives both.
    compared = _timed(
        "reconstruction metrics and cost",
        lambda: compare_models(
            {setup.name: model}, setup.test_loader, device, max_batches=config.max_batches, progress=progress
        )[setup.name],
        setup.seconds, "reconstruction",
    )
    reconstruction = {key: compared[key] for key in RECONSTRUCTION_OUTPUT_KEYS if key in compared}
    cost = {key: value for key, value in compared.items() if key not in reconstruction}
    log(
        "  mse {mse:.6f}  psnr {psnr:.2f} dB  ssim {ssim:.4f}  temporal consistency "
        "{temporal_consistency:.6f}  ({num_videos} videos)".format(**reconstruction)
    )
    log(
        f"  {cost['trainable_parameters']:,} trainable parameters, forward {cost['forward_time_ms']:.1f} ms, "
        f"generation {cost['generation_time_ms']:.1f} ms (batch of {cost.get('timed_batch_size', '?')})"
    )

    if not setup.data_config.has_factors:
        return _standard_file_metrics(setup, _factor_free_metrics(setup, {"reconstruction": reconstruction,
                                                                            "cost": cost}))
    judges = None
    if config.judges:
        # Built here rather than with judges="auto" so that they read the checkpoint's digit source.
        dataset = setup.test_loader.dataset
        judges = _timed(
            "judges (cached per data config; the first run for a data config trains them, which is slow)",
            lambda: get_judges(dataset.config, device, digits=dataset.digits, progress=progress),
            setup.seconds, "judges",
        )
        setup.judge_accuracy = dict(getattr(judges, "accuracy", {}) or {})
        if hasattr(judges, "describe"):  # the tally and the generation metrics both read the real test videos:
            judges = RememberedReadings(judges)  # once (the same readings, evaluation/judges/remembered.py)
    disentanglement = _timed(
        "disentanglement metrics" + (" (no judges: the judged metrics are NaN)" if judges is None else ""),
        lambda: compute_all_disentanglement_metrics(
            model, setup.test_loader, device, max_samples=config.max_samples, judges=judges
        ),
        setup.seconds, "disentanglement",
    )
    generation = _timed(
        "generation metrics (prior samples and both conditional modes against real test videos)",
        lambda: compute_generation_metrics(model, setup.test_loader, judges, device, max_videos=config.max_samples,
                                           seed=setup.data_config.seed),
        setup.seconds, "generation",
    )
    log(f"  prior: {generation['prior']}")
    metrics = {"reconstruction": reconstruction, "cost": cost, "disentanglement": disentanglement,
               "generation": generation}
    standard = setup.standard_loader
    if standard is not None and standard.dataset.videos.num_frames < OBSERVED_FRAMES + PREDICTED_FRAMES:
        log(f"the standard test file has {standard.dataset.videos.num_frames} frames, fewer than the "
            f"{OBSERVED_FRAMES} + {PREDICTED_FRAMES} of the prediction protocol: predicting generator videos")
        standard = None
    metrics["prediction"] = _timed(
        "prediction (10 -> 10 table, and the judged long horizon)",
        lambda: compute_prediction_metrics(
            model, setup.test_loader.dataset, judges, device, num_videos=setup.data_config.test_size,
            batch_size=config.batch_size, samples=config.prediction_samples or None,
            long_videos=config.prediction_videos, horizon=config.prediction_horizon, seed=setup.data_config.seed,
            standard_loader=standard, standard_path=config.standard_test_file,
            reconstruction_mse_per_frame=reconstruction.get("mse_per_frame", math.nan), log=log),
        setup.seconds, "prediction",
    )
    prediction = metrics["prediction"]
    log(f"  10 -> 10: mse/frame {prediction['mse_per_frame']:.1f} (last frame "
        f"{prediction['last_frame']['mse_per_frame']:.1f}), ssim {prediction['ssim']:.3f}; identity kept at "
        f"frame {config.prediction_horizon}: {prediction[f'identity_kept_at_{config.prediction_horizon}']:.3f}")
    return _standard_file_metrics(setup, metrics)


def _standard_file_metrics(setup: _Setup, metrics: dict[str, Any]) -> dict[str, Any]:
    """Add the reconstruction metrics of ``--standard-test-file`` (or why they were skipped)."""
    config, device, model = setup.config, setup.device, setup.model
    progress = sys.stderr.isatty()
    if config.standard_test_file is not None:
        if setup.standard_loader is None:
            log(f"skipping the standard test file: {setup.standard_skip}")
            metrics["standard_test_file"] = {"path": config.standard_test_file, "skipped": setup.standard_skip}
        else:
            standard = _timed(
                f"reconstruction metrics on {config.standard_test_file}",
                lambda: reconstruction_metrics(
                    model, setup.standard_loader, device, max_batches=config.max_batches, progress=progress
                ),
                setup.seconds, "standard test file",
            )
            metrics["standard_test_file"] = {"path": str(config.standard_test_file), **standard}
    return metrics


def _metadata(setup: _Setup, command: str) -> dict[str, Any]:
    record, config = RunRecord.of(setup.checkpoint), setup.config
    versions = {
        **library_versions(),
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }
    return {
        "checkpoint": str(Path(setup.checkpoint_path).resolve()),
        "checkpoint_sha256": file_sha256(setup.checkpoint_path),
        # what summarize.py identifies a run by: its weights, which a refitted prior does not change
        "weights_sha256": weights_sha256(record.model_state),
        "experiment_name": record.experiment_name,
        "model_name": record.model_name,
        "epoch": record.epoch,
        "step": record.step,
        "best_metric": record.best_metric,
        "model_config": record.model_config,
        "train_config": record.train_config,
        "data_config": record.data_config,
        "evaluation_data_config": setup.data_config.to_dict(),
        "data": data_description(setup.data_config),
        "evaluation": {
            "test_size": setup.data_config.test_size,
            "seed": setup.data_config.seed,
            "batch_size": config.batch_size,
            "max_batches": config.max_batches,
            "max_samples": config.max_samples,
            "judges": config.judges,
            "num_samples": config.num_samples,
            "interpolation_steps": config.interpolation_steps,
            "prediction_samples": config.prediction_samples,
            "prediction_videos": config.prediction_videos,
            "prediction_horizon": config.prediction_horizon,
            "prediction_refine_steps": setup.model.prediction_refine_steps
            if getattr(setup.model, "object_slots", 0) else None,
        },
        "device": str(setup.device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "versions": versions,
        "checkpoint_versions": record.versions,
        "judges": setup.judge_accuracy,
        # which prior model.sample drew from: N(0, I) or the checkpoint's ex-post fitted prior
        "prior": setup.model.prior_description(),
        # commit (and dirty tree), the process's exact command line, package versions, CPU and GPU
        "provenance": provenance(),
    }


# ----------------------------------------------------------------------------------------------------
# The evaluation


def evaluate(checkpoint: str | Path, config: EvalConfig | None = None, command: str | None = None) -> Evaluation:
    """Evaluate a checkpoint: write ``NAME_metrics.json`` (atomically) and the figures into ``config.save_dir``.

    Args:
        checkpoint: the checkpoint file, e.g. ``checkpoints/NAME/best_model.pt``.
        config: how to evaluate (defaults: :class:`EvalConfig`).
        command: the command recorded in the metadata (``evaluate.py``'s own command line; by default
            this process's).

    Returns:
        The :class:`Evaluation`: the metrics document and the paths written.

    Raises:
        EvaluationError, FileNotFoundError, CheckpointError, ValueError: bad inputs (a missing, corrupt or
            mismatched checkpoint, an unavailable device, a missing MNIST folder, an unreadable standard test
            file), before any long work.
        OSError: an output could not be written (e.g. a full disk; its ``filename`` names it). Every output
            is written atomically, so each file in ``save_dir`` is whole: the new one, or the one before.
    """
    config = config if config is not None else EvalConfig()
    setup = _prepare(str(checkpoint), config)
    data = setup.data_config
    record = RunRecord.of(setup.checkpoint)
    log(
        f"model {record.model_name!r} of experiment {setup.name!r}, epoch "
        f"{record.epoch if Key.EPOCH in setup.checkpoint else '?'}; test set: {data.test_size} videos of {data.video.num_frames} "
        f"frames, {data.video.image_size}x{data.video.image_size}, seed {data.seed}, "
        f"{data_description(data)['title']}"
    )
    results = _compute_metrics(setup)
    metrics_path = setup.save_dir / f"{setup.name}_metrics.json"
    document = to_jsonable({
        "experiment_name": setup.name,
        "model_name": record.model_name,
        **results,
        "metadata": _metadata(setup, command if command is not None else " ".join(sys.argv)),
    })
    atomic_write_json(metrics_path, document)  # never a half-written JSON
    started = time.perf_counter()
    figures = make_figures(
        setup.model, setup.test_loader, setup.save_dir, setup.name, device=setup.device,
        num_samples=config.num_samples, batch_size=config.batch_size,
        interpolation_steps=config.interpolation_steps, fps=config.fps, seed=data.seed, log=log,
        dataset_title=data_description(data)["title"],
    )
    setup.seconds["figures"] = time.perf_counter() - started
    return Evaluation(setup.name, document, metrics_path, [metrics_path, *figures], dict(setup.seconds))
