"""The ``python -m training.train`` CLI: its options, the outputs of a run, exact resume, stops, bad input.

Runs are tiny (32x32, 4 frames, width 8, 8 videos of batch 4) and on one CPU thread: torch's thread pool
only slows such small models down.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from training_helpers import assert_same_training_state, read_rows, tiny_args

import training.train as run_module
import training.trainer as trainer_module
from models import MODELS
from models.checkpoint import BEST, LAST, load_checkpoint, load_model
from training.cli import build_parser
from training.train import main
from training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_help_explains_every_option_with_registry_choices(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the terminal-width wrapping
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
    assert "{" + ",".join(MODELS) + "}" in text
    for default in ("(default: 100)", "(default: 32)", "(default: 0.0001)", "(default: auto)", "default: 4.0",
                    "default: 128", "default: bce", "(default: checkpoints)"):
        assert default in text


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_one_epoch_run_writes_every_output(tmp_path, model):
    assert main(tiny_args(tmp_path, model, "run", "--epochs", "1")) == 0
    run = tmp_path / "run"
    assert {LAST, BEST, "config.json", "metrics.csv", "train.log", "tensorboard"} <= {p.name for p in run.iterdir()}

    config = json.loads((run / "config.json").read_text())
    assert config["model_name"] == model and config["train_config"]["epochs"] == 1
    assert config["data_config"]["image_size"] == 32 and config["data_config"]["digit_size"] == 14

    checkpoint = load_checkpoint(run / BEST)
    for key in ("model_state_dict", "model_name", "model_config", "train_config", "data_config",
                "optimizer_state_dict", "scheduler_state_dict", "rng_state", "epoch", "step", "best_metric",
                "versions"):
        assert key in checkpoint, key
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 2 and math.isfinite(checkpoint["best_metric"])
    # A finished run carries its ex-post fitted prior (models/fitted_prior.py), in both checkpoints.
    assert "fitted_prior" in checkpoint and "fitted_prior" in load_checkpoint(run / LAST)

    rows = read_rows(run / "metrics.csv")
    assert len(rows) == 1
    kl_terms = [key[len("train_"):] for key in rows[0] if key.startswith("train_kl")]
    assert kl_terms and all(f"val_{term}" in rows[0] for term in kl_terms)
    for column in ("epoch", "step", "train_loss", "train_recon", "val_loss", "val_recon", "lr", "kl_scale",
                   "videos_per_s", "seconds"):
        assert column in rows[0]
    assert float(rows[0]["val_loss"]) == pytest.approx(checkpoint["best_metric"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/val", "recon/train", "recon/val", "lr", "speed/videos_per_s"} <= scalars
    assert {f"{term}/train" for term in kl_terms} <= scalars
    assert "reconstructions" in events.Tags()["images"]

    log = (run / "train.log").read_text()
    assert "epoch 1/1" in log
    lacking = [option for option, field in (("--latent-dim", "latent_dim"), ("--content-dim", "content_dim"))
               if field not in checkpoint["model_config"]]
    for option in lacking:
        assert f"{option} is ignored" in log

    # best_model.pt alone rebuilds the exact model.
    loaded, _ = load_model(run / BEST)
    fresh = MODELS[model].from_config(checkpoint["model_config"])
    fresh.load_state_dict(checkpoint["model_state_dict"])
    fresh.eval()
    video = torch.rand(2, 4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(video), fresh.reconstruct(video))
        first = loaded(video, generator=torch.Generator().manual_seed(1)).loss
        second = fresh(video, generator=torch.Generator().manual_seed(1)).loss
    assert torch.equal(first, second)


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    """Four epochs straight equal two epochs, then --resume for two more (weights and Adam state)."""
    assert main(tiny_args(tmp_path, "lstm", "straight", "--epochs", "4", "--kl-warmup-epochs", "3")) == 0
    assert main(tiny_args(tmp_path, "lstm", "split", "--epochs", "2", "--kl-warmup-epochs", "3")) == 0
    assert main(tiny_args(tmp_path, None, "split", "--resume", "--epochs", "4")) == 0
    straight = load_checkpoint(tmp_path / "straight" / LAST)
    assert_same_training_state(straight, load_checkpoint(tmp_path / "split" / LAST))
    rows_straight = read_rows(tmp_path / "straight" / "metrics.csv")
    rows_split = read_rows(tmp_path / "split" / "metrics.csv")
    assert [row["val_loss"] for row in rows_straight] == [row["val_loss"] for row in rows_split]
    assert [row["epoch"] for row in rows_split] == ["1", "2", "3", "4"]


@pytest.mark.slow
def test_budget_stops_mid_epoch_and_resume_is_exact(tmp_path):
    """--max-minutes stops after the first step (mid-epoch); resuming matches an uninterrupted run,
    cosine schedule and KL warm-up included."""
    options = ("--epochs", "2", "--scheduler", "cosine", "--kl-warmup-epochs", "1", "--grad-clip", "1.0")
    assert main(tiny_args(tmp_path, "disentangled", "straight", *options)) == 0
    assert main(tiny_args(tmp_path, "disentangled", "budget", *options, "--max-minutes", "1e-9")) == 0
    stopped = load_checkpoint(tmp_path / "budget" / LAST)
    assert stopped["epoch"] == 0 and stopped["step"] == 1 and stopped["epoch_progress"]["batches"] == 1
    assert not (tmp_path / "budget" / BEST).exists()
    assert main(tiny_args(tmp_path, None, "budget", "--resume")) == 0
    assert_same_training_state(load_checkpoint(tmp_path / "straight" / LAST),
                               load_checkpoint(tmp_path / "budget" / LAST))
    straight_rows = read_rows(tmp_path / "straight" / "metrics.csv")
    budget_rows = read_rows(tmp_path / "budget" / "metrics.csv")
    for key in ("train_loss", "val_loss", "lr", "kl_scale"):
        assert [row[key] for row in straight_rows] == [row[key] for row in budget_rows], key


@pytest.mark.slow
def test_non_finite_loss_from_the_cli_exits_non_zero_and_keeps_best(tmp_path, monkeypatch, capsys):
    model_class = MODELS["baseline"]
    original = model_class.forward
    calls = {"train": 0}

    def forward(self, video, kl_scale=1.0, generator=None):
        output = original(self, video, kl_scale=kl_scale, generator=generator)
        if self.training:
            calls["train"] += 1
            if calls["train"] == 3:  # the first step of epoch 2
                output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(model_class, "forward", forward)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "3")) == 1
    run = tmp_path / "run"
    best, last = load_checkpoint(run / BEST), load_checkpoint(run / LAST)
    assert best["epoch"] == last["epoch"] == 1
    for key, tensor in best["model_state_dict"].items():
        assert torch.isfinite(tensor).all() and torch.equal(tensor, last["model_state_dict"][key])
    log = (run / "train.log").read_text()
    assert "non-finite training loss at step 3" in log
    assert "lower --lr" in log and "--recon-loss bce" in log


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LAST).write_bytes(b"old run")
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "already holds last.pt" in error and "--resume" in error and "--overwrite" in error
    assert (run / LAST).read_bytes() == b"old run"


@pytest.mark.slow
def test_overwrite_starts_over(tmp_path):
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 0
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1", "--overwrite")) == 0
    assert len(read_rows(tmp_path / "run" / "metrics.csv")) == 1


def test_amp_is_ignored_with_a_warning_without_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "bf16_supported", lambda device: False)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1", "--amp")) == 0
    assert "--amp is ignored: cpu has no native bf16" in (tmp_path / "run" / "train.log").read_text()
    assert load_checkpoint(tmp_path / "run" / LAST)["train_config"]["amp"] is False


def test_amp_trains_under_bf16_autocast_where_supported(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "bf16_supported", lambda device: True)
    monkeypatch.setattr(trainer_module, "bf16_supported", lambda device: True)
    seen = []
    original = Trainer.train_step

    def spy(self, batch):
        seen.append(self.autocast_dtype)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", spy)
    assert main(tiny_args(tmp_path, "lstm", "run", "--epochs", "1", "--amp")) == 0
    assert seen and set(seen) == {torch.bfloat16}
    rows = read_rows(tmp_path / "run" / "metrics.csv")
    assert math.isfinite(float(rows[0]["train_loss"])) and math.isfinite(float(rows[0]["val_loss"]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "-1"], "argument --epochs: must be a positive integer"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer"),
        (["--lr", "0"], "argument --lr: must be a finite number > 0"),
        (["--lr", "-0.001"], "argument --lr: must be a finite number > 0"),
        (["--lr", "nan"], "argument --lr: must be a finite number > 0"),
        (["--batch-size", "0"], "argument --batch-size"),
        (["--device", "tpu"], "argument --device: unknown device 'tpu'"),
        (["--max-minutes", "0"], "argument --max-minutes"),
        (["--frames", "1"], "num_frames must be at least 2"),
        (["--image-size", "40"], "image_size must be a multiple of 16"),
        (["--beta", "-1"], "argument --beta"),
        (["--model-option", "no_such_field=1"], "has no config field 'no_such_field'"),
        (["--model", "transformer"], "argument --model: invalid choice"),
        (["--resume", "--overwrite"], "contradict"),
    ],
)
def test_invalid_options_give_one_clear_error_and_exit_2(tmp_path, capsys, options, message):
    assert main(tiny_args(tmp_path, "baseline", "run", *options)) == 2
    error = capsys.readouterr().err
    assert message in error.strip().splitlines()[-1] and "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_an_error(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "baseline", "run", "--device", "cuda")) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "baseline", "run", "--resume")) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--resume: there is no" in error and "last.pt" in error


def test_a_corrupt_last_checkpoint_is_one_line_on_stderr(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LAST).write_bytes(b"\x80\x02garbage")
    assert main(tiny_args(tmp_path, None, "run", "--resume")) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(tmp_path / "run" / LAST) in error and "corrupt" in error


@pytest.mark.slow
def test_resume_refuses_another_model_and_changed_options(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(tiny_args(tmp_path, "lstm", "run", "--resume", "--epochs", "2")) == 2
    assert "holds a 'baseline' model, not 'lstm'" in capsys.readouterr().err
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "2", "--lr", "0.01")) == 2
    assert "--lr 0.01 (the run has 0.0001)" in capsys.readouterr().err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_a_read_only_output_folder_is_an_error(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 2
    finally:
        tmp_path.chmod(0o700)
    assert "cannot write to the run folder" in capsys.readouterr().err


def test_an_unwritable_checkpoint_dir_is_an_error(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    assert main(tiny_args(tmp_path / "a_file", "baseline", "run", "--epochs", "1")) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "cannot write to the run folder" in error


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "workers"), [(signal.SIGINT, 130, 0), (signal.SIGTERM, 143, 0),
                                                          (signal.SIGINT, 130, 2), (signal.SIGTERM, 143, 2)])
def test_a_signal_saves_last_and_the_run_resumes(tmp_path, signum, code, workers):
    """The signal goes to the whole process group, as Ctrl-C in a terminal (or a batch scheduler's SIGTERM)
    does, so data-loading workers receive it too."""
    command = [sys.executable, "-m", "training.train",
               *tiny_args(tmp_path, "baseline", "run", "--epochs", "1000", "--num-workers", str(workers))]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        output = []
        for line in process.stdout:
            output.append(line)
            if "epoch 1/1000" in line:
                os.killpg(process.pid, signum)
                break
        output.extend(process.stdout)
        process.wait()
    finally:
        watchdog.cancel()
        process.stdout.close()
    text = "".join(output)
    assert process.returncode == code, text
    assert "Traceback" not in text and "continue with --resume" in text
    checkpoint = load_checkpoint(tmp_path / "run" / LAST)
    epochs_done = checkpoint["epoch"]
    assert epochs_done >= 1
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", str(epochs_done + 1))) == 0
    assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] == epochs_done + 1
