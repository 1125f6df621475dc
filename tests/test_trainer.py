"""The generic trainer on its own, with a toy model that only has ``loss``, ``recon_loss`` and ``kl_terms``:
progress, non-finite values, validation, schedules, stops (on one CPU thread)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from models.checkpoint import BEST, LAST
from training.config import TrainConfig
from training.optimizer import make_optimizer, make_scheduler
from training.train import TrainResult
from training.trainer import NonFiniteLossError, Trainer

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


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


@pytest.mark.parametrize(("reason", "finished", "status"), [
    ("completed", True, 0), ("budget", True, 0), ("SIGINT", False, 130), ("SIGTERM", False, 143),
    ("another process was signalled", False, 143),
])
def test_train_result_says_whether_training_finished_and_its_exit_status(reason, finished, status):
    result = TrainResult(Path("run"), reason, epochs=1, batches=0, step=2, best_metric=1.0)
    assert result.finished is finished
    assert result.exit_status == status
