"""evaluation.pipeline: ``evaluate(checkpoint, EvalConfig)`` as a library function, and ``evaluate.py`` as a thin
command line over it (same defaults, same files, same numbers)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest
import torch

import evaluate as evaluate_cli
from evaluation.pipeline import EvalConfig, EvaluationError, evaluate, to_jsonable
from tests.evaluation_helpers import write_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(device="cpu", num_samples=2, test_size=8, batch_size=4, interpolation_steps=3, judges=False,
            prediction_samples=2, prediction_videos=2, prediction_horizon=20)


def test_library_and_command_line_write_the_same_metrics(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "checkpoints" / "tiny_run")
    with contextlib.redirect_stdout(io.StringIO()):
        result = evaluate(checkpoint, EvalConfig(save_dir=str(tmp_path / "library"), **TINY), command="test run")
        code = evaluate_cli.main([
            "--checkpoint", str(checkpoint), "--device", "cpu", "--num_samples", "2", "--save_dir",
            str(tmp_path / "cli"), "--test-size", "8", "--batch-size", "4", "--interpolation-steps", "3",
            "--no-judges", "--prediction-samples", "2", "--prediction-videos", "2", "--prediction-horizon", "20",
        ])
    assert code == 0
    assert result.name == "tiny_run"
    assert result.metrics_path == tmp_path / "library" / "tiny_run_metrics.json"
    assert all(path.is_file() for path in result.written)
    assert {path.name for path in result.written} == {path.name for path in (tmp_path / "cli").iterdir()}
    # The returned document is exactly what was written (NaN included).
    written = json.loads(result.metrics_path.read_text())
    assert json.dumps(result.document, sort_keys=True) == json.dumps(written, sort_keys=True)
    assert written["metadata"]["command"] == "test run"
    cli = json.loads((tmp_path / "cli" / "tiny_run_metrics.json").read_text())
    assert cli["metadata"]["command"].startswith("evaluate.py --checkpoint")
    assert cli["reconstruction"] == written["reconstruction"]
    assert cli["prediction"]["mse_per_frame"] == written["prediction"]["mse_per_frame"]
    assert cli["metadata"]["evaluation"] == written["metadata"]["evaluation"]
    codes = {key: value for key, value in written["disentanglement"].items() if key != "notes"}
    assert json.dumps(codes, sort_keys=True) == json.dumps(
        {key: value for key, value in cli["disentanglement"].items() if key != "notes"}, sort_keys=True)


def test_command_line_defaults_are_the_config_defaults():
    args = evaluate_cli.build_parser().parse_args(["--checkpoint", "x.pt"])
    assert evaluate_cli.config_from_args(args) == EvalConfig()
    args = evaluate_cli.build_parser().parse_args(["--checkpoint", "x.pt", "--no-judges", "--seed", "3"])
    assert evaluate_cli.config_from_args(args) == EvalConfig(judges=False, seed=3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("interpolation_steps", 1, "--interpolation-steps must be at least 2"),
        ("max_samples", 4, "--max-samples must be at least 5"),
        ("num_samples", 0, "--num-samples must be at least 1"),
        ("batch_size", True, "--batch-size must be at least 1"),
        ("seed", -1, "--seed must be at least 0"),
        ("max_batches", 0, "--max-batches must be at least 1"),
        ("fps", float("nan"), "--fps must be a positive number"),
        ("fps", 0, "--fps must be a positive number"),
    ],
)
def test_eval_config_names_a_bad_value(field, value, message):
    with pytest.raises(EvaluationError, match=message):
        EvalConfig(**{field: value})


def test_eval_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EvalConfig().test_size = 3  # type: ignore[misc]


def test_a_missing_checkpoint_is_refused_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError), contextlib.redirect_stdout(io.StringIO()):
        evaluate(tmp_path / "none.pt", EvalConfig(save_dir=str(tmp_path / "out"), **TINY))
    assert not (tmp_path / "out").exists()


def test_to_jsonable_keeps_infinities():
    value = {"psnr": torch.tensor(float("inf")), "curve": np.array([1.0, np.nan]), "n": np.int64(3)}
    text = json.dumps(to_jsonable(value))
    assert text == '{"psnr": Infinity, "curve": [1.0, NaN], "n": 3}'
