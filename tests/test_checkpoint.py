"""Checkpoints: atomic saves survive SIGKILL, loads never run code, bad files give clear errors."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models import MODELS, build_model
from models.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    library_versions,
    load_checkpoint,
    load_model,
    load_weights,
)
from training.trainer_state import rng_state, set_rng_state

REPO = Path(__file__).resolve().parents[1]


def tiny_config(name: str) -> dict:
    fields = {field.name for field in dataclasses.fields(MODELS[name].config_class)}
    config = {"image_size": 32, "width": 8, "feature_dim": 16}
    config.update({key: 8 for key in ("latent_dim", "content_dim", "motion_dim") if key in fields})
    config.update({key: 16 for key in ("lstm_hidden", "prior_hidden") if key in fields})
    return config


def save_tiny_checkpoint(path: Path, name: str = "baseline", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, tiny_config(name), **overrides)
    checkpoint = {
        "model_state_dict": model.state_dict(),
        "model_name": name,
        "model_config": dataclasses.asdict(model.config),
        "epoch": 1,
        "step": 2,
        "versions": library_versions(),
    }
    atomic_torch_save(checkpoint, path)
    return model


class RunsCode:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", list(MODELS))
def test_load_model_rebuilds_the_exact_model(tmp_path, name):
    model = save_tiny_checkpoint(tmp_path / "model.pt", name).eval()
    loaded, checkpoint = load_model(tmp_path / "model.pt")
    assert type(loaded) is MODELS[name] and loaded.config == model.config and not loaded.training
    video = torch.rand(2, 4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(video), model.reconstruct(video))
    assert checkpoint["epoch"] == 1


def test_checkpoints_hold_only_weights_only_types(tmp_path):
    """Regression: torch.__version__ is a TorchVersion, which a weights_only load refuses."""
    assert all(type(value) is str for value in library_versions().values())
    atomic_torch_save({"versions": library_versions(), "rng": rng_state()}, tmp_path / "state.pt")
    torch.load(tmp_path / "state.pt", weights_only=True)


def test_rng_state_round_trip(tmp_path):
    atomic_torch_save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002 - the global state is the subject
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_every_torch_load_in_training_is_weights_only():
    calls = 0
    for path in [*(REPO / "training").glob("*.py"), REPO / "models" / "checkpoint.py"]:
        for call in re.findall(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls += 1
            assert "weights_only=True" in call, f"{path.name}: torch.load({call}) without weights_only=True"
    assert calls >= 1


@pytest.mark.parametrize("container", ["torch.save", "plain pickle"])
def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    payload = {"model_state_dict": {}, "model_name": "baseline", "model_config": {}, "x": RunsCode(marker)}
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    # The payload does run when unpickled without protection (so the test can see a run).
    pickle.loads(pickle.dumps(RunsCode(tmp_path / "control"))).close()
    assert (tmp_path / "control").exists()
    with pytest.raises(CheckpointError, match=re.escape(str(path))) as caught:
        load_model(path)
    assert not marker.exists()
    if container == "torch.save":
        assert "could run code" in str(caught.value) and "io.open" in str(caught.value)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "text"])
def test_a_damaged_checkpoint_gives_a_clear_error(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_tiny_checkpoint(path)
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "random bytes": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "text": b"not a checkpoint at all\n",
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "corrupt" in message


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_model(tmp_path / "nowhere.pt")


def test_a_run_folder_instead_of_its_checkpoint_names_the_file_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file; pass the .pt file"):
        load_model(tmp_path)
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=f"pass {tmp_path / 'last.pt'}"):
        load_model(tmp_path)
    (tmp_path / "best_model.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=f"pass {tmp_path / 'best_model.pt'}"):
        load_model(tmp_path)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    save_tiny_checkpoint(tmp_path / "model.pt", "baseline")
    with pytest.raises(CheckpointError, match="'baseline' model, not the 'lstm'"):
        load_model(tmp_path / "model.pt", expected_model="lstm")


def test_a_checkpoint_with_non_finite_weights_is_refused_by_every_loader(tmp_path):
    """The demo, the notebooks and the benchmarks load through load_model: a diverged run is one clear error
    there too, not a crash inside a loss on NaN outputs."""
    path = tmp_path / "diverged.pt"
    save_tiny_checkpoint(path)
    checkpoint = load_checkpoint(path)
    key = next(key for key, tensor in checkpoint["model_state_dict"].items() if tensor.is_floating_point())
    checkpoint["model_state_dict"][key].view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    atomic_torch_save(checkpoint, path)
    with pytest.raises(CheckpointError, match=rf"diverged\.pt holds non-finite weights \(3 of .*{re.escape(key)}"):
        load_model(path)


def test_mismatched_shapes_and_keys_are_listed(tmp_path):
    path = tmp_path / "model.pt"
    save_tiny_checkpoint(path, "baseline")
    checkpoint = load_checkpoint(path)
    checkpoint["model_config"]["latent_dim"] = 4  # the weights were trained with 8
    atomic_torch_save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"shape mismatches \[.*posterior_head") as caught:
        load_model(path)
    assert str(path) in str(caught.value)

    model = build_model("baseline", tiny_config("baseline"))
    weights = dict(model.state_dict())
    weights["extra.weight"] = weights.pop("posterior_head.bias")
    with pytest.raises(CheckpointError, match=r"missing keys \[posterior_head.bias\].*unexpected keys \[extra"):
        load_weights(model, weights, source="weights.pt")


def test_a_checkpoint_without_model_entries_is_refused(tmp_path):
    atomic_torch_save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(tmp_path / "other.pt")


_SAVE_LOOP = """
import sys, torch
from models.checkpoint import atomic_torch_save
path, seed = sys.argv[1], int(sys.argv[2])
payload = {"model_state_dict": {"w": torch.randn(4_000_000, generator=torch.Generator().manual_seed(seed))},
           "model_name": "baseline", "model_config": {}, "round": 0}
