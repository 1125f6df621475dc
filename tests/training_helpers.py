"""Helpers shared by the training tests: a tiny ``python -m training.train`` command line, ``metrics.csv``
rows, and the comparison of two training states (imported by ``test_training*.py``)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch


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
