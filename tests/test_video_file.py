"""Any array of videos (issue 31): the one reader of ``--video-file`` / ``--standard-test-file``, its splits, bad
files refused in one line with exit status 2, and a factor-free run trained and evaluated end to end."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
import summarize
from data import DataConfig, MovingMNIST, MovingMNISTConfig, VideoFileError, data_loaders, read_video_file
from data.video_file import default_split_sizes, split_indices
from evaluation.metric_names import NEEDS_FACTORS, NO_FACTORS
from evaluation.pixel_generation import PIXEL_GENERATION_KEYS, pixel_features
from evaluation.reporting import report as reports
from evaluation.reporting.comparison import write_report
from training import train as train_module
from training.train import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")


def moving_digits(num_videos: int, frames: int = 4, size: int = 32) -> np.ndarray:
    """Real moving digits, uint8 (N, T, H, W)."""
    dataset = MovingMNIST("test", num_videos, MovingMNISTConfig(image_size=size, num_frames=frames))
    video = dataset.generate(range(num_videos))["video"][:, :, 0].numpy()
    return (video * 255).round().astype(np.uint8)


def run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------------------------------
# The reader


def test_the_three_layouts_give_the_same_videos(tmp_path):
    videos = moving_digits(12)  # (N, T, H, W)
    np.save(tmp_path / "standard.npy", videos.transpose(1, 0, 2, 3))  # (T, N, H, W), as mnist_test_seq.npy
    np.save(tmp_path / "videos_first.npy", videos)
    np.savez(tmp_path / "channels.npz", videos=videos[:, :, None].astype(np.float32) / 255)
    expected = torch.from_numpy(videos[[3, 0]]).float().div(255).unsqueeze(2)
    for name, layout in (("standard.npy", "TNHW"), ("videos_first.npy", "NTHW"), ("channels.npz", "NTCHW")):
        array = read_video_file(tmp_path / name)
        assert array.layout == layout and "inferred" in array.layout_note, name
        assert (array.num_videos, array.num_frames, array.image_size) == (12, 4, 32)
        torch.testing.assert_close(array.videos([3, 0]), expected)
    assert isinstance(read_video_file(tmp_path / "standard.npy").array, np.memmap)  # never read whole


def test_an_ambiguous_shape_needs_the_layout_and_the_given_layout_is_used(tmp_path):
    path = tmp_path / "square.npy"
    np.save(path, moving_digits(6, frames=4, size=16)[:4])  # (4, 4, 16, 16): time could be either axis
    with pytest.raises(VideoFileError, match="--video-layout"):
        read_video_file(path)
    array = read_video_file(path, "NTHW")
    assert array.layout == "NTHW" and array.layout_note == "given by --video-layout"


def test_a_file_is_read_and_checked_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """An evaluation checks the file, then its loaders read it: a ``.npz`` is loaded once, and a file
    rewritten in between is read again."""
    from data import video_file

    path = tmp_path / "videos.npz"
    np.savez(path, videos=moving_digits(9))  # (9, 4, 32, 32): the layout NTHW is clear
    opened = []
    real_open = video_file._open_array
    monkeypatch.setattr(video_file, "_open_array", lambda where: opened.append(where) or real_open(where))
    video_file._remembered_read.cache_clear()
    first = read_video_file(path)
    assert read_video_file(str(path)) is first and len(opened) == 1
    np.savez(path, videos=moving_digits(12))  # rewritten: another size on disk
    assert read_video_file(path).num_videos == 12 and len(opened) == 2
    with pytest.raises(VideoFileError, match="does not exist"):  # a missing file is never remembered
        read_video_file(tmp_path / "missing.npy")


def test_splits_are_disjoint_seeded_and_cover_the_sizes():
    sizes = default_split_sizes(50)
    assert sizes == {"train": 40, "val": 5, "test": 5}
    first, again = split_indices(50, sizes, seed=1), split_indices(50, sizes, seed=1)
    assert all(np.array_equal(first[split], again[split]) for split in first)
    assert not np.array_equal(first["test"], split_indices(50, sizes, seed=2)["test"])
    joined = np.concatenate(list(first.values()))
    assert len(joined) == len(set(joined.tolist())) == 50
    with pytest.raises(VideoFileError, match="holds 50"):
        split_indices(50, {"train": 45, "val": 5, "test": 5}, seed=1)


def test_data_loaders_read_a_video_file_without_factors(tmp_path):
    path = tmp_path / "videos.npy"
    np.save(path, moving_digits(10))
    config = DataConfig(train_size=6, val_size=2, test_size=2, video=MovingMNISTConfig(image_size=32, num_frames=4),
                        video_file=str(path))
    train, val, test = data_loaders(config, batch_size=2)
    batch = next(iter(test))
    assert set(batch) == {"video", "index"} and batch["video"].shape == (2, 4, 1, 32, 32)
    seen = [set(torch.cat([b["index"] for b in loader]).tolist()) for loader in (train, val, test)]
    assert sum(map(len, seen)) == 10 and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_pixel_features_measure_brightness_ink_and_motion():
    still = torch.zeros(2, 3, 1, 16, 16)
    still[:, :, :, :8] = 1.0
    features = pixel_features(still)
    assert features.shape == (2, 67)
    assert features[0, -3].item() == pytest.approx(0.5) and features[0, -2].item() == pytest.approx(0.5)
    assert features[0, -1].item() == 0.0  # nothing moves
    moving = still.clone()
    moving[:, 1] = 1.0 - moving[:, 1]
    assert pixel_features(moving)[0, -1].item() > 0.5


# ----------------------------------------------------------------------------------------------------
# Bad files: one line, exit status 2, from training and from evaluate.py


def bad_file(tmp_path, kind: str):
    path = tmp_path / "videos.npy"
    good = moving_digits(10)
    if kind == "missing":
        return path
    if kind == "text":
        path.write_text("20 10000 64 64\n")
    elif kind == "wrong dtype":
        np.save(path, good.astype(np.int32))
    elif kind == "wrong ndim":
        np.save(path, good[0])
    elif kind == "NaN":
        floats = good.astype(np.float32) / 255
        floats[3, 1, 5, 5] = np.nan
        np.save(path, floats)
    elif kind == "out of range":
        np.save(path, good.astype(np.float32))  # 0-255 stored as floats
    elif kind == "empty":
        np.save(path, np.zeros((0, 4, 32, 32), dtype=np.uint8))
    elif kind == "size":
        np.save(path, good[..., :24, :24])
    elif kind == "too few":
        np.save(path, good[:2, :, None])  # (N, T, C, H, W): 2 videos, one short of a split each
    return path


BAD_KINDS = [("missing", "does not exist"), ("text", "is not a .npy array file"), ("wrong dtype", "int32"),
             ("wrong ndim", "3 dimensions"), ("NaN", "NaN"), ("out of range", "must lie in [0, 1]"),
             ("empty", "holds no video"), ("size", "multiple of 16"), ("too few", "at least 3")]


@pytest.mark.parametrize(("kind", "message"), BAD_KINDS)
def test_training_refuses_a_bad_video_file_in_one_line(tmp_path, kind, message, monkeypatch):
    monkeypatch.setattr(train_module, "train", lambda *args, **kwargs: pytest.fail("training started"))
    path = bad_file(tmp_path, kind)
    code, _, error = run(train_main, ["--model", "baseline", "--name", "run", "--checkpoint-dir", tmp_path / "ck",
                                      "--device", "cpu", "--video-file", path])
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error, error
    assert message in error and "pickle" not in error


def test_training_refuses_splits_larger_than_the_file_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "train", lambda *args, **kwargs: pytest.fail("training started"))
    np.save(tmp_path / "videos.npy", moving_digits(10))
    code, _, error = run(train_main, ["--model", "baseline", "--name", "run", "--checkpoint-dir", tmp_path / "ck",
                                      "--device", "cpu", "--video-file", tmp_path / "videos.npy", "--test-size", "9"])
    assert code == 2 and error.count("\n") == 1
    assert "the splits ask for 11 videos (train 1, val 1, test 9) but the video file holds 10" in error


@pytest.mark.parametrize(("kind", "message"), [kind for kind in BAD_KINDS if kind[0] != "too few"])
def test_evaluate_refuses_a_bad_video_file_in_one_line(tmp_path, kind, message, trained):
    path = bad_file(tmp_path, kind)
    code, _, error = run(evaluate.main, ["--checkpoint", trained["checkpoint"], "--device", "cpu", "--save_dir",
                                         tmp_path / "out", "--video-file", path])
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error, error
    assert message in error and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------
# End to end, by the documented commands


README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
TINY_TRAINING = ["--device", "cpu", "--quiet", "--batch-size", "4", "--epochs", "1", "--width", "8", "--content-dim",
                 "8", "--motion-dim", "8", "--lstm-hidden", "8", "--model-option", "feature_dim=16"]


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Your own videos" section, as argv lists (``python`` dropped)."""
    section = README.split("## Your own videos", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The README's training command, with tiny options, on 30 videos in the standard layout (T, N, H, W)."""
    folder = tmp_path_factory.mktemp("video_file")
    np.save(folder / "videos.npy", moving_digits(30).transpose(1, 0, 2, 3))
    train_command, evaluate_command = readme_commands()
    assert train_command[:2] == ["-m", "training.train"] and evaluate_command[0] == "evaluate.py"
    with contextlib.chdir(folder):
        code, _, error = run(train_main, [*train_command[2:], *TINY_TRAINING])
    assert code == 0, error
    run_dir = folder / "checkpoints" / "my_videos"
    log = (run_dir / "train.log").read_text()
    assert "layout TNHW (inferred" in log and "test 3, validation 3, training 24 videos" in log
    return {"folder": folder, "file": (folder / "videos.npy").resolve(), "checkpoint": run_dir / "best_model.pt",
            "evaluate": evaluate_command[1:]}


@pytest.mark.slow
def test_a_factor_free_run_evaluates_end_to_end_with_the_not_available_list(trained):
    checkpoint = torch.load(trained["checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["data_config"]["video_file"] == str(trained["file"])
    assert checkpoint["data_config"]["num_frames"] == 4 and checkpoint["data_config"]["image_size"] == 32
    save_dir = trained["folder"] / "eval_my_videos"
    with contextlib.chdir(trained["folder"]):  # the README's command
        code, out, error = run(evaluate.main, [*trained["evaluate"], "--device", "cpu", "--num_samples", "2"])
    assert code == 0, error
    assert "using 3" in out  # --test-size 1000 is more than the 3 videos training held out
    document = json.loads((save_dir / "my_videos_metrics.json").read_text())
    assert {"disentanglement", "generation"}.isdisjoint(document)
    assert document["not_available"]["reason"] == NO_FACTORS
    listed = document["not_available"]["metrics"]
    assert listed == [f"{metric.section}.{metric.key}" for metric in NEEDS_FACTORS]  # complete, each once
    assert document["reconstruction"]["num_videos"] == 3 and math.isfinite(document["reconstruction"]["mse"])
    # 3 test videos are too few for a Fréchet distance (2 per half): left out with the reason, never a NaN
    other = document["not_available"]["other"]
    assert sorted(other) == sorted([f"pixel_generation.{key}" for key in PIXEL_GENERATION_KEYS if "frechet" in key]
                                   + ["prediction"])
    assert "the videos have 4 frames, fewer than the 10 observed + 10 predicted" in other["prediction"]
    assert "prediction" not in document
    assert all(math.isfinite(document["pixel_generation"][key]) for key in PIXEL_GENERATION_KEYS
               if f"pixel_generation.{key}" not in other)
    assert document["metadata"]["data"]["has_factors"] is False
    for suffix in ("reconstructions.png", "samples.png", "interpolation.png", "content_swap.png", "swaps.gif"):
        assert (save_dir / f"my_videos_{suffix}").exists(), suffix

    # The report: the tables of what needs no labels (no NaN), then every other metric listed once
    documents = reports.load_results([save_dir / "my_videos_metrics.json"])
    out = trained["folder"] / "report"
    write_report(documents, out, trained["folder"] / "checkpoints", {"evaluation": 1.0}, torch.device("cpu"), False,
                 {}, ["my_videos"])
    reports.write_summary(documents, out / "tables")
    text = (out / "report.md").read_text()
    assert "videos of videos.npy" in text.splitlines()[0]
    assert text.count(NO_FACTORS) == len(NEEDS_FACTORS) and "2 per half" in text
    tables = text.split("## Not available")[0]
    assert "| nan" not in tables and "n/a" not in tables
    assert sorted(path.name for path in (out / "tables").glob("*.md")) == [
        "table_cost.md", "table_pixel_generation.md", "table_reconstruction.md"]

    # summarize.py: the same tables and list
    code, out, error = run(summarize.main, [save_dir])
    assert code == 0, error
    assert "NOT AVAILABLE" in out and out.count(NO_FACTORS) == len(NEEDS_FACTORS) and "| nan" not in out


@pytest.mark.slow
def test_factor_free_videos_of_20_frames_get_the_10_to_10_prediction_table_and_nothing_judged(tmp_path):
    """Issue 30 on issue 31's data: the standard protocol on the file's own test videos, the judged long
    horizon listed as not available (never NaN)."""
    np.save(tmp_path / "videos.npy", moving_digits(12, frames=20, size=32))  # (N, T, H, W)
    with contextlib.chdir(tmp_path):
        code, _, error = run(train_main, ["--model", "lstm", "--name", "long", "--video-file", "videos.npy", "--video-layout", "NTHW",
                                          "--test-size", "4", "--val-size", "2", *TINY_TRAINING])
        assert code == 0, error
        code, _, error = run(evaluate.main, ["--checkpoint", "checkpoints/long/best_model.pt", "--save_dir", "eval",
                                             "--device", "cpu", "--num_samples", "2", "--prediction-samples", "2"])
    assert code == 0, error
    document = json.loads((tmp_path / "eval" / "long_metrics.json").read_text())
    prediction = document["prediction"]
    assert prediction["test_set"]["kind"] == "video_file" and prediction["num_videos"] == 4
    for key in ("mse_per_frame", "mae_per_frame", "ssim", "ssim_uniform", "psnr"):
        assert math.isfinite(prediction[key]) and math.isfinite(prediction["last_frame"][key]), key
    assert len(prediction["mse_per_frame_by_frame"]) == 10
    assert not [key for key in prediction if key.startswith("identity_kept")] and "long_horizon" not in prediction
    other = document["not_available"]["other"]
    assert other["prediction.identity_kept_by_window"] == NO_FACTORS and "prediction" not in other
    documents = reports.load_results([tmp_path / "eval" / "long_metrics.json"])
    write_report(documents, tmp_path / "report", tmp_path / "checkpoints", {"evaluation": 1.0}, torch.device("cpu"),
                 False, {}, ["long"])
    text = (tmp_path / "report" / "report.md").read_text()
    table = text.split("## Prediction: 10 observed frames, 10 predicted")[1].split("## Not available")[0]
    assert "last frame repeated (reference)" in table and f"{prediction['mse_per_frame']:.1f}" in table
    assert "nan" not in table.lower() and "n/a" not in table
    assert "Prediction: the judged long horizon (`prediction.long_horizon`)" in text
