"""DDP: torchrun's environment, and 2 gloo processes training like one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data import DataConfig, video_of
from models.checkpoint import LAST, load_checkpoint
from training.config import TrainConfig
from training.distributed import DistributedContext, from_environment, process_device
from training.noise import train_noise_seed
from training.optimizer import make_optimizer
from training.run_folder.lock import RunLock
from training.train import build_loaders, create_model

REPO = Path(__file__).resolve().parents[1]


def test_from_environment_reads_torchrun_variables():
    assert from_environment({}) == DistributedContext()
    context = from_environment({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (context.rank, context.local_rank, context.world_size) == (3, 1, 4)
    assert context.enabled and not context.is_main
    with pytest.raises(ValueError, match="inconsistent"):
        from_environment({"RANK": "4", "WORLD_SIZE": "4"})


def test_processes_on_cpu_share_the_cpu_and_mps_is_refused():
    context = DistributedContext(rank=1, local_rank=1, world_size=2)
    assert process_device(context, torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="MPS"):
        process_device(context, torch.device("mps"))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    """2 processes x batch 4 with DDP == one process averaging the same two half-batches' losses.

    Each rank draws its posterior noise from ``(seed, step, rank)``; the reference below gives each half
    of the global batch the noise of the rank that trained on it, so the two runs see the same videos and
    the same noise, and DDP's gradient averaging is the only thing under test.
    """
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training.train", "--model", "lstm", "--name", "ddp", "--checkpoint-dir", str(tmp_path),
        "--device", "cpu", "--quiet", "--epochs", "1", "--batch-size", "4", "--train-size", "16",
        "--val-size", "6", "--image-size", "32", "--frames", "4", "--width", "8", "--latent-dim", "8",
        "--lstm-hidden", "8", "--model-option", "feature_dim=16", "--lr", "1e-3",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = load_checkpoint(run / LAST)
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 2  # 16 videos / (2 ranks x 4)

    # Only rank 0 wrote: one metrics row, one TensorBoard event file.
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 2
    assert len(list((run / "tensorboard").iterdir())) == 1

    train_config = TrainConfig(**checkpoint["train_config"])
    data_config = DataConfig.from_dict(checkpoint["data_config"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = create_model(checkpoint["model_name"], checkpoint["model_config"], train_config.seed)
        initial = {key: value.clone() for key, value in model.state_dict().items()}
        optimizer = make_optimizer(model, train_config)
        loaders = [build_loaders(train_config, data_config, DistributedContext(rank, rank, 2),
                                 torch.device("cpu"))[0] for rank in (0, 1)]
        seen: list[set[int]] = [set(), set()]
        for loader in loaders:
            loader.sampler.set_epoch(0)
        for step, batches in enumerate(zip(*loaders, strict=True)):
            losses = []
            for rank, batch in enumerate(batches):
                seen[rank].update(batch["index"].tolist())
                generator = torch.Generator().manual_seed(train_noise_seed(train_config.seed, step, rank))
                losses.append(model(video_of(batch), kl_scale=1.0, generator=generator).loss)
            optimizer.zero_grad()
            (sum(losses) / len(losses)).backward()  # the mean over the global batch
            optimizer.step()
    finally:
        torch.set_num_threads(threads)

    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 16  # disjoint shares of the epoch
    moved = 0.0
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(checkpoint["model_state_dict"][key], tensor, atol=1e-5, rtol=0, msg=key)
        moved = max(moved, (tensor - initial[key]).abs().max().item())
    assert moved > 1e-3  # the weights did move, far beyond the tolerance


@pytest.mark.slow
def test_under_torchrun_a_busy_run_folder_stops_every_rank_in_one_line(tmp_path):
    """Only rank 0 locks (only it writes); when the folder is busy every rank must stop, none may hang."""
    run = tmp_path / "ddp"
    run.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training.train", "--model", "baseline", "--name", "ddp", "--checkpoint-dir", str(tmp_path),
        "--device", "cpu", "--quiet", "--epochs", "1", "--batch-size", "4", "--train-size", "8",
        "--val-size", "4", "--image-size", "32", "--frames", "4", "--width", "8", "--latent-dim", "8",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    with RunLock(run):  # this test process plays the live run
        result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True,
                                timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    refusals = [line for line in output.splitlines()
                if f"{run} is in use by another training process (pid {os.getpid()} on " in line]
    assert len(refusals) == 1, output  # rank 0's, once
    assert not (run / LAST).exists() and not (run / "config.json").exists()
