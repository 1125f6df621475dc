"""The trainer and the ``python -m training.train`` CLI: outputs, exact resume, stops, bad input.

Runs are tiny (32x32, 4 frames, width 8, 8 videos of batch 4) and on one CPU thread: torch's thread pool
only slows such small models down.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import training.train as train_module
import training.trainer as trainer_module
from models import MODELS
from training.checkpoint import load_checkpoint, load_model
from training.config import TrainConfig
from training.train import build_parser, main
from training.trainer import BEST, LAST, NonFiniteLossError, Trainer, make_optimizer, make_scheduler

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_args(root: Path, model: str | None = "baseline", name: str = "run", *extra: str) -> list[str]:
    """A complete tiny command line (options a model lacks are passed too: they must only be noted)."""
    args = ["--name", name, "--checkpoint-dir", str(root), "--device", "cpu", "--quiet",
            "--batch-size", "4", "--train-size", "8", "--val-size", "4", "--test-size", "4",
            "--image-size", "32", "--frames", "4", "--width", "8", "--latent-dim", "8",
            "--content-dim", "8", "--motion-dim", "8", "--lstm-hidden", "8", "--model-option", "feature_dim=16"]
    return (["--model", model] if model else []) + args + list(extra)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_training_state(first: dict, second: dict) -> None:
    assert first["epoch"] == second["epoch"] and first["step"] == second["step"]
    for key, tensor in first["model_state_dict"].items():
        assert torch.equal(tensor, second["model_state_dict"][key]), key
    state_a, state_b = first["optimizer_state_dict"]["state"], second["optimizer_state_dict"]["state"]
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        for key, value in state_a[index].items():
            assert torch.equal(value, state_b[index][key]), (index, key)
    assert first["scheduler_state_dict"] == second["scheduler_state_dict"]
    assert first["best_metric"] == second["best_metric"]


# ----------------------------------------------------------------------------------------------------
# The command line


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
    monkeypatch.setattr(train_module, "bf16_supported", lambda device: False)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1", "--amp")) == 0
    assert "--amp is ignored: cpu has no native bf16" in (tmp_path / "run" / "train.log").read_text()
    assert load_checkpoint(tmp_path / "run" / LAST)["train_config"]["amp"] is False


def test_amp_trains_under_bf16_autocast_where_supported(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "bf16_supported", lambda device: True)
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


# ----------------------------------------------------------------------------------------------------
# The trainer on its own (a toy model: it only reads loss, recon_loss and kl_terms)


class ToyModel(nn.Module):
    """``recon = (mean(video) - w)^2``, ``kl = w^2``; ``fail`` makes one training call or validation bad."""

    def __init__(self, fail: str | None = None, at_call: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([2.0]))
        self.fail, self.at_call, self.calls = fail, at_call, 0

    def forward(self, video, kl_scale=1.0, generator=None):
        noise = 0.01 * torch.randn(1, generator=generator)
        recon = ((video.mean() - self.weight + noise) ** 2).sum()
        kl = (self.weight**2).sum()
        if self.training:
            self.calls += 1
            if self.calls == self.at_call and self.fail == "loss":
                recon = recon * float("nan")
            if self.calls == self.at_call and self.fail == "gradient":  # sqrt(0): finite value, infinite slope
                recon = recon + torch.sqrt(self.weight - self.weight.detach()).sum()
        elif self.fail == "validation":
            recon = recon * float("nan")
        return SimpleNamespace(loss=recon + kl_scale * kl, recon_loss=recon, kl_terms={"kl_toy": kl})


def toy_trainer(tmp_path: Path, model: nn.Module, progress_bar: bool = False, **config) -> Trainer:
    config = TrainConfig(experiment_name="toy", model="baseline", **{"epochs": 3, "lr": 0.1, **config})
    train = [torch.full((2, 3, 1, 4, 4), value) for value in (0.1, 0.5)]
    val = [torch.full((2, 3, 1, 4, 4), 0.3)]
    optimizer = make_optimizer(model, config)
    return Trainer(model, optimizer, train, val, config, torch.device("cpu"), run_dir=tmp_path,
                   scheduler=make_scheduler(optimizer, config, len(train)), metadata={"model_name": "toy"},
                   progress_bar=progress_bar)


def test_the_progress_bar_shows_loss_and_speed(tmp_path, capsys):
    toy_trainer(tmp_path, ToyModel(), progress_bar=True, epochs=1).fit()
    bar = capsys.readouterr().err
    assert "epoch 1/1" in bar and "loss=" in bar and "videos_s=" in bar


@pytest.mark.parametrize(("fail", "what"), [("loss", "training loss"), ("gradient", "gradient norm")])
def test_non_finite_values_stop_before_the_optimizer_step(tmp_path, fail, what):
    model = ToyModel(fail=fail, at_call=3)
    trainer = toy_trainer(tmp_path, model)
    trainer.epoch, trainer.step = 0, 0
    with pytest.raises(NonFiniteLossError, match=f"non-finite {what} at step 3 .*lower --lr") as caught:
        trainer.fit()
    assert "--recon-loss bce" in str(caught.value)
    best = torch.load(tmp_path / BEST, weights_only=True)
    assert best["epoch"] == 1 and trainer.step == 2
    assert torch.equal(best["model_state_dict"]["weight"], model.weight.detach())  # no step after epoch 1
    assert torch.isfinite(model.weight).all()


class FailAfterFirstEpoch:
    """A callback that makes the toy model's validation NaN from epoch 2 on."""

    def __init__(self, model: ToyModel) -> None:
        self.model = model

    def on_epoch_end(self, trainer, row, is_best):
        self.model.fail = "validation"