print("ready", flush=True)
while True:
    payload["round"] += 1
    atomic_torch_save(payload, path)
"""


@pytest.mark.slow
def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a process that keeps overwriting a 16 MB checkpoint at random moments; the file always loads."""
    path = tmp_path / "best_model.pt"
    atomic_torch_save({"model_state_dict": {}, "model_name": "baseline", "model_config": {}, "round": 0}, path)
    rng = random.Random(0)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for attempt in range(4):
        process = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(path), str(attempt)], cwd=REPO,
                                   env=environment, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.6))
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            process.stdout.close()
        assert process.returncode == -signal.SIGKILL
        checkpoint = load_checkpoint(path)
        assert set(checkpoint["model_state_dict"]) <= {"w"}
        if checkpoint["round"]:
            assert checkpoint["model_state_dict"]["w"].shape == (4_000_000,)
    # Only the final path and, at most, temporary files of killed saves (never a partial final file).
    assert {entry.name for entry in tmp_path.iterdir() if not entry.name.endswith(".tmp")} == {path.name}


def test_every_checkpoint_stores_the_disentangled_vaes_architecture():
    """``run_metadata`` stores every config field, so every checkpoint written since ``architecture`` existed
    names its architecture: the change of the default (``"slots"`` to ``"keypoints"``) leaves them as they were."""
    from data import DataConfig
    from models.checkpoint import Key, run_metadata
    from models.disentangled_vae import DisentangledVAEConfig
    from training.config import TrainConfig

    assert DisentangledVAEConfig().architecture == "keypoints"
    for config in (DisentangledVAEConfig(), DisentangledVAEConfig(architecture="slots")):
        metadata = run_metadata("disentangled", config, TrainConfig(experiment_name="run", model="disentangled"),
                                DataConfig(), world_size=1)
        assert metadata[Key.MODEL_CONFIG]["architecture"] == config.architecture


def _evaluates_and_samples(loaded: torch.nn.Module, model: torch.nn.Module) -> None:
    video = torch.rand(2, 4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(video), model.reconstruct(video))
        output = loaded(video, generator=torch.Generator().manual_seed(2))
        assert torch.isfinite(output.loss) and output.recon.shape == video.shape
        samples = loaded.sample(3, 5, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (3, 5, 1, 32, 32) and torch.isfinite(samples).all()


def test_a_checkpoint_of_the_old_default_hand_tracker_loads_as_slots_evaluates_and_samples(tmp_path):
    """A Disentangled VAE saved when ``"slots"`` (the hand tracker) was the default loads as the hand tracker,
    not as today's default learned localiser, reconstructs as it did, and samples, with its fitted prior too."""
    from models.fitted_prior import fit_prior

    path = tmp_path / "slots.pt"
    model = save_tiny_checkpoint(path, "disentangled", architecture="slots").eval()
    loaded, checkpoint = load_model(path)
    assert checkpoint["model_config"]["architecture"] == "slots"
    assert loaded.config == model.config and loaded.config.architecture == "slots"
    assert hasattr(loaded, "pose_readout") and not hasattr(loaded, "localiser")
    _evaluates_and_samples(loaded, model)

    prior = fit_prior(model, [torch.rand(6, 4, 1, 32, 32, generator=torch.Generator().manual_seed(4))],
                      components=2, path_components=2, steps=2)
    checkpoint["fitted_prior"] = prior.state_dict()
    atomic_torch_save(checkpoint, path)
    loaded, _ = load_model(path)
    assert loaded.config.architecture == "slots" and loaded.fitted_prior is not None
    model.set_fitted_prior(prior)
    _evaluates_and_samples(loaded, model)


@pytest.mark.parametrize(("fields", "missing", "legacy"), [
    # before ``architecture`` the model was the design document's, today's "average" (the same weights' names);
    # neither the old default "slots" nor today's "keypoints" would take its weights
    ({"architecture": "average"}, "architecture", "average"),
    # a learned localiser from before ``localiser_reassociate`` was trained without re-association
    ({"architecture": "keypoints", "localiser_reassociate": "none"}, "localiser_reassociate", "none"),
    # ... and with the full trunk
    ({"architecture": "keypoints", "localiser_trunk": "full"}, "localiser_trunk", "full"),
])
def test_a_checkpoint_whose_config_lacks_a_field_loads_with_the_fields_legacy_value(tmp_path, fields, missing, legacy):
    """A stored config without a field predates it: ``legacy_values`` restores what the model was then, not
    today's default, and the model loads, evaluates and samples as it did."""
    path = tmp_path / "before_the_field.pt"
    model = save_tiny_checkpoint(path, "disentangled", **fields).eval()
    checkpoint = load_checkpoint(path)
    del checkpoint["model_config"][missing]
    atomic_torch_save(checkpoint, path)
    loaded, _ = load_model(path)
    assert loaded.config == model.config and getattr(loaded.config, missing) == legacy
    _evaluates_and_samples(loaded, model)
