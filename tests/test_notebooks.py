"""The experiment notebooks: committed without outputs, and each runs top to bottom on tiny checkpoints.

The execution test trains one tiny run per model with the training CLI (in-process, once per module), then
runs every notebook headless with nbclient from ``experiments/`` with ``CMVAE_CHECKPOINT_DIR`` pointing at
those runs, failing on any error. The kernel is this interpreter, whatever kernels the machine has
installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from models import MODELS
from training import train

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
NOTEBOOKS = ("01_reconstruction.ipynb", "02_content_swap.ipynb", "04_interpolation.ipynb")
RUNS = {"baseline": "baseline_vae", "lstm": "lstm_vae", "disentangled": "disentangled_vae"}
TINY_DATA = ["--train-size", "8", "--val-size", "4", "--test-size", "8", "--batch-size", "4", "--frames", "4",
             "--image-size", "32"]  # fmt: skip
TINY_MODEL = {
    "baseline": ["--latent-dim", "8"],
    "lstm": ["--latent-dim", "8", "--lstm-hidden", "16", "--model-option", "prior_hidden=16"],
    "disentangled": ["--content-dim", "8", "--motion-dim", "8", "--lstm-hidden", "16",
                     "--model-option", "prior_hidden=16"],
}  # fmt: skip
CELL_TIMEOUT_S = 300  # generous: other jobs may share the machine


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(EXPERIMENTS / name, as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name):
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells, f"{name} has no code"
    for number, cell in enumerate(code_cells):
        assert cell.outputs == [], f"{name}: code cell {number} has outputs (clear them before committing)"
        assert cell.execution_count is None, f"{name}: code cell {number} has an execution count"
    assert "sys.path.insert(0" in code_cells[0].source, f"{name}: the first cell must make the repository importable"


def test_the_runs_cover_the_registry():
    assert set(RUNS) == set(MODELS) == set(TINY_MODEL)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """CHECKPOINT_DIR with a one-epoch run of each model, named as the design document names them."""
    folder = tmp_path_factory.mktemp("checkpoints")
    for model, run in RUNS.items():
        argv = ["--model", model, "--name", run, "--checkpoint-dir", str(folder), "--epochs", "1", "--width", "8",
                "--model-option", "feature_dim=32", "--quiet", "--device", "cpu", *TINY_DATA, *TINY_MODEL[model]]
        assert train.main(argv) == 0, f"training the tiny {model} run failed"
        assert (folder / run / "best_model.pt").is_file()
    return folder


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    """A kernel spec manager whose only "python3" kernel runs this interpreter."""
    folder = tmp_path_factory.mktemp("kernels")
    (folder / "python3").mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (tests)", "language": "python"}  # fmt: skip
    (folder / "python3" / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)])


def execute(name: str, kernel_specs: KernelSpecManager) -> nbformat.NotebookNode:
    """Run a notebook from experiments/ in a fresh kernel; returns the executed copy."""
    notebook = read(name)
    check = f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(check))
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(EXPERIMENTS)}})
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tiny_runs, kernel_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("CMVAE_CHECKPOINT_DIR", str(tiny_runs))
    monkeypatch.setenv("CMVAE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CMVAE_NOTEBOOK_TEST_SIZE", "8")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny tensors gain nothing from threads on a shared machine
    notebook = execute(name, kernel_specs)
    text = outputs_text(notebook)
    for label in ("Baseline VAE", "LSTM-VAE", "Disentangled VAE"):
        assert label in text, f"{name}: no output mentions {label}"
    assert "skipped" not in text
    assert list((tmp_path / "results" / "figures").glob("*.png")), f"{name} wrote no figure"


@pytest.mark.slow
def test_a_missing_run_is_skipped_with_the_command_that_trains_it(tiny_runs, kernel_specs, tmp_path, monkeypatch):
    partial = tmp_path / "checkpoints"
    partial.mkdir()
    (partial / RUNS["disentangled"]).symlink_to(tiny_runs / RUNS["disentangled"], target_is_directory=True)
    monkeypatch.setenv("CMVAE_CHECKPOINT_DIR", str(partial))
    monkeypatch.setenv("CMVAE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CMVAE_NOTEBOOK_TEST_SIZE", "8")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    text = outputs_text(execute("04_interpolation.ipynb", kernel_specs))
    assert "python -m training.train --model baseline --name baseline_vae" in text
    assert "python -m training.train --model lstm --name lstm_vae" in text
    assert "Disentangled VAE: disentangled model" in text