def test_a_non_finite_validation_loss_is_never_saved(tmp_path):
    model = ToyModel()
    trainer = toy_trainer(tmp_path, model)
    trainer.callbacks.append(FailAfterFirstEpoch(model))
    with pytest.raises(NonFiniteLossError, match="non-finite validation loss after epoch 2 .*val_loss=nan") as caught:
        trainer.fit()
    assert "the epoch was not saved, so last.pt keeps the last good state (epoch 1, step 2)" in str(caught.value)
    for name in (LAST, BEST):
        checkpoint = torch.load(tmp_path / name, weights_only=True)
        assert checkpoint["epoch"] == 1 and math.isfinite(checkpoint["best_metric"])


def test_non_finite_weights_are_never_saved_even_by_a_stop(tmp_path, monkeypatch):
    """A stop right after the step that broke the weights saves last.pt without validating: the weights
    themselves are checked."""
    model = ToyModel()
    trainer = toy_trainer(tmp_path, model)
    original = Trainer.train_step

    def step_then_break(self, batch):
        values, count, stop = original(self, batch)
        if self.step == 3:
            with torch.no_grad():
                model.weight.fill_(math.inf)
            self.request_stop("SIGTERM")
            stop = True
        return values, count, stop

    monkeypatch.setattr(Trainer, "train_step", step_then_break)
    with pytest.raises(NonFiniteLossError, match=r"non-finite weights after step 3: 1 of 1 values") as caught:
        trainer.fit()
    assert "last.pt keeps the last good state (epoch 1, step 2)" in str(caught.value)
    assert torch.load(tmp_path / LAST, weights_only=True)["epoch"] == 1


def test_validation_is_deterministic(tmp_path):
    trainer = toy_trainer(tmp_path, ToyModel())
    first, second = trainer.validate(), trainer.validate()
    assert first == second and set(first) == {"val_loss", "val_recon", "val_kl_toy"}


