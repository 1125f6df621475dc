"""Work is never lost: one process per run folder, nothing non-finite saved, kills between writes, full
disks.

Runs are tiny (32x32, 4 frames, width 8, 8 videos of batch 4) and on one CPU thread: torch's thread pool
only slows such small models down.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import assert_same_training_state, read_rows, tiny_args

import training.cli as train_module
import training.trainer as trainer_module
from models.checkpoint import BEST, LAST, load_checkpoint
from training.train import main
from training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_a_second_signal_stops_at_once_in_one_line_that_says_what_last_holds(tmp_path, capsys, monkeypatch):
    """Issue 22, item 5: a second Ctrl-C stops mid-step with one line, not a KeyboardInterrupt traceback
    (the fault hook sends both signals during the first step of epoch 2)."""
    real_step = Trainer.train_step

    def step_then_two_signals(self, batch):
        if self.step == 2:
            signal.raise_signal(signal.SIGINT)  # the first asks for a stop after this step
            signal.raise_signal(signal.SIGINT)  # the second stops now
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", step_then_two_signals)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "2")) == 130
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert ("SIGINT received twice: stopped at once, mid-step; last.pt keeps the last good state (epoch 1, "
            "step 2)") in error
    assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back


def test_train_checks_its_configs_before_it_creates_the_run_folder(tmp_path):
    """Issue 22, item 8: a model of 32-pixel frames on 64-pixel data, or a training config of another model,
    is refused before anything is written; a name that leaves the checkpoint folder is refused."""
    from data import DataConfig, MovingMNISTConfig
    from models import MODELS
    from training.config import ConfigError, TrainConfig
    from training.train import train

    data = DataConfig(train_size=4, val_size=4, test_size=4, video=MovingMNISTConfig(num_frames=4))
    model_config = MODELS["baseline"].config_class(image_size=32, width=4)
    config = TrainConfig(experiment_name="run", model="baseline", epochs=1, checkpoint_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="the model takes 32x32 frames but the data has 64x64"):
        train("baseline", model_config, config, data)
    with pytest.raises(ConfigError, match="train_config.model is 'lstm' but the model trained is 'baseline'"):
        train("baseline", model_config, TrainConfig(experiment_name="run", model="lstm"), data)
    with pytest.raises(ConfigError, match="not the LSTMVAEConfig"):
        train("lstm", model_config, TrainConfig(experiment_name="run", model="lstm"), data)
    assert list(tmp_path.iterdir()) == []
    for name in ("../x", "a/b", ".."):
        with pytest.raises(ValueError, match="plain folder name"):
            TrainConfig(experiment_name=name, model="baseline")


def test_the_first_signal_during_the_end_of_training_prior_fit_stops_it_and_resume_fits_it(tmp_path, capsys,
                                                                                             monkeypatch):
    """Issue 33, item 2: one SIGINT during the prior fit that ends a finished run stops the command (one line,
    130), the trained weights stay on disk, and --resume then fits the prior."""
    import training.train as train_function_module

    real_fit = train_function_module.fit_run_priors

    def interrupted_fit(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_function_module, "fit_run_priors", interrupted_fit)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 130
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert "SIGINT received while fitting the ex-post prior: stopped; the trained weights are saved in" in error
    assert "continue with --resume (it fits the prior then)" in error
    run = tmp_path / "run"
    assert all(load_checkpoint(run / name)["epoch"] == 1 and "fitted_prior" not in load_checkpoint(run / name)
               for name in (BEST, LAST))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back
    monkeypatch.setattr(train_function_module, "fit_run_priors", real_fit)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1", "--resume")) == 0
    assert all("fitted_prior" in load_checkpoint(run / name) for name in (BEST, LAST))


def test_a_signal_during_the_last_validation_is_not_swallowed_by_the_prior_fit(tmp_path, capsys, monkeypatch):
    """Issue 33, item 2: a signal as the last epoch ends (its stop request comes after the last step) stops
    the command before the prior fit, rather than being ignored."""
    real_validate = Trainer.validate

    def validate_then_signal(self, *args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return real_validate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "validate", validate_then_signal)
    assert main(tiny_args(tmp_path, "baseline", "run", "--epochs", "1")) == 143
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "SIGTERM received while fitting the ex-post prior: stopped" in error, error
    assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] == 1
    assert "fitted_prior" not in load_checkpoint(tmp_path / "run" / BEST)