def test_kl_warmup_is_linear_per_step_and_cosine_ends_at_zero(tmp_path):
    trainer = toy_trainer(tmp_path, ToyModel(), kl_warmup_epochs=2, scheduler="cosine", epochs=4)
    assert [trainer.kl_scale(step) for step in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    trainer.fit()
    assert trainer.step == 8 and trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_a_stop_request_ends_after_the_current_step(tmp_path):
    trainer = toy_trainer(tmp_path, ToyModel())
    trainer.request_stop("SIGTERM")
    assert trainer.fit() == "SIGTERM"
    checkpoint = torch.load(tmp_path / LAST, weights_only=True)
    assert checkpoint["step"] == 1 and checkpoint["epoch"] == 0 and checkpoint["epoch_progress"]["batches"] == 1


# ----------------------------------------------------------------------------------------------------
# Work is never lost: one process per run folder, nothing non-finite saved, kills between writes, full disks


def start_training(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """A real training process on ``tmp_path/run``, returned once it has logged its first epoch (whose
    checkpoints it writes just after)."""
    command = [sys.executable, "-m", "training.train", *tiny_args(tmp_path, "baseline", "run", *extra)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if "epoch 1/" in line:
            return process, output
    process.wait()
    raise AssertionError("the training process ended before its first epoch:\n" + "".join(output))


@pytest.mark.slow
def test_a_second_process_on_a_live_run_folder_is_refused_and_a_dead_ones_lock_is_not(tmp_path, capsys):
    process, _ = start_training(tmp_path, "--epochs", "100000")
    try:
        for flags in ([], ["--overwrite"], ["--resume"]):
            assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "3", *flags)) == 2, flags
            error = capsys.readouterr().err
            assert error.count("\n") == 1 and "Traceback" not in error, error
            assert f"{tmp_path / 'run'} is in use by another training process (pid {process.pid} on " in error
        # --overwrite deleted nothing of the live run, which still trains and saves
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / LAST).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] >= 1
        assert process.poll() is None
    finally:
        process.kill()  # SIGKILL: its lock dies with it, its lock file stays
        process.wait()
        process.stdout.close()
    assert f"pid {process.pid} " in (tmp_path / "run" / ".lock").read_text()
    epochs = load_checkpoint(tmp_path / "run" / LAST)["epoch"]
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", str(epochs + 1))) == 0
    rows = read_rows(tmp_path / "run" / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 2))


@pytest.mark.slow
def test_a_diverged_step_is_never_saved_and_the_message_is_true(tmp_path, capsys):
    """--lr 1e30 with one step per epoch: the step's loss is finite, it blows the weights up, validation
    is NaN; nothing of it may reach a checkpoint."""
    assert main(tiny_args(tmp_path, "baseline", "fresh", "--epochs", "3", "--train-size", "4",
                          "--lr", "1e30")) == 1
    assert not (tmp_path / "fresh" / LAST).exists() and not (tmp_path / "fresh" / BEST).exists()
    assert "non-finite validation loss after epoch 1" in capsys.readouterr().err
    assert "the epoch was not saved, so nothing was saved (the run has no checkpoint yet)" in (
        tmp_path / "fresh" / "train.log").read_text()

    # A good epoch, then a resumed epoch whose optimizer blows the weights up: last.pt keeps epoch 1.
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 0
    good = (tmp_path / "run" / LAST).read_bytes()
    blow_up = Trainer.train_step

    def diverging_step(self, batch):
        result = blow_up(self, batch)
        with torch.no_grad():
            for parameter in self.module.parameters():
                parameter.mul_(1e30)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_step", diverging_step)
        assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "3")) == 1
    assert (tmp_path / "run" / LAST).read_bytes() == good
    assert load_checkpoint(tmp_path / "run" / BEST)["epoch"] == 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "last.pt keeps the last good state (epoch 1, step 2) and best_model.pt the best epoch" in log
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "2")) == 0  # still resumable


def test_an_overflowing_kl_weight_is_named_in_the_hint(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1", "--beta", "1e300")) == 1
    error = capsys.readouterr().err
    assert "loss=inf, recon=" in error and "lower --lr" not in error
    assert ("the loss overflowed although its terms (recon, kl_z) are finite: the KL weight (--beta 1e+300) "
            "times the KL exceeds the float range; lower --beta") in error


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no handler catches a BaseException)."""


@pytest.mark.slow
@pytest.mark.parametrize("killed_before", [BEST, LAST])
def test_a_kill_between_the_epoch_end_writes_resumes_to_one_row_per_epoch_and_agreeing_checkpoints(
        tmp_path, monkeypatch, killed_before):
    """Epoch 2 ends with its metrics.csv row, then best_model.pt, then last.pt; a kill before either
    checkpoint must resume to the straight run's rows (each epoch once) and checkpoints."""
    assert main(tiny_args(tmp_path, "baseline", "straight", "--epochs", "3")) == 0
    straight_rows = read_rows(tmp_path / "straight" / "metrics.csv")
    assert min(straight_rows, key=lambda row: float(row["val_loss"]))["epoch"] == "3"  # every epoch a best

    real_save = trainer_module.atomic_torch_save
    killed = []

    def save_or_die(state, path):
        if Path(path).name == killed_before and state["epoch"] == 2:
            killed.append(path)
            raise Killed
        return real_save(state, path)

    monkeypatch.setattr(trainer_module, "atomic_torch_save", save_or_die)
    with pytest.raises(Killed):
        main(tiny_args(tmp_path, "baseline", "run", "--epochs", "3"))
    assert killed
    run = tmp_path / "run"
    assert [row["epoch"] for row in read_rows(run / "metrics.csv")] == ["1", "2"]  # the row came first
    best = load_checkpoint(run / BEST)
    assert load_checkpoint(run / LAST)["epoch"] == 1 and best["epoch"] == (2 if killed_before == LAST else 1)
    monkeypatch.setattr(trainer_module, "atomic_torch_save", real_save)

    assert main(tiny_args(tmp_path, None, "run", "--resume")) == 0
    rows = read_rows(run / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert [row["val_loss"] for row in rows] == [row["val_loss"] for row in straight_rows]
    last, best = load_checkpoint(run / LAST), load_checkpoint(run / BEST)
    assert_same_training_state(load_checkpoint(tmp_path / "straight" / LAST), last)
    assert best["epoch"] == 3 and best["best_metric"] == last["best_metric"] == float(rows[-1]["val_loss"])


def test_resume_keeps_a_best_model_newer_than_last(tmp_path):
    """A kill after best_model.pt but before last.pt: the resumed run must not replace that best with a
    worse epoch (its best_metric is the newer file's)."""
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 0
    run = tmp_path / "run"
    newer = load_checkpoint(run / BEST)
    newer.update(epoch=2, step=newer["step"] + 2, best_metric=newer["best_metric"] / 2)  # far better
    trainer_module.atomic_torch_save(newer, run / BEST)
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "2")) == 0
    assert load_checkpoint(run / BEST)["best_metric"] == newer["best_metric"]
    assert load_checkpoint(run / LAST)["best_metric"] == newer["best_metric"]
    assert "is newer than last.pt (epoch 1)" in (run / "train.log").read_text()


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_is_not_the_folders_run(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 0
    assert main(tiny_args(tmp_path, "lstm", "other", "--epochs", "1")) == 0
    assert main(tiny_args(tmp_path, "baseline", "wider", "--epochs", "1", "--width", "16")) == 0
    run = tmp_path / "run"
    before = {name: (run / name).read_bytes() for name in ("config.json", "metrics.csv", BEST)}
    capsys.readouterr()
    for other, difference in (("other", "model_name 'lstm' vs 'baseline'"), ("wider", "model_config.width 16 vs 8")):
        shutil.copy(tmp_path / other / LAST, run / LAST)
        assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "2")) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and difference in error, error
        assert f"{run / LAST} is not the checkpoint of the run that {run / 'config.json'} describes" in error
        assert {name: (run / name).read_bytes() for name in before} == before

    # What a resume may change (--epochs, --mnist-root, ...) is no disagreement: a kill after config.json
    # was rewritten by a resume, before its first checkpoint, leaves exactly that.
    shutil.copy(run / BEST, run / LAST)
    record = json.loads((run / "config.json").read_text())
    record["train_config"]["epochs"] = 7
    record["data_config"]["mnist_root"] = "/elsewhere"
    (run / "config.json").write_text(json.dumps(record))
    assert main(tiny_args(tmp_path, None, "run", "--resume", "--epochs", "2")) == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_with_its_own_exit_code_and_the_checkpoints_survive(tmp_path, capsys, monkeypatch):
    real_save = torch.save

    def full_disk(state, handle, *args, **kwargs):
        if isinstance(state, dict) and state.get("epoch") == 2:
            handle.write(b"the first bytes fit")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(state, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "3")) == train_module.EXIT_WRITE == 3
    error = capsys.readouterr().err
    run = tmp_path / "run"
    assert error.count("\n") == 1 and "Traceback" not in error, error
    line = error.strip().split(" ", 1)[1]  # after the time stamp
    assert line.startswith(f"cannot write {run / BEST}: No space left on device; last.pt keeps the last good "
                           "state (epoch 1, step 2) and best_model.pt the best epoch up to it; free space")
    assert line in (run / "train.log").read_text()
    assert sorted(path.name for path in run.glob(".*.tmp")) == []
    assert load_checkpoint(run / LAST)["epoch"] == load_checkpoint(run / BEST)["epoch"] == 1

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    assert main(tiny_args(tmp_path, None, "run", "--resume")) == 0
    assert [row["epoch"] for row in read_rows(run / "metrics.csv")] == ["1", "2", "3"]
